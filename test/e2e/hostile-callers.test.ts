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
