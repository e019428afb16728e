import { fromJson, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouteTable, descriptorRegistry, type Route } from '../../src/gateway/route-table.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { rawGrpcClient, timestampField } from '../support/raw-grpc.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

/**
 * Hostile input on every HTTP route and every gRPC method, both read from the service itself (its
 * route table and method list), with a fixed seed: no answer may be a 5xx, INTERNAL or UNKNOWN,
 * nothing may be logged as an unexpected error, and the process keeps serving, with every
 * listing still readable afterwards (a refused write must leave nothing behind that breaks it).
 */
const SEED = 20261201;
const registry = descriptorRegistry(loadDescriptorSetBytes());

const TIMESTAMPS = [
  '9999-12-31T23:59:59.999999999Z',
  '0001-01-01T00:00:00Z',
  '0000-12-31T23:59:59Z',
  '10000-01-01T00:00:00Z',
  '2030-02-30T00:00:00Z',
  '2030-01-01T00:00:00+25:00',
  '2030-01-01T00:00:00.9999999999Z',
  '1970-01-01T00:00:00Z',
  '2999-01-01T00:00:00-23:59',
];
const NUMBERS = ['1e400', '-1e400', '-0', '0', '9007199254740993', '1.5', '-2147483649', '2147483648', '4294967296', '18446744073709551616', '1e-400', '-1'];
const STRINGS = ['"NaN"', '"Infinity"', '"-Infinity"', '""', '"\\ud800"', '"a\\udfff"', '"\\u0000"', '"__proto__"', '"1e400"', '"-0"', '" 5"', '"0x10"'];
/** Secret-store seconds/nanos at and past the Timestamp range. */
const TIMESTAMP_PARTS: Array<[bigint, number]> = [
  [253_402_300_799n, 999_999_999],
  [253_402_300_800n, 0],
  [-62_135_596_800n, 0],
  [-62_135_596_801n, 0],
  [9_223_372_036_854_775_807n, 0],
  [-9_223_372_036_854_775_808n, -1],
  [2_000_000_000n, 1_000_000_000],
  [2_000_000_000n, -2_147_483_648],
];

const scalarText = fc.oneof(
  fc.constantFrom(...NUMBERS, ...STRINGS, 'null', 'true', 'false'),
  fc.constantFrom(...TIMESTAMPS).map((t) => JSON.stringify(t)),
  fc.double().map((d) => JSON.stringify(d)),
  fc.integer().map(String),
  fc.string({ maxLength: 20 }).map((s) => JSON.stringify(s)),
);

