import type { JsonObject } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentTokens } from '../../src/auth/agent-token.js';
import { deriveAgentTokenKeys } from '../../src/auth/agent-token-keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createRouteTable, descriptorRegistry } from '../../src/gateway/route-table.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';
import { grpcDriver, httpDriver } from '../scenarios/drivers.js';
import type { Driver } from '../scenarios/scenario.js';
import { startTestApp, TEST_MASTER_KEY, TEST_ROOT_TOKEN, unary, type TestApp } from '../support/test-app.js';

/**
 * Every RPC x every kind of caller x both transports, each cell asserting the exact code. Each
 * (caller, transport) row gets a fresh service and fixture, so destructive calls in one row cannot
 * change another's outcome.
 */
const registry = descriptorRegistry(loadDescriptorSetBytes());

type Caller = 'root' | 'agent allowed' | 'agent denied' | 'agent of another vault' | 'rotated-away key' | 'expired token' | 'deactivated agent' | 'no token';
const CALLERS: Caller[] = ['root', 'agent allowed', 'agent denied', 'agent of another vault', 'rotated-away key', 'expired token', 'deactivated agent', 'no token'];

interface Fixture {
  vault: string;
  otherVault: string;
  doomedVault: string;
  victimAgent: string;
  policy: string;
  allowedKey: string;
  tokens: Record<Caller, string | null>;
}

