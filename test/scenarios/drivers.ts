import { fromBinary, fromJson, toBinary, toJson, type DescField, type FileRegistry, type JsonObject, type JsonValue } from '@bufbuild/protobuf';
import { Metadata, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'vitest';
import { httpStatusForError, httpStatusForSuccess, reasonPhrase } from '../../src/gateway/http-status.js';
import { expandPathTemplate } from '../../src/gateway/path-template.js';
import type { RouteTable } from '../../src/gateway/route-table.js';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import type { ApiMethod } from '../../src/rpc/api-method.js';
import { OPERATION_IDS, validateResponse } from '../gateway/support/openapi.js';
import { TEST_ROOT_TOKEN, unary, type TestApp } from '../support/test-app.js';
import type { Driver, Outcome, Step } from './scenario.js';

const WRITE = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

function methodOf(t: TestApp, fullName: string): ApiMethod {
  const method = t.app.methods.find((m) => m.fullName === fullName);
  if (!method) throw new Error(`${fullName} is not served`);
  return method;
}

/**
 * gRPC through the generated ts-proto clients. The step's proto3 JSON becomes the ts-proto request
 * through the binary format (strict @bufbuild/protobuf JSON, then the generated decoder), and the
 * response comes back to proto3 JSON the same way, so both drivers compare the same JSON.
 */
export function grpcDriver(t: TestApp, registry: FileRegistry): Driver {
  const clients: Record<string, Client> = {
    'vault.v1.SecretService': t.clients.secrets,
    'vault.v1.VaultService': t.clients.vaults,
    'vault.v1.SystemService': t.clients.system,
    'vault.v1.AgentService': t.clients.agents,
    'vault.v1.AuthService': t.clients.auth,
    'vault.v1.PolicyService': t.clients.policies,
    'vault.v1.AuditService': t.clients.audit,
  };
  return {
    name: 'gRPC',
    async call(step, json) {
      const method = methodOf(t, step.rpc);
      const service = step.rpc.slice(0, step.rpc.lastIndexOf('.'));
      const rpcName = step.rpc.slice(service.length + 1);
      const client = clients[service];
      if (!client) throw new Error(`no gRPC client for ${service} in the test app`);
      const descriptor = registry.getService(service)!.methods.find((m) => m.name === rpcName)!;
      const request = method.definition.requestDeserialize(Buffer.from(toBinary(descriptor.input, fromJson(descriptor.input, json, { registry }))));
      const metadata = new Metadata();
      const token = step.token === undefined ? TEST_ROOT_TOKEN : step.token;
      if (token !== null) metadata.set('authorization', `Bearer ${token}`);
      const clientMethod = (client as unknown as Record<string, Parameters<typeof unary>[1]>)[rpcName[0]!.toLowerCase() + rpcName.slice(1)]!;
      if (method.stream) return firstOfStream(client, clientMethod as unknown as StreamingMethod, request, metadata, (response) => {
        const message = fromBinary(descriptor.output, method.definition.responseSerialize(response));
        return toJson(descriptor.output, message, { ...WRITE, registry }) as JsonObject;
      });
      try {
        const response = await unary(client, clientMethod, request, metadata);
        const message = fromBinary(descriptor.output, method.definition.responseSerialize(response));
        return { code: status.OK, reason: undefined, response: toJson(descriptor.output, message, { ...WRITE, registry }) as JsonObject };
      } catch (error) {
        const serviceError = error as ServiceError;
        if (typeof serviceError.code !== 'number') throw error;
        return { code: serviceError.code, reason: reasonOf(serviceError.metadata), response: undefined };
      }
    },
  };
}

type StreamingMethod = (request: unknown, metadata: Metadata) => ClientReadableStream<unknown>;

/** A server-streaming call's outcome: OK with its first message once one arrives, or the code it ended with. */
function firstOfStream(client: Client, method: StreamingMethod, request: unknown, metadata: Metadata, toJsonObject: (response: unknown) => JsonObject): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = method.call(client, request, metadata);
    let settled = false;
    call.on('data', (response) => {
      if (settled) return;
      settled = true;
      resolve({ code: status.OK, reason: undefined, response: toJsonObject(response) });
      call.cancel();
    });
    call.on('error', (error: ServiceError) => {
      if (settled) return;
      settled = true;
      resolve({ code: error.code, reason: reasonOf(error.metadata), response: undefined });
    });
  });
}

function reasonOf(metadata: Metadata | undefined): string | undefined {
  const details = metadata?.get('grpc-status-details-bin')[0];
  if (!(details instanceof Buffer)) return undefined;
  const info = Status.decode(details).details.find((any) => any.typeUrl === 'type.googleapis.com/google.rpc.ErrorInfo');
  return info ? ErrorInfo.decode(info.value).reason : undefined;
}

