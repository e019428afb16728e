import { Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import type { PutSecretRequest, PutSecretResponse } from '../../src/gen/vault/v1/secret_service.js';
import { createTestDatabase, describeWithDatabase } from '../support/database.js';
import { createTestClock, startTestApp, unary, type TestApp, type TestClock } from '../support/test-app.js';

/**
 * Idempotency keys (`request_id`; REST `Idempotency-Key`): a repeat with the same key and request
 * changes nothing and gets the first answer, marked `idempotent-replayed`, on any instance and
 * under concurrency; the same key with another request is ALREADY_EXISTS / 409; a failed call
 * keeps no key; keys are per caller and expire after the retention (an injected clock, not a wait).
 */
const RETENTION_SECONDS = 3600;
const rejection = (call: Promise<unknown>) => call.then(() => expect.unreachable('the call succeeded'), (e: ServiceError) => e);
const reasonOf = (error: ServiceError) => ErrorInfo.decode(Status.decode(error.metadata.get('grpc-status-details-bin')[0] as Buffer).details[0]!.value).reason;

/** A unary call that also resolves the trailers, where `idempotent-replayed` is. */
function withTrailers<Res>(client: Client, method: (...args: any[]) => any, request: unknown, metadata: Metadata): Promise<{ response: Res; replayed: boolean }> {
  return new Promise((resolve, reject) => {
    let response: Res;
    const call = method.call(client, request, metadata, {}, (error: ServiceError | null, value: Res) => {
      if (error) reject(error);
      else response = value;
    });
    call.on('status', (s: { code: number; metadata: Metadata }) => {
      if (s.code === status.OK) resolve({ response, replayed: s.metadata.get('idempotent-replayed')[0] === 'true' });
    });
  });
}

const putRequest = (vaultId: string, path: string, value: string, requestId?: string, ifVersion?: number): PutSecretRequest => ({
  vaultId,
  path,
  value,
  type: '',
  metadata: { owner: 'ml', team: 'core' },
  expiresAt: undefined,
  maxAccessCount: 0,
  ifVersion,
  requestId,
});

function idempotencyOn(label: string, env: () => Promise<Record<string, string>>) {
  describe(`idempotency keys on ${label}`, () => {
    let t: TestApp;
    let clock: TestClock;
    let vaultId: string;
    beforeAll(async () => {
      clock = createTestClock();
      t = await startTestApp({ ...(await env()), VAULT_IDEMPOTENCY_RETENTION_SECONDS: String(RETENTION_SECONDS) }, { clock, rotationTickMs: null });
      vaultId = (await t.http('POST', '/v1/vaults', { body: { name: `idem-${label}` } })).json.id;
    });
    afterAll(async () => t?.close());

    const put = (path: string, value: string, requestId?: string, ifVersion?: number, metadata = t.auth()) =>
      withTrailers<PutSecretResponse>(t.clients.secrets, t.clients.secrets.putSecret, putRequest(vaultId, path, value, requestId, ifVersion), metadata);
    const versionsOf = async (path: string) =>
      (await unary(t.clients.secrets, t.clients.secrets.listSecretVersions, { vaultId, path, pageSize: 0, pageToken: '' }, t.auth())).versions.map((v) => v.version);

    it('answers ten concurrent repeats with one version and one answer', async () => {
      const answers = await Promise.all(Array.from({ length: 10 }, () => put('concurrent', 'v1', 'key-concurrent')));
      expect(await versionsOf('concurrent')).toEqual([1]);
      for (const answer of answers) expect(answer.response).toEqual(answers[0]!.response);
      expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    });

    it('replays a sequential retry later, and refuses the key with a different value', async () => {
      const first = await put('retry', 'v1', 'key-retry');
      expect(first).toMatchObject({ replayed: false, response: { secret: { version: 1 } } });
      clock.advance(60_000);
      const again = await put('retry', 'v1', 'key-retry');
      expect(again).toEqual({ replayed: true, response: first.response });

      const reused = await rejection(put('retry', 'v2', 'key-retry'));
      expect(reused.code).toBe(status.ALREADY_EXISTS);
      expect(reasonOf(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(reused.details).toMatch(/already used for a different request/);
      expect(await versionsOf('retry')).toEqual([1]);
      expect((await unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path: 'retry' }, t.auth())).secret!.value).toBe('v1');
    });

    it('frees the key once the retention has passed', async () => {
      await put('expiry', 'v1', 'key-expiry');
      clock.advance(RETENTION_SECONDS * 1000 - 1);
      expect((await put('expiry', 'v1', 'key-expiry')).replayed).toBe(true);
      clock.advance(1);
      const after = await put('expiry', 'v1', 'key-expiry');
      expect(after).toMatchObject({ replayed: false, response: { secret: { version: 2 } } });
    });

    it('deletes expired keys in the background job, and only those', async () => {
      await put('sweep', 'v1', 'key-sweep-old');
      clock.advance(RETENTION_SECONDS * 1000);
      await put('sweep', 'v2', 'key-sweep-new');
      expect(await t.app.expireIdempotencyKeys()).toBeGreaterThanOrEqual(1);
      expect(await t.app.expireIdempotencyKeys()).toBe(0);
      expect((await put('sweep', 'v2', 'key-sweep-new')).replayed).toBe(true);
    });

    it('keeps no key for a call that failed, so a corrected retry with it works', async () => {
      const invalid = await rejection(put('fixed', '', 'key-fixed'));
      expect(invalid.code).toBe(status.INVALID_ARGUMENT);
      const created = await put('fixed', 'now valid', 'key-fixed');
      expect(created).toMatchObject({ replayed: false, response: { secret: { version: 1 } } });

      // A stale if_version is a failure too; ten concurrent ones all fail, and then the right one works.
      const stale = await Promise.all(Array.from({ length: 10 }, () => rejection(put('fixed', 'second', 'key-fixed-2', 0))));
      expect(stale.map(reasonOf)).toEqual(Array.from({ length: 10 }, () => 'VERSION_MISMATCH'));
      expect((await put('fixed', 'second', 'key-fixed-2', 1)).response.secret!.version).toBe(2);
    });

    it('refuses a key that is empty, too long or not printable ASCII', async () => {
      for (const key of ['', 'k'.repeat(129), 'tab\there', 'café']) {
        const refused = await rejection(put('bad-key', 'v', key));
        expect(refused.code, JSON.stringify(key)).toBe(status.INVALID_ARGUMENT);
        expect(refused.details).toMatch(/request_id \(Idempotency-Key\) must be/);
      }
      expect((await put('bad-key', 'v', 'k'.repeat(128))).replayed).toBe(false);
    });

    it('scopes a key to its caller and method', async () => {
      const created = await t.http('POST', '/v1/agents', { body: { name: `writer-${label}` } });
      const agentId = created.json.agent.id as string;
      await t.http('POST', `/v1/vaults/${vaultId}/policies`, {
        body: { secret_path_pattern: 'shared/**', principal_type: 'agent', principal_id: agentId, permissions: ['write', 'read'] },
      });
      const asAgent = t.auth(created.json.api_key);
      expect((await put('shared/a', 'by root', 'same-key')).response.secret!.version).toBe(1);
      const byAgent = await put('shared/a', 'by agent', 'same-key', undefined, asAgent);
      expect(byAgent).toMatchObject({ replayed: false, response: { secret: { version: 2 } } });
      // Another method with the same key is another key too.
      const rotated = await withTrailers<{ secret: { version: number } }>(t.clients.secrets, t.clients.secrets.rotateSecret, {
        vaultId, path: 'shared/a', length: 16, charset: '', type: '', metadata: undefined, stage: '', expiresAt: undefined, maxAccessCount: undefined, requestId: 'same-key',
      }, t.auth());
      expect(rotated).toMatchObject({ replayed: false, response: { secret: { version: 3 } } });
    });

    it('replays CreateAgent and RotateAgentKey without the API key', async () => {
      const request = { name: `bot-${label}`, description: '', scopes: [], expiresAt: undefined, requestId: 'key-agent' };
      const first = await withTrailers<{ agent: { id: string }; apiKey: string }>(t.clients.agents, t.clients.agents.createAgent, request, t.auth());
      expect(first.response.apiKey).toMatch(/^ocv_/);
      const replay = await withTrailers<{ agent: { id: string }; apiKey: string }>(t.clients.agents, t.clients.agents.createAgent, request, t.auth());
      expect(replay).toEqual({ replayed: true, response: { agent: first.response.agent, apiKey: '' } });

      const rotate = { agentId: first.response.agent.id, requestId: 'key-rotate' };
      const rotated = await withTrailers<{ apiKey: string }>(t.clients.agents, t.clients.agents.rotateAgentKey, rotate, t.auth());
      const again = await withTrailers<{ apiKey: string }>(t.clients.agents, t.clients.agents.rotateAgentKey, rotate, t.auth());
      expect(again).toMatchObject({ replayed: true, response: { apiKey: '' } });
      // The replay did not rotate again: the key from the first rotation still works.
      expect((await t.http('GET', '/v1/agents/me', { token: rotated.response.apiKey })).status).toBe(200);
    });

    it('takes the Idempotency-Key header over REST, with the same status and body on a replay', async () => {
      const url = `/v1/vaults/${vaultId}/secrets/rest/a`;
      const send = (value: string, headers: Record<string, string>, body: object = {}) =>
        t.http('PUT', url, { body: { value, metadata: { team: 'core', owner: 'ml' }, ...body }, headers });
      const first = await send('one', { 'Idempotency-Key': 'rest-key' });
      expect(first.status).toBe(201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const again = await send('one', { 'Idempotency-Key': 'rest-key' });
      expect([again.status, again.text, again.headers.get('etag')]).toEqual([201, first.text, first.headers.get('etag')]);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      // The key in the body is the same key; the same request over gRPC replays too.
      expect((await send('one', {}, { request_id: 'rest-key' })).headers.get('idempotent-replayed')).toBe('true');
      expect((await put('rest/a', 'one', 'rest-key')).replayed).toBe(true);

      const reused = await send('two', { 'Idempotency-Key': 'rest-key' });
      expect(reused.status).toBe(409);
      expect(reused.json.details[0]).toMatchObject({ reason: 'IDEMPOTENCY_KEY_REUSED' });
      const contradicting = await send('one', { 'Idempotency-Key': 'rest-key' }, { request_id: 'other' });
      expect(contradicting.status).toBe(400);
      expect(contradicting.json.message).toMatch(/Idempotency-Key header and request_id differ/);

      // A body-less write: DELETE answers 204 again without deleting twice.
      const remove = () => t.http('DELETE', url, { headers: { 'Idempotency-Key': 'rest-delete' } });
      expect((await remove()).status).toBe(204);
      const removedAgain = await remove();
      expect([removedAgain.status, removedAgain.headers.get('idempotent-replayed')]).toEqual([204, 'true']);
    });

    it('treats a request with its JSON object keys in another order as the same request', async () => {
      const url = `/v1/vaults/${vaultId}/secrets/rest/order`;
      const headers = { 'Idempotency-Key': 'order-key' };
      expect((await t.http('PUT', url, { body: '{"value":"x","metadata":{"a":1,"b":2}}', headers })).status).toBe(201);
      const again = await t.http('PUT', url, { body: '{"metadata":{"b":2,"a":1},"value":"x"}', headers });
      expect([again.status, again.headers.get('idempotent-replayed')]).toEqual([201, 'true']);
    });

    it('still records the refusal of an idempotent call', async () => {
      const created = await t.http('POST', '/v1/agents', { body: { name: `reader-${label}` } });
      const refused = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/forbidden/x`, {
        body: { value: 'x' },
        token: created.json.api_key,
        headers: { 'Idempotency-Key': 'refused-key' },
      });
      expect(refused.status).toBe(403);
      const events = await t.http('GET', `/v1/audit/events?action=secret.write&resource_id=forbidden/x`);
      expect(events.json.events.map((e: { outcome: string; actor_id: string }) => [e.outcome, e.actor_id])).toEqual([['denied', created.json.agent.id]]);
    });
  });
}

idempotencyOn('memory', async () => ({}));

describeWithDatabase('idempotency keys on MySQL storage', () => {
  idempotencyOn('mysql', async () => ({ VAULT_DATABASE_URL: (await createTestDatabase())!.url }));
});

describeWithDatabase('idempotency keys across two instances on MySQL', () => {
  let a: TestApp;
  let b: TestApp;
  let vaultId: string;
  const clock = createTestClock();
  beforeAll(async () => {
    const database = (await createTestDatabase())!;
    a = await startTestApp({ VAULT_DATABASE_URL: database.url }, { clock, rotationTickMs: null });
    b = await startTestApp({ VAULT_DATABASE_URL: database.url }, { clock, rotationTickMs: null });
    vaultId = (await a.http('POST', '/v1/vaults', { body: { name: 'idem-two' } })).json.id;
  });
  afterAll(async () => Promise.all([a?.close(), b?.close()]));

  it('creates one version for ten concurrent repeats on two instances, and all ten get its answer', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => {
        const t = i % 2 ? a : b;
        return withTrailers<PutSecretResponse>(t.clients.secrets, t.clients.secrets.putSecret, putRequest(vaultId, 'race', 'v1', 'race-key'), t.auth());
      }),
    );
    for (const answer of answers) expect(answer.response).toEqual(answers[0]!.response);
    expect(answers.filter((x) => !x.replayed)).toHaveLength(1);
    const listed = await b.http('GET', `/v1/vaults/${vaultId}/secret-versions/race`);
    expect(listed.json.versions.map((v: { version: number }) => v.version)).toEqual([1]);

    // A retry a minute later, on either instance, is the same answer again.
    clock.advance(60_000);
    for (const t of [a, b]) {
      const later = await withTrailers<PutSecretResponse>(t.clients.secrets, t.clients.secrets.putSecret, putRequest(vaultId, 'race', 'v1', 'race-key'), t.auth());
      expect(later).toEqual({ replayed: true, response: answers[0]!.response });
    }
    const reused = await rejection(unary(b.clients.secrets, b.clients.secrets.putSecret, putRequest(vaultId, 'race', 'v2', 'race-key'), b.auth()));
    expect(reasonOf(reused)).toBe('IDEMPOTENCY_KEY_REUSED');
  });
});