function deepText(levels: number, array: boolean): string {
  return array ? `${'['.repeat(levels)}1${']'.repeat(levels)}` : `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

const { value: jsonText } = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalarText, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
  object: fc
    .array(fc.tuple(fc.oneof(fc.string({ maxLength: 6 }).map((k) => JSON.stringify(k)), fc.constant('"__proto__"')), tie('value')), { maxLength: 4 })
    .map((entries) => `{${entries.map(([k, v]) => `${k}:${v}`).join(',')}}`),
}));

/** Any JSON value, weighted towards what breaks decoders: extremes and nesting near the limit. */
const valueText = fc.oneof(
  { weight: 4, arbitrary: jsonText },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 28, max: 40 }), fc.boolean()).map(([n, a]) => deepText(n, a)) },
);

/** A JSON object whose keys are mostly the request's own fields (proto and JSON names). */
function requestText(input: DescMessage) {
  const names = [...input.fields.flatMap((f) => [f.name, f.jsonName]), 'unknown_field'];
  const key = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', '') });
  return fc.array(fc.tuple(key, valueText), { maxLength: 6 }).map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
}

/** The input fields that are google.protobuf.Timestamp, by number. */
function timestampFields(input: DescMessage): number[] {
  return input.fields.filter((f) => f.fieldKind === 'message' && f.message.typeName === 'google.protobuf.Timestamp').map((f) => f.number);
}

function fuzz(storage: string, env: () => Record<string, string>, runs: number) {
  let t: TestApp;
  let grpc: ReturnType<typeof rawGrpcClient>;
  let routes: readonly Route[];
  let pieces: string[];

  beforeAll(async () => {
    t = await startTestApp(env());
    grpc = rawGrpcClient(t.grpcAddress);
    routes = createRouteTable({ methods: t.app.methods, registry }).routes;
    const vaultId = (await t.http('POST', '/v1/vaults', { body: { name: 'fuzz' } })).json.id as string;
    await t.http('PUT', `/v1/vaults/${vaultId}/secrets/fz/a`, { body: { value: 'v', max_access_count: 1000 } });
    const agentId = (await t.http('POST', '/v1/agents', { body: { name: 'fuzz' } })).json.agent.id as string;
    const policy = await t.http('POST', `/v1/vaults/${vaultId}/policies`, {
      body: { secret_path_pattern: 'fz/**', principal_type: 'agent', principal_id: agentId, permissions: ['read'] },
    });
    pieces = [vaultId, agentId, policy.json.id, 'fz/a', 'fz%2Fa', 'me', '1', '0', '-1', '99999999999', 'a'.repeat(600), '%zz', '%FF', '%00', '..', '__proto__', 'x:y'];
  });
  afterAll(async () => {
    grpc?.close();
    await t?.close();
  });

  function pathFor(route: Route, fill: string[]): string {
    let i = 0;
    const parts = route.template.segments.map((segment) => (segment.kind === 'literal' ? segment.value : (fill[i++ % fill.length] ?? 'x')));
    return `/${parts.join('/')}${route.template.verb ? `:${route.template.verb}` : ''}`;
  }

  it(`never answers 5xx on any HTTP route (${storage})`, async () => {
    const seen = new Set<number>();
    expect(routes.length).toBeGreaterThan(25);
    const request = fc.constantFrom(...routes).chain((route) =>
      fc.record({
        route: fc.constant(route),
        head: fc.boolean(),
        fill: fc.array(fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 8 }).map(encodeURIComponent)), { minLength: 1, maxLength: 3 }),
        query: fc.array(fc.tuple(fc.constantFrom(...route.descriptor.input.fields.map((f) => f.name), 'x'), fc.oneof(fc.constantFrom(...TIMESTAMPS, ...NUMBERS, 'NaN', ''), fc.string({ maxLength: 6 }))), {
          maxLength: 3,
        }),
        body: fc.oneof(
          { weight: 4, arbitrary: requestText(route.descriptor.input).map((text) => Buffer.from(text)) },
          { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
          { weight: 1, arbitrary: valueText.map((text) => Buffer.from(text)) },
          { weight: 1, arbitrary: fc.constant(undefined) },
        ),
        contentType: fc.constantFrom('application/json', 'application/json', undefined, 'text/plain'),
        token: fc.constantFrom(TEST_ROOT_TOKEN, TEST_ROOT_TOKEN, '', 'ocv_x'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(request, async ({ route, head, fill, query, body, contentType, token }) => {
        const method = head && route.httpMethod === 'GET' ? 'HEAD' : route.httpMethod;
        const search = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const url = `${t.httpBaseUrl}${pathFor(route, fill)}${search ? `?${search}` : ''}`;
        const response = await fetch(url, {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(contentType ? { 'content-type': contentType } : {}) },
          body: method === 'GET' || method === 'HEAD' ? undefined : body,
        });
        const text = await response.text();
        seen.add(Math.floor(response.status / 100));
        expect(response.status, `${method} ${url} ${body?.toString() ?? ''} -> ${text}`).toBeLessThan(500);
        if (text) expect(() => JSON.parse(text)).not.toThrow();
      }),
      { seed: SEED, numRuns: runs },
    );
    // Some calls got through to the handlers, some were refused: the fuzz reaches both.
    expect([...seen].sort()).toEqual([2, 4]);
    await expectStillServing();
  });

  it(`never answers INTERNAL or UNKNOWN on any gRPC method (${storage})`, async () => {
    const seen = new Set<status>();
    expect(t.app.methods.length).toBeGreaterThan(20);
    const call = fc.constantFrom(...t.app.methods).chain((method) => {
      const input = registry.getService(method.fullName.slice(0, method.fullName.lastIndexOf('.')))!.methods.find((m) => method.fullName.endsWith(`.${m.name}`))!.input;
      const stamps = timestampFields(input);
      // A well-formed message from JSON when the JSON fits the schema, else raw bytes; then mangled.
      const fromText = requestText(input).map((text) => {
        try {
          return toBinary(input, fromJson(input, JSON.parse(text), { ignoreUnknownFields: true }));
        } catch {
          return new TextEncoder().encode(text);
        }
      });
      const mangled = fc.tuple(fromText, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('keep', 'truncate', 'flip', 'timestamp')).map(([bytes, at, byte, how]) => {
        if (how === 'truncate') return bytes.slice(0, at % (bytes.length + 1));
        if (how === 'flip' && bytes.length > 0) {
          const copy = bytes.slice();
          copy[at % copy.length] = byte;
          return copy;
        }
        if (how === 'timestamp' && stamps.length > 0) {
          const [seconds, nanos] = TIMESTAMP_PARTS[at % TIMESTAMP_PARTS.length]!;
          const writer = new BinaryWriter();
          writer.raw(bytes);
          timestampField(writer, stamps[at % stamps.length]!, seconds, nanos);
          return writer.finish();
        }
        return bytes;
      });
      return fc.record({
        method: fc.constant(method),
        body: fc.oneof({ weight: 4, arbitrary: mangled }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) }),
        token: fc.constantFrom(TEST_ROOT_TOKEN, TEST_ROOT_TOKEN, undefined),
      });
    });
    await fc.assert(
      fc.asyncProperty(call, async ({ method, body, token }) => {
        const answer = await grpc.call(method.path, body, token);
        seen.add(answer.code);
        expect([status.INTERNAL, status.UNKNOWN, status.UNAVAILABLE, status.DATA_LOSS], `${method.path} ${Buffer.from(body).toString('hex')} -> ${status[answer.code]} ${answer.details}`).not.toContain(answer.code);
      }),
      { seed: SEED, numRuns: runs },
    );
    expect(seen).toContain(status.OK);
    expect(seen).toContain(status.INVALID_ARGUMENT);
    await expectStillServing();
  });

  async function expectStillServing() {
    expect((await t.http('GET', '/v1/health')).status).toBe(200);
    const vaults = await t.http('GET', '/v1/vaults');
    expect(vaults.status).toBe(200);
    const listings = ['/v1/agents', '/v1/audit/events?limit=1000', ...vaults.json.vaults.flatMap((v: { id: string }) => [`/v1/vaults/${v.id}/secrets`, `/v1/vaults/${v.id}/policies`])];
    for (const path of listings) {
      const result = await t.http('GET', path);
      expect(result.status, `${path}: ${result.text}`).toBe(200);
    }
    expect(t.logs.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
  }
}

describe('fuzzing every route and method on memory storage', () => fuzz('memory', () => ({}), 200));

describeWithDatabase('fuzzing every route and method on MySQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = (await createTestDatabase())!;
  });
  afterAll(() => db?.drop());
  fuzz('mysql', () => ({ VAULT_DATABASE_URL: db.url }), 50);
});