/** The calls, in the order they run (destructive ones last); each is a request in proto3 JSON. */
const CELLS: Array<{ rpc: string; request: (f: Fixture) => JsonObject }> = [
  { rpc: 'SystemService.GetHealth', request: () => ({}) },
  { rpc: 'AuthService.CreateAgentToken', request: (f) => ({ api_key: f.allowedKey }) },
  { rpc: 'VaultService.ListVaults', request: () => ({}) },
  { rpc: 'VaultService.GetVault', request: (f) => ({ vault_id: f.vault }) },
  { rpc: 'VaultService.CreateVault', request: () => ({ name: 'made-in-matrix' }) },
  { rpc: 'SecretService.PutSecret', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret', value: 'v' }) },
  { rpc: 'SecretService.GetSecret', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret' }) },
  { rpc: 'SecretService.GetSecretVersion', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret', version: 1 }) },
  { rpc: 'SecretService.ListSecretVersions', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret' }) },
  { rpc: 'SecretService.ListSecrets', request: (f) => ({ vault_id: f.vault }) },
  { rpc: 'SecretService.WatchSecrets', request: (f) => ({ vault_id: f.vault }) },
  { rpc: 'SecretService.RotateSecret', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret' }) },
  { rpc: 'SecretService.DisableSecretVersion', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret', version: 1 }) },
  { rpc: 'SecretService.EnableSecretVersion', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret', version: 1 }) },
  { rpc: 'SecretService.PromoteSecretVersion', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret', version: 1 }) },
  { rpc: 'AgentService.GetAgentSelf', request: () => ({}) },
  { rpc: 'AgentService.ListAgents', request: () => ({}) },
  { rpc: 'AgentService.GetAgent', request: (f) => ({ agent_id: f.victimAgent }) },
  { rpc: 'AgentService.CreateAgent', request: () => ({ name: 'made-in-matrix' }) },
  { rpc: 'AgentService.UpdateAgent', request: (f) => ({ agent_id: f.victimAgent, description: 'changed' }) },
  { rpc: 'PolicyService.ListPolicies', request: (f) => ({ vault_id: f.vault }) },
  { rpc: 'PolicyService.CreatePolicy', request: (f) => ({ vault_id: f.vault, secret_path_pattern: 'x/*', principal_type: 'agent', principal_id: f.victimAgent, permissions: ['read'] }) },
  { rpc: 'PolicyService.UpdatePolicy', request: (f) => ({ vault_id: f.vault, policy_id: f.policy, priority: 2 }) },
  { rpc: 'AuditService.ListAuditEvents', request: () => ({ limit: 5 }) },
  { rpc: 'AuditService.VerifyAuditChain', request: () => ({}) },
  { rpc: 'SystemService.ListMasterKeys', request: () => ({}) },
  { rpc: 'SystemService.RewrapSecrets', request: () => ({ batch_size: 10 }) },
  { rpc: 'SecretService.DeleteSecret', request: (f) => ({ vault_id: f.vault, path: 'matrix/secret' }) },
  { rpc: 'PolicyService.DeletePolicy', request: (f) => ({ vault_id: f.vault, policy_id: f.policy }) },
  { rpc: 'AgentService.RotateAgentKey', request: (f) => ({ agent_id: f.victimAgent }) },
  { rpc: 'AgentService.DeleteAgent', request: (f) => ({ agent_id: f.victimAgent }) },
  { rpc: 'VaultService.DeleteVault', request: (f) => ({ vault_id: f.doomedVault }) },
];

const PUBLIC = new Set(['SystemService.GetHealth', 'AuthService.CreateAgentToken']);
const SECRET_RPCS = (rpc: string) => rpc.startsWith('SecretService.');

/** The contract, cell by cell. */
function expected(caller: Caller, rpc: string): keyof typeof status {
  if (PUBLIC.has(rpc)) return 'OK';
  if (['rotated-away key', 'expired token', 'deactivated agent', 'no token'].includes(caller)) return 'UNAUTHENTICATED';
  if (caller === 'root') return rpc === 'AgentService.GetAgentSelf' ? 'PERMISSION_DENIED' : 'OK';
  if (rpc === 'AgentService.GetAgentSelf') return 'OK';
  if (!SECRET_RPCS(rpc)) return 'PERMISSION_DENIED';
  if (caller === 'agent allowed') return 'OK';
  // An agent denied everything still lists and watches (nothing it may read); one without any policy here may not.
  if (caller === 'agent denied' && (rpc === 'SecretService.ListSecrets' || rpc === 'SecretService.WatchSecrets')) return 'OK';
  return 'PERMISSION_DENIED';
}

async function buildFixture(t: TestApp): Promise<Fixture> {
  const root = t.auth();
  const { vaults, agents, policies, auth, secrets } = t.clients;
  const vault = async (name: string) => (await unary(vaults, vaults.createVault, { name, description: '' }, root)).vault!.id;
  const agent = async (name: string) => {
    const created = await unary(agents, agents.createAgent, { name, description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, root);
    return { id: created.agent!.id, key: created.apiKey };
  };
  const policy = (vaultId: string, principalId: string, effect: string) =>
    unary(policies, policies.createPolicy, { vaultId, secretPathPattern: '**', principalType: 'agent', principalId, permissions: ['read', 'write', 'rotate', 'delete'], conditions: undefined, expiresAt: undefined, effect, priority: 0 }, root);
  const token = async (key: string) => (await unary(auth, auth.createAgentToken, { agentId: '', apiKey: key })).accessToken;

  const [v, w, doomed] = [await vault('target'), await vault('other'), await vault('doomed')];
  await unary(secrets, secrets.putSecret, { vaultId: v, path: 'matrix/secret', value: 'initial', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, root);
  const allowed = await agent('allowed');
  const denied = await agent('denied');
  const other = await agent('other-vault');
  const rotated = await agent('rotated');
  const deactivated = await agent('deactivated');
  const victim = await agent('victim');
  await policy(v, allowed.id, 'allow');
  await policy(v, denied.id, 'allow');
  await policy(v, denied.id, 'deny');
  await policy(w, other.id, 'allow');
  await policy(v, rotated.id, 'allow');
  await policy(v, deactivated.id, 'allow');
  const { policy: extra } = await policy(v, victim.id, 'allow');
  const deactivatedToken = await token(deactivated.key);
  await unary(agents, agents.updateAgent, { agentId: deactivated.id, isActive: false }, root);
  await unary(agents, agents.rotateAgentKey, { agentId: rotated.id }, root);
  const generation = 2; // created (1) + one policy (2)
  const now = Math.floor(Date.now() / 1000);
  const expired = await createAgentTokens(deriveAgentTokenKeys(createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')))).issue({ sub: allowed.id, gen: generation, iat: now - 1000, exp: now - 60 });
  return {
    vault: v,
    otherVault: w,
    doomedVault: doomed,
    victimAgent: victim.id,
    policy: extra!.id,
    allowedKey: allowed.key,
    tokens: {
      root: TEST_ROOT_TOKEN,
      'agent allowed': await token(allowed.key),
      'agent denied': await token(denied.key),
      'agent of another vault': await token(other.key),
      'rotated-away key': rotated.key,
      'expired token': expired,
      'deactivated agent': deactivatedToken,
      'no token': null,
    },
  };
}

const TRANSPORTS: Array<[string, (t: TestApp) => Driver]> = [
  ['gRPC', (t) => grpcDriver(t, registry)],
  ['HTTP', (t) => httpDriver(t, createRouteTable({ methods: t.app.methods, registry }), { encodeSlashes: false })],
];

describe.each(TRANSPORTS)('authorization matrix over %s', (_transport, makeDriver) => {
  it.each(CALLERS)('gives %s exactly the expected code on every RPC', async (caller) => {
    const t = await startTestApp();
    try {
      const fixture = await buildFixture(t);
      const driver = makeDriver(t);
      expect(new Set(t.app.methods.map((m) => m.fullName.replace('vault.v1.', '')))).toEqual(new Set(CELLS.map((c) => c.rpc)));
      const unexpected: string[] = [];
      for (const cell of CELLS) {
        const step = { name: cell.rpc, rpc: `vault.v1.${cell.rpc}`, request: () => cell.request(fixture), token: fixture.tokens[caller] };
        const outcome = await driver.call(step, step.request());
        const want = expected(caller, cell.rpc);
        if (status[outcome.code] !== want) unexpected.push(`${cell.rpc}: got ${status[outcome.code]}, want ${want}`);
      }
      expect(unexpected).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe('authorization details', () => {
  let t: TestApp;
  let fixture: Fixture;
  beforeAll(async () => {
    t = await startTestApp();
    fixture = await buildFixture(t);
  });
  afterAll(() => t.close());

  it('answers an allowed agent with only the secrets it may read', async () => {
    const { secrets } = t.clients;
    await unary(secrets, secrets.putSecret, { vaultId: fixture.vault, path: 'other/thing', value: 'x', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, t.auth());
    const listed = await unary(secrets, secrets.listSecrets, { vaultId: fixture.vault, prefix: '', pageSize: 0, pageToken: '' }, t.auth(fixture.tokens['agent allowed']!));
    expect(listed.secrets.map((s) => s.path).sort()).toEqual(['matrix/secret', 'other/thing']);
    const denied = await unary(secrets, secrets.listSecrets, { vaultId: fixture.vault, prefix: '', pageSize: 0, pageToken: '' }, t.auth(fixture.tokens['agent denied']!));
    expect(denied.secrets).toEqual([]);
  });

  it('gives a denied agent the same 403 whether or not the path exists', async () => {
    const http = async (path: string) => t.http('GET', `/v1/vaults/${fixture.vault}/secrets/${path}`, { token: fixture.tokens['agent denied'] });
    const [exists, missing] = await Promise.all([http('matrix/secret'), http('no/such/path')]);
    expect([exists.status, missing.status]).toEqual([403, 403]);
    expect(exists.json.message.replace('matrix/secret', 'P')).toBe(missing.json.message.replace('no/such/path', 'P'));
  });

  it('accepts the raw ocv_ key as a Bearer credential and audits refusals without credentials in them', async () => {
    const ok = await t.http('GET', `/v1/vaults/${fixture.vault}/secrets/matrix/secret`, { token: fixture.allowedKey });
    expect(ok.status).toBe(200);
    const failed = await t.http('GET', `/v1/vaults/${fixture.vault}/secrets/matrix/secret`, { token: 'ocv_wrongwrongwrongwrongwrongwrongwrongwrongwro' });
    expect(failed.status).toBe(401);
    const events = await t.http('GET', '/v1/audit/events?action=auth.failed&limit=50');
    expect(events.json.count).toBeGreaterThan(0);
    const denied = await t.http('GET', '/v1/audit/events?limit=1000');
    expect(denied.json.events.some((e: { outcome: string }) => e.outcome === 'denied')).toBe(true);
    const everything = JSON.stringify(denied.json) + t.logs.join('\n');
    for (const secretMaterial of [fixture.allowedKey, ...Object.values(fixture.tokens).filter((x): x is string => !!x)]) {
      expect(everything).not.toContain(secretMaterial);
    }
  });
});
