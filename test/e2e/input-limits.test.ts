import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { nestedStructField, protobuf, rawGrpcClient, timestampField } from '../support/raw-grpc.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

const TOO_LATE = ['10000-01-01T00:00:00Z', '+010000-01-01T00:00:00Z'];
const LAST = '9999-12-31T23:59:59.999999999Z';
/** seconds, nanos pairs no Timestamp may hold. */
const BAD_PARTS: Array<[bigint, number]> = [
  [253_402_300_800n, 0],
  [-62_135_596_801n, 0],
  [9_000_000_000_000_000n, 0],
  [2_000_000_000n, -1],
  [2_000_000_000n, 1_000_000_000],
];

/** The input limits over both transports, on one storage. */
function inputLimits(storage: string, env: () => Record<string, string>) {
  let t: TestApp;
  let grpc: ReturnType<typeof rawGrpcClient>;
  let vaultId: string;
  let agentId: string;
  let policyId: string;

  beforeAll(async () => {
    t = await startTestApp(env());
    grpc = rawGrpcClient(t.grpcAddress);
    vaultId = (await t.http('POST', '/v1/vaults', { body: { name: `limits-${storage}` } })).json.id;
    agentId = (await t.http('POST', '/v1/agents', { body: { name: 'limits-agent' } })).json.agent.id;
    const policy = await t.http('POST', `/v1/vaults/${vaultId}/policies`, {
      body: { secret_path_pattern: 'x/**', principal_type: 'agent', principal_id: agentId, permissions: ['read'] },
    });
    policyId = policy.json.id ?? policy.json.policy?.id;
  });
  afterAll(async () => {
    grpc?.close();
    await t?.close();
  });

  /** Everything a later caller lists must still answer 200 after the refusals. */
  async function listingsStillWork() {
    for (const path of ['/v1/agents', `/v1/vaults/${vaultId}/secrets`, `/v1/vaults/${vaultId}/policies`, '/v1/audit/events?limit=1000']) {
      const result = await t.http('GET', path);
      expect(result.status, `${path}: ${result.text}`).toBe(200);
    }
  }

  describe(`timestamps (${storage})`, () => {
    it('refuses an expires_at past 9999 over HTTP with 400 naming the field, and stores nothing', async () => {
      const agentsBefore = (await t.http('GET', '/v1/agents')).json.agents.length;
      for (const at of TOO_LATE) {
        const cases: Array<[string, string, unknown]> = [
          ['PUT', `/v1/vaults/${vaultId}/secrets/ts/late`, { value: 'x', expires_at: at }],
          ['POST', '/v1/agents', { name: 'late', expires_at: at }],
          ['PATCH', `/v1/agents/${agentId}`, { expires_at: at }],
          ['POST', `/v1/vaults/${vaultId}/policies`, { secret_path_pattern: 'a/*', principal_type: 'agent', principal_id: agentId, permissions: ['read'], expires_at: at }],
          ['PUT', `/v1/vaults/${vaultId}/policies/${policyId}`, { permissions: ['read'], expires_at: at }],
        ];
        for (const [method, path, body] of cases) {
          const result = await t.http(method, path, { body });
          expect(result.status, `${method} ${path} ${at}: ${result.text}`).toBe(400);
          expect(result.json.message).toMatch(/expires_at/);
        }
        for (const field of ['from', 'to']) {
          const result = await t.http('GET', `/v1/audit/events?${field}=${encodeURIComponent(at)}`);
          expect(result.status, result.text).toBe(400);
          expect(result.json.message).toContain(field);
        }
      }
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/ts/late`)).status).toBe(404);
      expect((await t.http('GET', '/v1/agents')).json.agents).toHaveLength(agentsBefore);
      await listingsStillWork();
    });

    it('accepts the last representable instant and reads it back', async () => {
      const put = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/ts/last`, { body: { value: 'x', expires_at: LAST } });
      expect(put.status, put.text).toBe(201);
      expect(put.json.expires_at).toBe('9999-12-31T23:59:59.999Z');
      const agent = await t.http('POST', '/v1/agents', { body: { name: 'last', expires_at: LAST } });
      expect(agent.status, agent.text).toBe(201);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/ts/last`)).json.expires_at).toBe('9999-12-31T23:59:59.999Z');
      expect((await t.http('GET', `/v1/audit/events?to=${encodeURIComponent(LAST)}&limit=1`)).status).toBe(200);
      await listingsStillWork();
    });

    it('refuses out-of-range seconds and nanos over gRPC with INVALID_ARGUMENT naming the field, and stores nothing', async () => {
      for (const [seconds, nanos] of BAD_PARTS) {
        const cases: Array<[string, Uint8Array, string]> = [
          [
            '/vault.v1.SecretService/PutSecret',
            protobuf((w) => {
              w.tag(1, 2).string(vaultId).tag(2, 2).string('ts/grpc').tag(3, 2).string('x');
              timestampField(w, 6, seconds, nanos);
            }),
            'expires_at',
          ],
          ['/vault.v1.AgentService/CreateAgent', protobuf((w) => timestampField(w.tag(1, 2).string('late'), 4, seconds, nanos)), 'expires_at'],
          ['/vault.v1.AgentService/UpdateAgent', protobuf((w) => timestampField(w.tag(1, 2).string(agentId), 5, seconds, nanos)), 'expires_at'],
          [
            '/vault.v1.PolicyService/CreatePolicy',
            protobuf((w) => {
              w.tag(1, 2).string(vaultId).tag(2, 2).string('a/*').tag(3, 2).string('agent').tag(4, 2).string(agentId).tag(5, 2).string('read');
              timestampField(w, 7, seconds, nanos);
            }),
            'expires_at',
          ],
          [
            '/vault.v1.PolicyService/UpdatePolicy',
            protobuf((w) => timestampField(w.tag(1, 2).string(vaultId).tag(2, 2).string(policyId).tag(3, 2).string('read'), 5, seconds, nanos)),
            'expires_at',
          ],
          ['/vault.v1.AuditService/ListAuditEvents', protobuf((w) => timestampField(w, 4, seconds, nanos)), 'from'],
          ['/vault.v1.AuditService/ListAuditEvents', protobuf((w) => timestampField(w, 5, seconds, nanos)), 'to'],
        ];
        for (const [path, body, field] of cases) {
          const answer = await grpc.call(path, body, TEST_ROOT_TOKEN);
          expect(answer.code, `${path} ${seconds}/${nanos}: ${answer.details}`).toBe(status.INVALID_ARGUMENT);
          expect(answer.details).toContain(field);
        }
      }
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/ts/grpc`)).status).toBe(404);
      expect((await t.http('GET', '/v1/agents')).json.agents.map((a: { name: string }) => a.name)).not.toContain('late');
      await listingsStillWork();
    });
  });

  describe(`nesting (${storage})`, () => {
    const nested = (levels: number) => {
      let m = '1';
      for (let i = 0; i < levels; i++) m = `{"a":${m}}`;
      return m;
    };

    it('refuses a body nested deeper than 32 levels with 400 before authentication, and takes 32', async () => {
      for (const levels of [32, 40, 64, 100, 5000]) {
        const result = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/deep/a`, { body: `{"value":"x","metadata":${nested(levels)}}`, token: null });
        expect(result.status, `${levels}: ${result.text}`).toBe(400);
        expect(result.json.message).toMatch(/nests deeper than 32 levels/);
      }
      // The request object is level 1, so metadata may nest 31.
      const ok = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/deep/a`, { body: `{"value":"x","metadata":${nested(31)}}` });
      expect(ok.status, ok.text).toBe(201);
      const read = await t.http('GET', `/v1/vaults/${vaultId}/secrets/deep/a`);
      expect(JSON.stringify(read.json.metadata)).toBe(nested(31));
      expect(t.logs.filter((line) => line.includes('"level":50'))).toEqual([]);
    });

    it('refuses metadata nested deeper than the limit over gRPC with INVALID_ARGUMENT, never INTERNAL', async () => {
      for (const levels of [32, 40, 100, 3000]) {
        const body = protobuf((w) => {
          w.tag(1, 2).string(vaultId).tag(2, 2).string('deep/grpc').tag(3, 2).string('x');
          nestedStructField(w, 5, levels);
        });
        const answer = await grpc.call('/vault.v1.SecretService/PutSecret', body);
        expect(answer.code, `${levels}: ${answer.details}`).toBe(status.INVALID_ARGUMENT);
        expect(answer.details).toMatch(/nests deeper than 32 levels/);
      }
      const ok = protobuf((w) => {
        w.tag(1, 2).string(vaultId).tag(2, 2).string('deep/grpc').tag(3, 2).string('x');
        nestedStructField(w, 5, 31);
      });
      expect((await grpc.call('/vault.v1.SecretService/PutSecret', ok, TEST_ROOT_TOKEN)).code).toBe(status.OK);
      expect(t.logs.filter((line) => line.includes('"level":50'))).toEqual([]);
    });
  });

  describe(`malformed protobuf (${storage})`, () => {
    const garbage: Array<[string, Uint8Array]> = [
      ['a runaway tag', Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])],
      ['a truncated string field', Uint8Array.from([0x0a, 0x10, 0x61, 0x62])],
      ['wire type 7', Uint8Array.from([0x0f, 0x01])],
      ['wire type 6', Uint8Array.from([0x0e, 0x01])],
      ['a group', Uint8Array.from([0x0b, 0x0c])],
      ['field number 0', Uint8Array.from([0x00, 0x01])],
      ['an 11-byte varint', Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['a truncated fixed64', Uint8Array.from([0x09, 0x01, 0x02])],
    ];

    it('answers INVALID_ARGUMENT for malformed bytes on every method, before authentication', async () => {
      expect(t.app.methods.length).toBeGreaterThan(20);
      const answers = await Promise.all(
        t.app.methods.flatMap((method) => garbage.map(async ([what, bytes]) => [`${method.path} with ${what}`, await grpc.call(method.path, bytes)] as const)),
      );
      for (const [what, answer] of answers) expect(answer.code, `${what}: ${answer.details}`).toBe(status.INVALID_ARGUMENT);
      expect((await t.http('GET', '/v1/health')).status).toBe(200);
    });
  });

  describe(`values are never altered (${storage})`, () => {
    it('refuses a gRPC value that is not UTF-8 instead of storing U+FFFD, and keeps a valid one byte-exact', async () => {
      const put = (value: Uint8Array, path: string) =>
        grpc.call('/vault.v1.SecretService/PutSecret', protobuf((w) => w.tag(1, 2).string(vaultId).tag(2, 2).string(path).tag(3, 2).bytes(value)), TEST_ROOT_TOKEN);
      const refused = await put(Uint8Array.from([0x61, 0xff, 0xfe, 0x62]), 'utf8/bad');
      expect(refused.code).toBe(status.INVALID_ARGUMENT);
      expect(refused.details).toMatch(/^value is not valid UTF-8/);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/utf8/bad`)).status).toBe(404);
      const text = 'a\u{1F511}é\u0000b';
      expect((await put(Buffer.from(text), 'utf8/good')).code).toBe(status.OK);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/utf8/good`)).json.value).toBe(text);
    });

    it('refuses an unpaired surrogate over HTTP instead of storing U+FFFD', async () => {
      const result = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/utf8/lone`, { body: '{"value":"a\\ud800b"}' });
      expect(result.status, result.text).toBe(400);
      expect(result.json.message).toMatch(/unpaired surrogate/);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/utf8/lone`)).status).toBe(404);
      const paired = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/utf8/pair`, { body: '{"value":"a\\ud83d\\udd11b"}' });
      expect(paired.status).toBe(201);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/utf8/pair`)).json.value).toBe('a\u{1F511}b');
    });

    it('refuses a __proto__ key in metadata and conditions over both transports', async () => {
      const put = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/meta/proto`, { body: '{"value":"x","metadata":{"__proto__":{"a":1},"k":"v"}}' });
      expect(put.status, put.text).toBe(400);
      expect(put.json.message).toMatch(/metadata has the key "__proto__"/);
      const nestedKey = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/meta/proto`, { body: '{"value":"x","metadata":{"k":{"__proto__":1}}}' });
      expect(nestedKey.status, nestedKey.text).toBe(400);
      const policy = await t.http('POST', `/v1/vaults/${vaultId}/policies`, {
        body: `{"secret_path_pattern":"p/*","principal_type":"agent","principal_id":"${agentId}","permissions":["read"],"conditions":{"__proto__":{"x":1}}}`,
      });
      expect(policy.status, policy.text).toBe(400);
      expect(policy.json.message).toMatch(/conditions has the key "__proto__"/);
      const structEntry = protobuf((w) => w.tag(1, 2).fork().tag(1, 2).string('__proto__').tag(2, 2).fork().tag(3, 2).string('v').join().join());
      const grpcPut = await grpc.call(
        '/vault.v1.SecretService/PutSecret',
        protobuf((w) => w.tag(1, 2).string(vaultId).tag(2, 2).string('meta/proto').tag(3, 2).string('x').tag(5, 2).bytes(structEntry)),
        TEST_ROOT_TOKEN,
      );
      expect(grpcPut.code, grpcPut.details).toBe(status.INVALID_ARGUMENT);
      expect(grpcPut.details).toMatch(/metadata has the key "__proto__"/);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/meta/proto`)).status).toBe(404);
    });

    it('refuses NaN and Infinity in metadata instead of storing null', async () => {
      for (const number of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const entry = protobuf((w) => w.tag(1, 2).fork().tag(1, 2).string('n').tag(2, 2).fork().tag(2, 1).double(number).join().join());
        const answer = await grpc.call(
          '/vault.v1.SecretService/PutSecret',
          protobuf((w) => w.tag(1, 2).string(vaultId).tag(2, 2).string('meta/nan').tag(3, 2).string('x').tag(5, 2).bytes(entry)),
          TEST_ROOT_TOKEN,
        );
        expect(answer.code, `${number}: ${answer.details}`).toBe(status.INVALID_ARGUMENT);
        expect(answer.details).toMatch(/metadata holds .*numbers must be finite/);
      }
      const http = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/meta/nan`, { body: '{"value":"x","metadata":{"n":1e400}}' });
      expect(http.status, http.text).toBe(400);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/meta/nan`)).status).toBe(404);
      await listingsStillWork();
    });
  });
}

describe('input limits on memory storage', () => inputLimits('memory', () => ({})));

describeWithDatabase('input limits on MySQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = (await createTestDatabase())!;
  });
  afterAll(() => db?.drop());
  inputLimits('mysql', () => ({ VAULT_DATABASE_URL: db.url }));
});
