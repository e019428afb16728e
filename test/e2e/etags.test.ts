import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { createTestDatabase, describeWithDatabase } from '../support/database.js';
import { startTestApp, unary, type HttpResult, type TestApp } from '../support/test-app.js';

/**
 * Etags on agents and policies (AIP-154): every change makes a new etag; a change sent with a
 * stale one (body `etag` or REST If-Match) is FAILED_PRECONDITION ETAG_MISMATCH / HTTP 412 and
 * changes nothing; of concurrent changes with the same etag, across instances, exactly one wins.
 */
const rejection = (call: Promise<unknown>) => call.then(() => expect.unreachable('the call succeeded'), (e: ServiceError) => e);
const reasonOf = (error: ServiceError) => ErrorInfo.decode(Status.decode(error.metadata.get('grpc-status-details-bin')[0] as Buffer).details[0]!.value);
const FUTURE = '2099-01-01T00:00:00.000Z';

/** The response's ETag header, checked to be the body's etag in quotes. */
function etagOf(res: HttpResult): string {
  expect(res.json.etag).toMatch(/^[0-9a-f]{32}$/);
  expect(res.headers.get('etag')).toBe(`"${res.json.etag}"`);
  return res.json.etag as string;
}

function etagsOn(label: string, env: () => Promise<Record<string, string>>) {
  describe(`etags on ${label}`, () => {
    let t: TestApp;
    let vaultId: string;
    beforeAll(async () => {
      t = await startTestApp(await env());
      vaultId = (await t.http('POST', '/v1/vaults', { body: { name: `etag-${label}` } })).json.id;
    });
    afterAll(async () => t?.close());

    const newAgent = async (name: string) => (await t.http('POST', '/v1/agents', { body: { name, scopes: ['ci'] } })).json as { agent: { id: string; etag: string }; api_key: string };
    const getAgent = (id: string) => t.http('GET', `/v1/agents/${id}`);
    const newPolicy = async (agentId: string) =>
      (await t.http('POST', `/v1/vaults/${vaultId}/policies`, { body: { secret_path_pattern: 'app/*', principal_type: 'agent', principal_id: agentId, permissions: ['read'] } })).json as {
        id: string;
        etag: string;
      };
    const policyEtag = async (policyId: string) =>
      ((await t.http('GET', `/v1/vaults/${vaultId}/policies`)).json.policies as Array<{ id: string; etag: string }>).find((p) => p.id === policyId)?.etag;

    it('gives an agent a new etag on every kind of change, and not when it authenticates', async () => {
      const { agent, api_key } = await newAgent('changes');
      const seen = [etagOf(await getAgent(agent.id))];
      expect(seen[0]).toBe(agent.etag);
      const changes: Array<() => Promise<HttpResult>> = [
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { name: 'renamed' } }),
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { description: 'about' } }),
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { is_active: false } }),
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { is_active: true } }),
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { expires_at: FUTURE } }),
        () => t.http('PATCH', `/v1/agents/${agent.id}`, { body: { token_ttl_seconds: 120 } }),
        () => t.http('POST', `/v1/agents/${agent.id}/rotate-key`),
        () => t.http('POST', `/v1/vaults/${vaultId}/policies`, { body: { secret_path_pattern: '**', principal_type: 'agent', principal_id: agent.id, permissions: ['read'] } }),
      ];
      for (const change of changes) {
        expect((await change()).status).toBeLessThan(300);
        seen.push(etagOf(await getAgent(agent.id)));
      }
      expect(new Set(seen).size).toBe(seen.length);

      // The old key was rotated away; a fresh one authenticates, which is no change of the agent.
      const rotated = (await t.http('POST', `/v1/agents/${agent.id}/rotate-key`)).json as { agent: { etag: string }; api_key: string };
      expect(rotated.api_key).not.toBe(api_key);
      expect((await t.http('POST', '/v1/auth/agent-token', { body: { api_key: rotated.api_key }, token: null })).status).toBe(200);
      expect(etagOf(await getAgent(agent.id))).toBe(rotated.agent.etag);
    });

    it('updates an agent only with its current etag, over gRPC', async () => {
      const { agent } = await newAgent('grpc');
      const update = (name: string, etag?: string) =>
        unary(t.clients.agents, t.clients.agents.updateAgent, { agentId: agent.id, name, expiresAt: undefined, etag }, t.auth());
      const updated = (await update('first', agent.etag)).agent!;
      expect(updated.name).toBe('first');
      expect(updated.etag).not.toBe(agent.etag);

      const stale = await rejection(update('lost update', agent.etag));
      expect(stale.code).toBe(status.FAILED_PRECONDITION);
      expect(stale.details).toMatch(/has changed since etag/);
      expect(reasonOf(stale)).toMatchObject({ reason: 'ETAG_MISMATCH', metadata: { agent_id: agent.id, expected_etag: agent.etag, current_etag: updated.etag } });
      expect((await getAgent(agent.id)).json).toMatchObject({ name: 'first', etag: updated.etag });

      // Without an etag nothing is checked, as before.
      expect((await update('unguarded')).agent!.name).toBe('unguarded');
      expect((await rejection(update('bad', 'not-an-etag'))).code).toBe(status.INVALID_ARGUMENT);
    });

    it('guards key rotation and delete of an agent', async () => {
      const { agent } = await newAgent('guarded');
      await t.http('PATCH', `/v1/agents/${agent.id}`, { body: { description: 'moved on' } });
      const current = etagOf(await getAgent(agent.id));

      const rotate = await t.http('POST', `/v1/agents/${agent.id}/rotate-key`, { headers: { 'If-Match': `"${agent.etag}"` } });
      expect(rotate.status).toBe(412);
      expect(rotate.json.details[0]).toMatchObject({ reason: 'ETAG_MISMATCH' });
      const remove = await t.http('DELETE', `/v1/agents/${agent.id}`, { headers: { 'If-Match': `"${agent.etag}"` } });
      expect(remove.status).toBe(412);
      expect(etagOf(await getAgent(agent.id))).toBe(current);

      const rotated = await t.http('POST', `/v1/agents/${agent.id}/rotate-key`, { headers: { 'If-Match': `"${current}"` } });
      expect(rotated.status).toBe(200);
      expect(rotated.json.agent.etag).not.toBe(current);
      expect((await t.http('DELETE', `/v1/agents/${agent.id}`, { headers: { 'If-Match': `"${current}"` } })).status).toBe(412);
      expect((await t.http('DELETE', `/v1/agents/${agent.id}`, { headers: { 'If-Match': `"${rotated.json.agent.etag}"` } })).status).toBe(204);
      expect((await getAgent(agent.id)).status).toBe(404);
    });

    it('speaks ETag and If-Match on PATCH, and refuses headers it cannot honour', async () => {
      const { agent } = await newAgent('rest');
      const patched = await t.http('PATCH', `/v1/agents/${agent.id}`, { body: { name: 'rest-2' }, headers: { 'If-Match': `"${agent.etag}"` } });
      expect(patched.status).toBe(200);
      const next = etagOf(patched);
      const lost = await t.http('PATCH', `/v1/agents/${agent.id}`, { body: { name: 'lost' }, headers: { 'If-Match': `"${agent.etag}"` } });
      expect(lost.status).toBe(412);
      expect((await getAgent(agent.id)).json.name).toBe('rest-2');

      const refused: Array<{ headers: Record<string, string>; body?: object }> = [
        { headers: { 'If-Match': next } },
        { headers: { 'If-Match': '*' } },
        { headers: { 'If-Match': `W/"${next}"` } },
        { headers: { 'If-None-Match': '*' } },
        { headers: { 'If-Match': '"zz"' } },
        { headers: { 'If-Match': `"${next}"` }, body: { name: 'x', etag: agent.etag } },
      ];
      for (const { headers, body } of refused) {
        const res = await t.http('PATCH', `/v1/agents/${agent.id}`, { body: body ?? { name: 'x' }, headers });
        expect(res.status, JSON.stringify(headers)).toBe(400);
      }
      expect(etagOf(await getAgent(agent.id))).toBe(next);
      // The same etag in both places is one precondition.
      expect((await t.http('PATCH', `/v1/agents/${agent.id}`, { body: { name: 'both', etag: next }, headers: { 'If-Match': `"${next}"` } })).status).toBe(200);
    });

    it('gives a policy a new etag on every change and updates or deletes it only with its current etag', async () => {
      const { agent } = await newAgent('policy-holder');
      const policy = await newPolicy(agent.id);
      expect(await policyEtag(policy.id)).toBe(policy.etag);
      const url = `/v1/vaults/${vaultId}/policies/${policy.id}`;
      const seen = [policy.etag];
      for (const body of [{ permissions: ['read', 'write'] }, { conditions: { team: 'ops' } }, { expires_at: FUTURE }, { effect: 'deny' }, { priority: 7 }]) {
        const res = await t.http('PUT', url, { body: { ...body, etag: seen.at(-1) } });
        expect(res.status, JSON.stringify(body)).toBe(200);
        seen.push(etagOf(res));
        expect(await policyEtag(policy.id)).toBe(seen.at(-1));
      }
      expect(new Set(seen).size).toBe(seen.length);

      const stale = await t.http('PUT', url, { body: { priority: 99 }, headers: { 'If-Match': `"${seen[0]}"` } });
      expect(stale.status).toBe(412);
      expect(stale.json.details[0]).toMatchObject({ reason: 'ETAG_MISMATCH', metadata: { policy_id: policy.id, current_etag: seen.at(-1) } });
      const grpcStale = await rejection(unary(t.clients.policies, t.clients.policies.deletePolicy, { vaultId, policyId: policy.id, etag: seen[0] }, t.auth()));
      expect(reasonOf(grpcStale).reason).toBe('ETAG_MISMATCH');
      expect(await policyEtag(policy.id)).toBe(seen.at(-1));

      expect((await t.http('PUT', url, { body: { priority: 8 } })).status).toBe(200);
      const current = (await policyEtag(policy.id))!;
      expect((await t.http('DELETE', url, { headers: { 'If-Match': `"${seen.at(-1)}"` } })).status).toBe(412);
      expect((await t.http('DELETE', url, { headers: { 'If-Match': `"${current}"` } })).status).toBe(204);
      expect(await policyEtag(policy.id)).toBeUndefined();
    });
  });
}

