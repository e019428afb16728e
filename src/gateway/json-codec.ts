import { create, fromBinary, fromJson, toBinary, toJson, type DescField, type DescMessage, type JsonObject, type JsonValue, type Registry } from '@bufbuild/protobuf';
import { bindRequest, fieldByName, isRfc3339, RequestDecodeError, type HttpInput } from './request-binding.js';
import { MAX_JSON_DEPTH } from '../domain/validation.js';
import type { Route } from './route-table.js';

/**
 * Proto3 JSON at the HTTP edge, done by @bufbuild/protobuf (which passes the conformance suite)
 * rather than ts-proto's lenient fromJSON/toJSON. The handlers keep their ts-proto types: the
 * bridge between the two is the binary wire format, which both implement exactly.
 */
export interface JsonCodec {
  /** The ts-proto request object for a routed HTTP request. Throws RequestDecodeError (400). */
  decodeRequest(route: Route, input: HttpInput): unknown;
  /** The HTTP body for a ts-proto response, or undefined when the response message is empty (204). */
  encodeResponse(route: Route, response: unknown): JsonValue | undefined;
}

/** Messages with their own JSON form, whose JSON is not an object of their fields. */
const SPECIAL_JSON = new Set([
  'google.protobuf.Any',
  'google.protobuf.Timestamp',
  'google.protobuf.Duration',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

/** Bodies are depth-checked before parsing (request-binding.ts); this guards what binding built. */
const MAX_DEPTH = MAX_JSON_DEPTH;

/** Output as grpc-gateway with proto names and EmitUnpopulated-for-scalars: snake_case, scalars always present. */
const WRITE_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

export function createJsonCodec(registry: Registry): JsonCodec {
  const writeOptions = { ...WRITE_OPTIONS, registry };
  return {
    decodeRequest(route, input) {
      const json = pruneUnknownFields(route.descriptor.input, bindRequest(route, input), 0);
      let message;
      try {
        // Unknown fields are already pruned, so anything left that does not fit (a wrong type, an
        // unknown enum name, a field given under both of its names) is an error, not ignored.
        message = fromJson(route.descriptor.input, json, { ignoreUnknownFields: false, registry });
      } catch (error) {
        throw new RequestDecodeError(describeJsonError(error));
      }
      return route.method.definition.requestDeserialize(Buffer.from(toBinary(route.descriptor.input, message)));
    },

    encodeResponse(route, response) {
      const output = route.descriptor.output;
      if (output.fields.length === 0) return undefined;
      const message = fromBinary(output, route.method.definition.responseSerialize(response));
      const json = toJson(output, message, writeOptions);
      const field = route.responseField;
      if (!field) return json;
      const value = (json as JsonObject)[field.name];
      if (value !== undefined) return value;
      // An unset message field as the whole body: its empty JSON form, never `null`.
      return field.fieldKind === 'message' ? toJson(field.message, create(field.message), writeOptions) : null;
    },
  };
}

/**
 * Drops the keys a message does not define, at every level that is a plain message, so that
 * unknown fields are ignored (grpc-gateway's DiscardUnknown) while everything else is strict.
 */
export function pruneUnknownFields(message: DescMessage, json: JsonValue, depth: number): JsonValue {
  if (depth > MAX_DEPTH) throw new RequestDecodeError(`the request nests deeper than ${MAX_DEPTH} levels`);
  if (SPECIAL_JSON.has(message.typeName) || typeof json !== 'object' || json === null || Array.isArray(json)) return json;
  const pruned: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = fieldByName(message, key);
    if (field && key !== '__proto__') pruned[key] = pruneField(field, value, depth + 1);
  }
  return pruned;
}

function pruneField(field: DescField, value: JsonValue, depth: number): JsonValue {
  if (field.fieldKind === 'message') return pruneUnknownFields(field.message, checkTimestamp(field, field.message, value), depth);
  if (field.fieldKind === 'list' && field.listKind === 'message' && Array.isArray(value)) {
    return value.map((item) => pruneUnknownFields(field.message, checkTimestamp(field, field.message, item), depth));
  }
  if (field.fieldKind === 'map' && field.mapKind === 'message' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, pruneUnknownFields(field.message, v, depth)]));
  }
  return value;
}

/** Rejects timestamps with impossible dates, which the JSON decoder would roll over (Feb 30 = Mar 2). */
function checkTimestamp(field: DescField, message: DescMessage, value: JsonValue): JsonValue {
  if (message.typeName === 'google.protobuf.Timestamp' && typeof value === 'string' && !isRfc3339(value)) {
    throw new RequestDecodeError(`invalid value for field ${field.name}: expected an RFC 3339 timestamp such as 2030-01-31T12:00:00Z`);
  }
  return value;
}

/** A client-facing message for a proto3 JSON decoding failure, naming the field, bounded in length. */
function describeJsonError(error: unknown): string {
  const cause = (error as { cause?: { field?: () => { name?: string }; message?: string } } | null)?.cause;
  const field = typeof cause?.field === 'function' ? cause.field().name : undefined;
  const reason = field && cause?.message ? cause.message : error instanceof Error ? error.message : 'invalid request';
  const text = field ? `invalid value for field ${field}: ${reason}` : `invalid request: ${reason}`;
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