/**
 * HTTP with fetch, against the route the RPC's google.api.http annotation defines: path variables
 * from the request (secret paths raw, or with `/` sent as %2F), the body for `body: "*"`, and the
 * rest in the query string. Every response is also checked for the gateway's HTTP conventions
 * and against the hosted API's OpenAPI schema for the operation.
 */
export function httpDriver(t: TestApp, routes: RouteTable, { encodeSlashes }: { encodeSlashes: boolean }): Driver {
  return {
    name: encodeSlashes ? 'HTTP (paths percent-encoded)' : 'HTTP (paths raw)',
    async call(step, json) {
      const route = routes.routesOf(step.rpc)[step.binding ?? 0];
      if (!route) throw new Error(`${step.rpc} has no HTTP binding ${step.binding ?? 0}`);
      const rest = structuredClone(json) as JsonObject;
      const bound = new Map(route.template.variables.map((v, i) => [v.fieldPath.join('.'), take(rest, route.pathFields[i]!)]));
      let url = expandPathTemplate(route.template, (fieldPath) => bound.get(fieldPath.join('.')) ?? '', { encodeSlashes });

      let body: string | undefined;
      if (route.body === '*') {
        if (Object.keys(rest).length > 0) body = JSON.stringify(rest);
      } else {
        if (route.bodyField) {
          const value = rest[route.bodyField.name] ?? rest[route.bodyField.jsonName];
          delete rest[route.bodyField.name];
          delete rest[route.bodyField.jsonName];
          if (value !== undefined) body = JSON.stringify(value);
        }
        const query = toQuery(rest);
        if (query) url += `?${query}`;
      }

      const token = step.token === undefined ? TEST_ROOT_TOKEN : step.token;
      const hangUp = new AbortController();
      const response = await fetch(`${t.httpBaseUrl}${url}`, {
        method: route.httpMethod,
        headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body,
        signal: hangUp.signal,
      });
      if (route.method.stream && response.ok) {
        // An event stream never ends by itself: its opening is the call's success.
        expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
        hangUp.abort();
        return { code: status.OK, reason: undefined, response: {} };
      }
      const text = await response.text();
      const where = `${route.httpMethod} ${url} -> ${response.status} ${text.slice(0, 300)}`;
      expect(response.headers.get('x-request-id'), where).toMatch(/^[A-Za-z0-9._:-]+$/);
      const parsed = text === '' ? undefined : (JSON.parse(text) as JsonValue);
      if (response.status !== 204) expect(response.headers.get('content-type'), where).toBe('application/json; charset=utf-8');

      const operationId = OPERATION_IDS[step.rpc];
      if (operationId) expect(validateResponse(operationId, response.status, parsed, { strict: true }), where).toEqual([]);

      if (response.ok) {
        expect(response.status, where).toBe(httpStatusForSuccess(step.rpc, route.descriptor.output.fields.length === 0));
        if (response.status === 204) expect(text, where).toBe('');
        const message = route.responseField ? { [route.responseField.name]: parsed ?? null } : (parsed ?? {});
        return { code: status.OK, reason: undefined, response: message as JsonObject };
      }
      const error = parsed as { code: number; message: string; details: Array<Record<string, unknown>> } & JsonObject;
      const reason = error.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.ErrorInfo')?.reason as string | undefined;
      expect(error, where).toEqual({
        code: expect.any(Number),
        message: expect.any(String),
        details: expect.any(Array),
        type: 'about:blank',
        title: reasonPhrase(response.status),
        status: response.status,
        detail: error.message,
      });
      expect(response.status, where).toBe(httpStatusForError(error.code, reason));
      if (response.status === 401) expect(response.headers.get('www-authenticate'), where).toBe('Bearer');
      return { code: error.code, reason, response: undefined } satisfies Outcome;
    },
  };
}

/** Removes a (nested) field from a proto3 JSON object, by proto or JSON name, and returns it as text. */
function take(json: JsonObject, fields: readonly DescField[]): string {
  let node: JsonValue | undefined = json;
  for (const [i, field] of fields.entries()) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return '';
    const key: string = field.name in node ? field.name : field.jsonName;
    const value: JsonValue | undefined = node[key];
    if (i === fields.length - 1) delete node[key];
    node = value;
  }
  return node === undefined || node === null ? '' : String(node);
}

/** proto3 JSON as grpc-gateway query parameters: dotted paths for nested fields, repeated keys for lists. */
function toQuery(json: JsonObject, prefix = ''): string {
  return Object.entries(json)
    .flatMap(([key, value]) => {
      const name = `${prefix}${key}`;
      if (Array.isArray(value)) return value.map((item) => `${encodeURIComponent(name)}=${encodeURIComponent(String(item))}`);
      if (typeof value === 'object' && value !== null) return [toQuery(value, `${name}.`)].filter(Boolean);
      return [`${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`];
    })
    .join('&');
}
