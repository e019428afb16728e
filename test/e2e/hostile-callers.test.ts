import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveAgentTokenKeys } from '../../src/auth/agent-token-keys.js';
import { createAgentTokens } from '../../src/auth/agent-token.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { startTestApp, TEST_MASTER_KEY, unary, type TestApp } from '../support/test-app.js';

/** Attacks from issue 7, each over gRPC and over HTTP against one service. */
let t: TestApp;
let vaultId: string;

const grpcCode = (promise: Promise<unknown>) =>
  promise.then(
    () => status.OK,
    (error: ServiceError) => error.code,
  );

async function newAgent(patterns: Array<{ pattern: string; permissions: string[] }>, vault = vaultId) {
  const { agents, policies, auth } = t.clients;
  const created = await unary(agents, agents.createAgent, { name: 'hostile', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, t.auth());
  const id = created.agent!.id;
  for (const { pattern, permissions } of patterns) {
    await unary(policies, policies.createPolicy, { vaultId: vault, secretPathPattern: pattern, principalType: 'agent', principalId: id, permissions, conditions: undefined, expiresAt: undefined, effect: 'allow', priority: 0 }, t.auth());
  }
  const token = (await unary(auth, auth.createAgentToken, { agentId: '', apiKey: created.apiKey })).accessToken;
  return { id, key: created.apiKey, token, generation: 1 + patterns.length };
}

const getOverGrpc = (token: string, path: string, vault = vaultId) =>
  grpcCode(unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId: vault, path }, t.auth(token)));
const getOverHttp = async (token: string, path: string, vault = vaultId) => (await t.http('GET', `/v1/vaults/${vault}/secrets/${path}`, { token })).status;

beforeAll(async () => {
  t = await startTestApp();
  vaultId = (await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'hostile', description: '' }, t.auth())).vault!.id;
  for (const path of ['svc-a-b-c-d/x', 'svc-a-b-c-d']) {
    await unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path, value: 'v', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, t.auth());
  }
});
afterAll(() => t.close());

describe('policy globs chosen against a hostile path', () => {
  it('answers a path crafted against a many-wildcard glob at once, on both transports (it used to stall the instance)', async () => {
    // Backtracking cost grew as |path|^wildcards: 4 wildcards took 15 s; 8 would take years.
    const agent = await newAgent([{ pattern: 'svc-*-*-*-*', permissions: ['read'] }, { pattern: 'svc-*-*-*-*-*-*-*-*', permissions: ['read'] }]);
    const hostile = `svc-${'-'.repeat(500)}a/b`;
    expect(await getOverGrpc(agent.token, hostile)).toBe(status.PERMISSION_DENIED);
    expect(await getOverHttp(agent.token, hostile)).toBe(403);
    expect(await getOverGrpc(agent.token, 'svc-a-b-c-d')).toBe(status.OK);
    expect(await getOverHttp(agent.token, 'svc-a-b-c-d')).toBe(200);
  });

  it('refuses a policy pattern over the wildcard or length limit with INVALID_ARGUMENT / 400 saying why', async () => {
    const agent = await newAgent([]);
    const { policies } = t.clients;
    for (const pattern of [Array(17).fill('a*').join('-'), 'x'.repeat(513), 'a//b', 'a/b?']) {
      const request = { vaultId, secretPathPattern: pattern, principalType: 'agent', principalId: agent.id, permissions: ['read'], conditions: undefined, expiresAt: undefined, effect: 'allow', priority: 0 };
      const error = await unary(policies, policies.createPolicy, request, t.auth()).catch((e: ServiceError) => e);
      expect((error as ServiceError).code, pattern).toBe(status.INVALID_ARGUMENT);
      const http = await t.http('POST', `/v1/vaults/${vaultId}/policies`, {
        body: { secret_path_pattern: pattern, principal_type: 'agent', principal_id: agent.id, permissions: ['read'] },
      });
      expect(http.status, pattern).toBe(400);
      expect(http.json.message).toMatch(/secret_path_pattern .*(wildcards; at most 16|bytes; at most 512|empty segment|may only contain)/);
    }
  });
});

