import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { createPolicyAccessControl } from '../../src/domain/access-control.js';
import { CLOCK_LEEWAY_SECONDS, createAgentTokens } from '../../src/auth/agent-token.js';
import { deriveAgentTokenKeys } from '../../src/auth/agent-token-keys.js';
import { createCredentialAuthenticator } from '../../src/auth/credential-authenticator.js';
import { createFailedAuthLimiter, type FailedAuthLimiter } from '../../src/auth/failed-auth-limiter.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createAgentService } from '../../src/domain/agent-service.js';
import { VaultError } from '../../src/domain/errors.js';
import { ROOT, type CallContext } from '../../src/domain/principal.js';
import { createTokenExchange } from '../../src/domain/token-exchange.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';

const ROOT_TOKEN = 'root-token-0123456789';
const root: CallContext = { principal: ROOT, requestId: 'r' };
const anonymous: CallContext = { principal: { type: 'anonymous', id: '' }, requestId: 'r' };

async function code(promise: Promise<unknown>) {
  return promise.then(
    () => 'ok',
    (e: unknown) => (e instanceof VaultError ? e.code : `unexpected: ${String(e)}`),
  );
}

describe('agent credentials', () => {
  let clock: Date;
  let storage: ReturnType<typeof createMemoryStorage>;
  let agents: ReturnType<typeof createAgentService>;
  let exchange: ReturnType<typeof createTokenExchange>;
  let authenticate: (credential: string) => Promise<unknown>;
  let failures: FailedAuthLimiter;
  const keyring = createKeyring(new Uint8Array(randomBytes(32)));

  beforeEach(() => {
    clock = new Date();
    storage = createMemoryStorage();
    const now = () => new Date(clock);
    const access = createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit, now });
    const tokens = createAgentTokens(deriveAgentTokenKeys(keyring));
    agents = createAgentService({ storage, access, now });
    failures = createFailedAuthLimiter({ appendAudit: storage.appendAudit, now });
    exchange = createTokenExchange({ storage, tokens, failures, now });
    const authenticator = createCredentialAuthenticator({ rootToken: ROOT_TOKEN, agents: storage.agents, tokens, failures, now });
    authenticate = (credential) => authenticator.authenticate(`Bearer ${credential}`, 'req');
  });

  it('creates an agent with an ocv_ key shown once and stored only as a hash', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    expect(apiKey).toMatch(/^ocv_[A-Za-z0-9_-]{43}$/);
    expect(agent.tokenTtlSeconds).toBe(900);
    expect(JSON.stringify(await storage.agents.list())).not.toContain(apiKey.slice(4));
    expect(await authenticate(apiKey)).toMatchObject({ type: 'agent', id: agent.id });
    expect(await authenticate(ROOT_TOKEN)).toEqual(ROOT);
  });

  it('exchanges a key for a token that works until it expires', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: 60 });
    const issued = await exchange.exchange(anonymous, { apiKey, agentId: '' });
    expect(issued).toMatchObject({ agentId: agent.id, expiresIn: 60 });
    expect(await authenticate(issued.accessToken)).toMatchObject({ type: 'agent', id: agent.id });
    // Instances' clocks may differ by a few seconds: a token is accepted that much past exp, no more.
    clock = new Date(clock.getTime() + (60 + CLOCK_LEEWAY_SECONDS - 1) * 1000);
    expect(await authenticate(issued.accessToken)).toMatchObject({ type: 'agent', id: agent.id });
    clock = new Date(clock.getTime() + 1000);
    expect(await code(authenticate(issued.accessToken))).toBe('unauthenticated');
  });

  it('gives the same 401 for an unknown key, a mismatched agent_id, an inactive and an expired agent', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: new Date(clock.getTime() + 3_600_000), tokenTtlSeconds: undefined });
    const other = await agents.create(root, { name: 'other', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    const messages = new Set<string>();
    const fail = async (promise: Promise<unknown>) => {
      const error = await promise.then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(VaultError);
      expect((error as VaultError).code).toBe('unauthenticated');
      messages.add((error as VaultError).message);
    };
    await fail(exchange.exchange(anonymous, { apiKey: `ocv_${'A'.repeat(43)}`, agentId: '' }));
    await fail(exchange.exchange(anonymous, { apiKey: 'not-a-key', agentId: '' }));
    await fail(exchange.exchange(anonymous, { apiKey, agentId: other.agent.id }));
    await agents.update(root, agent.id, { isActive: false });
    await fail(exchange.exchange(anonymous, { apiKey, agentId: agent.id }));
    await agents.update(root, agent.id, { isActive: true });
    clock = new Date(clock.getTime() + 3_600_000);
    await fail(exchange.exchange(anonymous, { apiKey, agentId: '' }));
    expect(messages.size).toBe(1);
    await failures.flushAll();
    // Failures are aggregated per address and window; the counts add up to every attempt.
    const failed = storage.auditRows.filter((e) => e.action === 'auth.failed');
    expect(failed.reduce((sum, e) => sum + Number((e.details as { count: number }).count), 0)).toBe(5);
    expect(JSON.stringify(storage.auditRows)).not.toContain(apiKey);
  });

  it('revokes the old key and its tokens when the key is rotated (after the one-second cache)', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    const { accessToken } = await exchange.exchange(anonymous, { apiKey, agentId: agent.id });
    const rotated = await agents.rotateKey(root, agent.id);
    expect(rotated.apiKey).not.toBe(apiKey);
    // A fresh authenticator has no cache: both old credentials fail at once.
    expect(await code(authenticate(apiKey))).toBe('unauthenticated');
    expect(await code(authenticate(accessToken))).toBe('unauthenticated');
    expect(await authenticate(rotated.apiKey)).toMatchObject({ type: 'agent', id: agent.id });
  });

  it('revokes tokens when the agent is deactivated, deleted, or a policy on it changes', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    const token = async () => (await exchange.exchange(anonymous, { apiKey, agentId: '' })).accessToken;
    const beforePolicy = await token();
    await storage.policies.create(
      { id: 'p1', vaultId: 'v', secretPathPattern: '**', principalType: 'agent', principalId: agent.id, permissions: ['read'], conditions: null, expiresAt: null, createdBy: 'root', createdByType: 'root', createdAt: clock, effect: 'allow', priority: 0 },
      [],
    );
    expect(await code(authenticate(beforePolicy))).toBe('unauthenticated');
    const beforeDeactivation = await token();
    expect(await authenticate(beforeDeactivation)).toMatchObject({ type: 'agent', id: agent.id });
    await agents.update(root, agent.id, { isActive: false });
    await agents.update(root, agent.id, { isActive: true });
    // This instance trusted the agent record it read for up to a second; after that, revoked.
    clock = new Date(clock.getTime() + 1001);
    expect(await code(authenticate(beforeDeactivation))).toBe('unauthenticated');
    const beforeDelete = await token();
    expect(await authenticate(beforeDelete)).toMatchObject({ type: 'agent', id: agent.id });
    await agents.delete(root, agent.id);
    clock = new Date(clock.getTime() + 1001);
    expect(await code(authenticate(beforeDelete))).toBe('unauthenticated');
    expect(await code(authenticate(apiKey))).toBe('unauthenticated');
  });

  it('rejects forged, altered and foreign-key tokens', async () => {
    const { apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    const { accessToken } = await exchange.exchange(anonymous, { apiKey, agentId: '' });
    const [header, payload, signature] = accessToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const altered = `${header}.${Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 9999 })).toString('base64url')}.${signature}`;
    const foreign = await createAgentTokens(deriveAgentTokenKeys(createKeyring(new Uint8Array(randomBytes(32))))).issue(claims);
    for (const bad of [altered, foreign, `${header}.${payload}.`, 'a.b.c', '...', 'x'.repeat(5000)]) {
      expect(await code(authenticate(bad))).toBe('unauthenticated');
    }
  });

  it('lets only operators manage agents, and an agent read only itself', async () => {
    const { agent, apiKey } = await agents.create(root, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined });
    const self: CallContext = { principal: { type: 'agent', id: agent.id }, requestId: 'r' };
    expect((await agents.getSelf(self)).id).toBe(agent.id);
    expect(await code(agents.list(self))).toBe('permission_denied');
    expect(await code(agents.rotateKey(self, agent.id))).toBe('permission_denied');
    expect(await code(agents.getSelf(root))).toBe('permission_denied');
    expect(await code(agents.create(root, { name: '', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }))).toBe('invalid_argument');
    expect(await code(agents.create(root, { name: 'x', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: 59 }))).toBe('invalid_argument');
    expect(await code(agents.get(root, '00000000-0000-4000-8000-000000000000'))).toBe('not_found');
    void apiKey;
  });
});
