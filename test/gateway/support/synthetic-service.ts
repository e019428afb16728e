import { create, createFileRegistry, fromBinary, fromJson, toBinary, type DescMessage, type FileRegistry, type JsonObject } from '@bufbuild/protobuf';
import { file_google_protobuf_wrappers, FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { MethodDefinition } from '@grpc/grpc-js';
import type { ApiMethod } from '../../../src/rpc/api-method.js';
import { loadDescriptorSetBytes } from '../../../src/rpc/descriptors.js';

/**
 * A made-up `gwtest.v1.ThingService`, defined as a FileDescriptorProto in code and added to the
 * real descriptor set, so the gateway's grammar features that vault.v1 does not use (nested path
 * fields, patterns in variables, verbs, named body fields, custom methods, enums, repeated and
 * nested query parameters, response_body on a list) are tested through the real gateway.
 *
 *     enum Color { COLOR_UNSPECIFIED = 0; COLOR_RED = 1; COLOR_BLUE = 2; }
 *     message Inner { string name = 1; int32 count = 2; Color color = 3; }
 *     message Thing { string id = 1; Inner inner = 2; repeated string tags = 3; bool flag = 4; }
 *     message ThingRequest {
 *       string parent = 1; Inner inner = 2; Thing thing = 3; repeated string tags = 4; Color color = 5;
 *       int32 page_size = 6; google.protobuf.Timestamp at = 7; bool flag = 8; repeated Color colors = 9;
 *       int64 big = 10; double ratio = 11; optional int32 maybe = 12; map<string, string> labels = 13;
 *       repeated Inner inners = 14; google.protobuf.Int32Value wrapped = 15;
 *     }
 *     message ThingList { repeated Thing things = 1; }
 *     message Nothing {}
 *
 * Every RPC but ListThings and EraseThing echoes its request, so a test sees how it was bound.
 */
export const THING_RULES: Record<string, JsonObject> = {
  GetThing: { get: '/v1/{parent=shelves/*}/things/{inner.name}' },
  UpdateThing: { patch: '/v1/things/{thing.id}', body: 'thing' },
  CancelThing: { post: '/v1/things/{parent}:cancel', body: '*' },
  SearchThings: { get: '/v1/things', additionalBindings: [{ get: '/v1/shelves/{parent}/things' }] },
  GetOneThing: { get: '/v1/things/{parent}' },
  GetMyThing: { get: '/v1/things/me' },
  ListThings: { get: '/v1/thing-list', responseBody: 'things' },
  EraseThing: { delete: '/v1/things/{parent}' },
  ProbeThing: { custom: { kind: 'OPTIONS', path: '/v1/things/{parent}/probe' } },
  PutTags: { put: '/v1/things/{parent}/tags', body: 'tags' },
};

const OUTPUT: Record<string, string> = { ListThings: 'ThingList', EraseThing: 'Nothing' };

function field(name: string, number: number, type: string, extra: JsonObject = {}): JsonObject {
  return {
    name,
    number,
    label: 'LABEL_OPTIONAL',
    type,
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...extra,
  };
}

const repeated = { label: 'LABEL_REPEATED' };

function syntheticFile(registry: FileRegistry, rules: Record<string, JsonObject>) {
  const json: JsonObject = {
    name: 'gwtest/v1/things.proto',
    package: 'gwtest.v1',
    dependency: ['google/api/annotations.proto', 'google/protobuf/timestamp.proto', 'google/protobuf/wrappers.proto'],
    syntax: 'proto3',
    enumType: [
      {
        name: 'Color',
        value: [
          { name: 'COLOR_UNSPECIFIED', number: 0 },
          { name: 'COLOR_RED', number: 1 },
          { name: 'COLOR_BLUE', number: 2 },
        ],
      },
    ],
    messageType: [
      {
        name: 'Inner',
        field: [field('name', 1, 'TYPE_STRING'), field('count', 2, 'TYPE_INT32'), field('color', 3, 'TYPE_ENUM', { typeName: '.gwtest.v1.Color' })],
      },
      {
        name: 'Thing',
        field: [
          field('id', 1, 'TYPE_STRING'),
          field('inner', 2, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.Inner' }),
          field('tags', 3, 'TYPE_STRING', repeated),
          field('flag', 4, 'TYPE_BOOL'),
        ],
      },
      {
        name: 'ThingRequest',
        field: [
          field('parent', 1, 'TYPE_STRING'),
          field('inner', 2, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.Inner' }),
          field('thing', 3, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.Thing' }),
          field('tags', 4, 'TYPE_STRING', repeated),
          field('color', 5, 'TYPE_ENUM', { typeName: '.gwtest.v1.Color' }),
          field('page_size', 6, 'TYPE_INT32'),
          field('at', 7, 'TYPE_MESSAGE', { typeName: '.google.protobuf.Timestamp' }),
          field('flag', 8, 'TYPE_BOOL'),
          field('colors', 9, 'TYPE_ENUM', { typeName: '.gwtest.v1.Color', ...repeated }),
          field('big', 10, 'TYPE_INT64'),
          field('ratio', 11, 'TYPE_DOUBLE'),
          field('maybe', 12, 'TYPE_INT32', { proto3Optional: true, oneofIndex: 0 }),
          field('labels', 13, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.ThingRequest.LabelsEntry', ...repeated }),
          field('inners', 14, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.Inner', ...repeated }),
          field('wrapped', 15, 'TYPE_MESSAGE', { typeName: '.google.protobuf.Int32Value' }),
        ],
        nestedType: [{ name: 'LabelsEntry', field: [field('key', 1, 'TYPE_STRING'), field('value', 2, 'TYPE_STRING')], options: { mapEntry: true } }],
        oneofDecl: [{ name: '_maybe' }],
      },
      { name: 'ThingList', field: [field('things', 1, 'TYPE_MESSAGE', { typeName: '.gwtest.v1.Thing', ...repeated })] },
      { name: 'Nothing' },
    ],
    service: [
      {
        name: 'ThingService',
        method: Object.entries(rules).map(([name, rule]) => ({
          name,
          inputType: '.gwtest.v1.ThingRequest',
          outputType: `.gwtest.v1.${OUTPUT[name] ?? 'ThingRequest'}`,
          options: { '[google.api.http]': rule },
        })),
      },
    ],
  };
  return fromJson(FileDescriptorProtoSchema, json, { registry });
}

/** The real descriptor set plus gwtest/v1/things.proto, as bytes (what the gateway is given). */
export function syntheticDescriptorSet(rules: Record<string, JsonObject> = THING_RULES): Uint8Array {
  const real = fromBinary(FileDescriptorSetSchema, loadDescriptorSetBytes());
  const registry = createFileRegistry(real);
  const files = [...real.file, file_google_protobuf_wrappers.proto, syntheticFile(registry, rules)];
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
}

/**
 * ApiMethods for ThingService. Their "generated" messages are @bufbuild/protobuf messages, which
 * is all the gateway needs: it only uses requestDeserialize and responseSerialize.
 */
export function thingServiceMethods(descriptorSet: Uint8Array, names: string[] = Object.keys(THING_RULES)): ApiMethod[] {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
  const message = (name: string) => registry.getMessage(`gwtest.v1.${name}`) as DescMessage;
  const request = message('ThingRequest');
  return names.map((name) => {
    const output = message(OUTPUT[name] ?? 'ThingRequest');
    const definition: MethodDefinition<unknown, unknown> = {
      path: `/gwtest.v1.ThingService/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (value) => Buffer.from(toBinary(request, value as never)),
      requestDeserialize: (bytes) => fromBinary(request, bytes),
      responseSerialize: (value) => Buffer.from(toBinary(output, value as never)),
      responseDeserialize: (bytes) => fromBinary(output, bytes),
    };
    return {
      path: definition.path,
      fullName: `gwtest.v1.ThingService.${name}`,
      definition,
      requiresAuth: name !== 'GetMyThing',
      async handle(_context, value) {
        if (name === 'ListThings') {
          return create(output, { things: [{ id: 't1', tags: ['a'] }, { id: 't2' }] } as never);
        }
        if (name === 'EraseThing') return create(output);
        return value;
      },
    };
  });
}