describe('agent token spellings', () => {
  /** A valid token for the agent that has `-` or `_` in it, so the `+/` spelling differs. */
  async function tokenWithUrlCharacters(agent: { id: string; generation: number }) {
    const tokens = createAgentTokens(deriveAgentTokenKeys(createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64'))));
    const iat = Math.floor(Date.now() / 1000);
    for (let exp = iat + 600; ; exp--) {
      const token = await tokens.issue({ sub: agent.id, gen: agent.generation, iat, exp });
      if (/[-_]/.test(token)) return token;
    }
  }

  it('accepts only the canonical base64url spelling of a token, on both transports', async () => {
    const agent = await newAgent([{ pattern: '**', permissions: ['read'] }]);
    const token = await tokenWithUrlCharacters(agent);
    expect(await getOverGrpc(token, 'svc-a-b-c-d/x')).toBe(status.OK);
    expect(await getOverHttp(token, 'svc-a-b-c-d/x')).toBe(200);

    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(token.at(-1)!);
    // The last character of a 32-byte signature carries 4 bits; its 2 low bits are unused.
    const sameTopBits = alphabet[(last & ~3) | ((last + 1) & 3)]!;
    const malleated = {
      'last character with the same top bits': token.slice(0, -1) + sameTopBits,
      '= appended': `${token}=`,
      '+/ for -_': token.replace(/-/g, '+').replace(/_/g, '/'),
      '!! appended': `${token}!!`,
    };
    for (const [how, bad] of Object.entries(malleated)) {
      expect(bad, how).not.toBe(token);
      expect(await getOverGrpc(bad, 'svc-a-b-c-d/x'), how).toBe(status.UNAUTHENTICATED);
      expect(await getOverHttp(bad, 'svc-a-b-c-d/x'), how).toBe(401);
    }
  });

  it('checks the audience and issuer', async () => {
    const agent = await newAgent([{ pattern: '**', permissions: ['read'] }]);
    const { SignJWT } = await import('jose');
    const [secret] = deriveAgentTokenKeys(createKeyring(Buffer.from(TEST_MASTER_KEY, 'base64')));
    const sign = (iss: string, aud: string) =>
      new SignJWT({ gen: agent.generation }).setProtectedHeader({ alg: 'HS256', kid: secret!.kid }).setIssuer(iss).setAudience(aud).setSubject(agent.id).setIssuedAt().setExpirationTime('5m').sign(secret!.secret);
    expect(await getOverHttp(await sign('vault', 'vault.v1'), 'svc-a-b-c-d/x')).toBe(200);
    expect(await getOverHttp(await sign('vault', 'someone-else'), 'svc-a-b-c-d/x')).toBe(401);
    expect(await getOverGrpc(await sign('elsewhere', 'vault.v1'), 'svc-a-b-c-d/x')).toBe(status.UNAUTHENTICATED);
  });
});

describe('no existence oracle for agents', () => {
  it('gives an agent the same 403 for a vault it has no policy in and for one that does not exist, on both transports', async () => {
    const agent = await newAgent([{ pattern: '**', permissions: ['read'] }]);
    const other = (await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'not-yours', description: '' }, t.auth())).vault!.id;
    const missing = '00000000-0000-4000-8000-000000000000';
    const { secrets } = t.clients;
    const calls: Array<[string, (vault: string) => Promise<number>, (vault: string) => Promise<{ status: number; json: any }>]> = [
      ['ListSecrets', (v) => grpcCode(unary(secrets, secrets.listSecrets, { vaultId: v, prefix: '', pageSize: 0, pageToken: '' }, t.auth(agent.token))), (v) => t.http('GET', `/v1/vaults/${v}/secrets`, { token: agent.token })],
      ['GetSecret', (v) => getOverGrpc(agent.token, 'a/b', v), (v) => t.http('GET', `/v1/vaults/${v}/secrets/a/b`, { token: agent.token })],
      ['GetSecretVersion', (v) => grpcCode(unary(secrets, secrets.getSecretVersion, { vaultId: v, path: 'a/b', version: 1 }, t.auth(agent.token))), (v) => t.http('GET', `/v1/vaults/${v}/secret-version/a/b/1`, { token: agent.token })],
      ['ListSecretVersions', (v) => grpcCode(unary(secrets, secrets.listSecretVersions, { vaultId: v, path: 'a/b', pageSize: 0, pageToken: '' }, t.auth(agent.token))), (v) => t.http('GET', `/v1/vaults/${v}/secret-versions/a/b`, { token: agent.token })],
      ['GetVault', (v) => grpcCode(unary(t.clients.vaults, t.clients.vaults.getVault, { vaultId: v }, t.auth(agent.token))), (v) => t.http('GET', `/v1/vaults/${v}`, { token: agent.token })],
      ['ListPolicies', (v) => grpcCode(unary(t.clients.policies, t.clients.policies.listPolicies, { vaultId: v, pageSize: 0, pageToken: '' }, t.auth(agent.token))), (v) => t.http('GET', `/v1/vaults/${v}/policies`, { token: agent.token })],
    ];
    for (const [rpc, overGrpc, overHttp] of calls) {
      expect([await overGrpc(other), await overGrpc(missing)], rpc).toEqual([status.PERMISSION_DENIED, status.PERMISSION_DENIED]);
      const [a, b] = [await overHttp(other), await overHttp(missing)];
      expect([a.status, b.status], rpc).toEqual([403, 403]);
      expect(a.json.message.replace(other, 'V'), rpc).toBe(b.json.message.replace(missing, 'V'));
    }
    // The operator still learns that a vault does not exist.
    expect((await t.http('GET', `/v1/vaults/${missing}/secrets`)).status).toBe(404);
  });
});