etagsOn('memory', async () => ({}));

describeWithDatabase('etags on MySQL storage', () => {
  etagsOn('mysql', async () => ({ VAULT_DATABASE_URL: (await createTestDatabase())!.url }));
});

describeWithDatabase('etags across two instances on MySQL', () => {
  let a: TestApp;
  let b: TestApp;
  let vaultId: string;
  beforeAll(async () => {
    const database = (await createTestDatabase())!;
    a = await startTestApp({ VAULT_DATABASE_URL: database.url });
    b = await startTestApp({ VAULT_DATABASE_URL: database.url });
    vaultId = (await a.http('POST', '/v1/vaults', { body: { name: 'etag-race' } })).json.id;
  });
  afterAll(async () => Promise.all([a?.close(), b?.close()]));

  const statuses = (results: HttpResult[]) => results.map((r) => r.status).sort();
  const oneWinner = (winner: number) => [winner, ...Array.from({ length: 9 }, () => 412)];

  it('lets exactly one of ten concurrent agent updates with the same etag win', async () => {
    const { agent } = (await a.http('POST', '/v1/agents', { body: { name: 'race' } })).json;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).http('PATCH', `/v1/agents/${agent.id}`, { body: { name: `racer-${i}` }, headers: { 'If-Match': `"${agent.etag}"` } })),
    );
    expect(statuses(outcomes)).toEqual(oneWinner(200));
    const winner = outcomes.find((o) => o.status === 200)!;
    expect((await b.http('GET', `/v1/agents/${agent.id}`)).json).toMatchObject({ name: winner.json.name, etag: winner.json.etag });
  });

  it('lets exactly one of ten concurrent policy updates with the same etag win', async () => {
    const { agent } = (await a.http('POST', '/v1/agents', { body: { name: 'policy-race' } })).json;
    const policy = (await a.http('POST', `/v1/vaults/${vaultId}/policies`, { body: { secret_path_pattern: '**', principal_type: 'agent', principal_id: agent.id, permissions: ['read'] } })).json;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).http('PUT', `/v1/vaults/${vaultId}/policies/${policy.id}`, { body: { priority: i + 1, etag: policy.etag } })),
    );
    expect(statuses(outcomes)).toEqual(oneWinner(200));
    const winner = outcomes.find((o) => o.status === 200)!;
    const listed = (await b.http('GET', `/v1/vaults/${vaultId}/policies`)).json.policies.find((p: { id: string }) => p.id === policy.id);
    expect(listed).toMatchObject({ priority: winner.json.priority, etag: winner.json.etag });
  });
});