describe('rotation by a caller who may not read', () => {
  const put = (path: string, extra: Record<string, unknown>) =>
    t.http('PUT', `/v1/vaults/${vaultId}/secrets/${path}`, { body: { value: 'first', type: 'password', metadata: { owner: 'dba', host: 'db-7' }, ...extra } });

  it('shows a rotate-only agent no type or metadata of earlier versions, on both transports', async () => {
    expect((await put('rot/only', {})).status).toBe(201);
    const agent = await newAgent([{ pattern: 'rot/**', permissions: ['rotate'] }]);
    const overHttp = await t.http('POST', `/v1/vaults/${vaultId}/secret-rotate/rot/only`, { token: agent.token, body: {} });
    expect(overHttp.status).toBe(201);
    expect(overHttp.json).toMatchObject({ path: 'rot/only', version: 2, type: '' });
    expect(overHttp.json.metadata).toBeUndefined();
    const { secrets } = t.clients;
    const rotate = (extra: object) =>
      unary(secrets, secrets.rotateSecret, { vaultId, path: 'rot/only', length: undefined, charset: '', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: undefined, ...extra }, t.auth(agent.token));
    const overGrpc = (await rotate({})).secret!;
    expect(overGrpc).toMatchObject({ version: 3, type: '' });
    expect(overGrpc.metadata).toBeUndefined();
    // What the caller set itself it sees, as with a write.
    expect((await rotate({ type: 'api_key', metadata: { mine: true } })).secret).toMatchObject({ version: 4, type: 'api_key', metadata: { mine: true } });
    // The stored versions keep what they inherited; root (who may read) is shown it.
    const byRoot = await t.http('POST', `/v1/vaults/${vaultId}/secret-rotate/rot/only`, { body: {} });
    expect(byRoot.json).toMatchObject({ version: 5, type: 'api_key', metadata: { mine: true } });
    // Promoting (also a rotate permission) shows no more either.
    const promoted = await t.http('POST', `/v1/vaults/${vaultId}/secret-version/rot/only/1/promote`, { token: agent.token, body: {} });
    expect(promoted.status).toBe(200);
    expect(promoted.json).toMatchObject({ version: 1, type: '' });
    expect(promoted.json.metadata).toBeUndefined();
    const promotedOverGrpc = await unary(secrets, secrets.promoteSecretVersion, { vaultId, path: 'rot/only', version: 2 }, t.auth(agent.token));
    expect(promotedOverGrpc.secret).toMatchObject({ version: 2, type: '' });
    expect(promotedOverGrpc.secret!.metadata).toBeUndefined();
    const versions = await t.http('GET', `/v1/vaults/${vaultId}/secret-versions/rot/only`);
    expect(versions.json.versions.find((v: { version: number }) => v.version === 2)).toMatchObject({ type: 'password', metadata: { owner: 'dba', host: 'db-7' } });
  });

  it('keeps the read budget and the lifetime across a rotation unless the request sets them, on both transports', async () => {
    const lifetimeMs = 3_600_000;
    const expiresAt = new Date(Date.now() + lifetimeMs).toISOString();
    for (const [transport, path] of [['HTTP', 'budget/http'], ['gRPC', 'budget/grpc']] as const) {
      expect((await put(path, { max_access_count: 1, expires_at: expiresAt })).status).toBe(201);
      let rotated: { version: number; created_at: string; expires_at?: string };
      if (transport === 'HTTP') {
        rotated = (await t.http('POST', `/v1/vaults/${vaultId}/secret-rotate/${path}`, { body: {} })).json;
      } else {
        const { secrets } = t.clients;
        const s = (await unary(secrets, secrets.rotateSecret, { vaultId, path, length: undefined, charset: '', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: undefined }, t.auth())).secret!;
        rotated = { version: s.version, created_at: s.createdAt!.toISOString(), expires_at: s.expiresAt?.toISOString() };
      }
      const previous = (await t.http('GET', `/v1/vaults/${vaultId}/secret-versions/${path}`)).json.versions.find((v: { version: number }) => v.version === 1);
      const lifetime = (v: { created_at: string; expires_at?: string }) => Date.parse(v.expires_at!) - Date.parse(v.created_at);
      expect(rotated.version, transport).toBe(2);
      expect(lifetime(rotated), transport).toBe(lifetime(previous));
      // One read, then the budget is spent, as it was for version 1.
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/${path}`)).status, transport).toBe(200);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/${path}`)).status, transport).toBe(410);
    }
    const overridden = await t.http('POST', `/v1/vaults/${vaultId}/secret-rotate/budget/http`, { body: { max_access_count: 0, expires_at: new Date(Date.now() + 7_200_000).toISOString() } });
    expect(overridden.status).toBe(201);
    expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/budget/http`)).status).toBe(200);
    expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/budget/http`)).status).toBe(200);
  });
});
