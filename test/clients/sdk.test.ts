import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Through the package entry, as a service depending on the vault would import it.
import {
  AlreadyExistsError,
  createVaultClient,
  EtagMismatchError,
  NotFoundError,
  PermissionDeniedError,
  SecretVersionDisabledError,
  UnauthenticatedError,
  type VaultClient,
} from 'vault/client';
import { CLOCK_LEEWAY_SECONDS } from '../../src/auth/agent-token.js';
import { createTestClock, startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

describe('the TypeScript SDK', () => {
  let t: TestApp;
  let root: VaultClient;
  let vaultId: string;
  let agentId: string;
  let apiKey: string;

  beforeAll(async () => {
    t = await startTestApp();
    root = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    vaultId = (await root.vaults.createVault({ name: 'sdk' })).vault!.id;
    const created = await root.agents.createAgent({ name: 'sdk-bot', tokenTtlSeconds: 60 });
    agentId = created.agent!.id;
    apiKey = created.apiKey;
    await root.policies.createPolicy({ vaultId, secretPathPattern: 'app/**', principalType: 'agent', principalId: agentId, permissions: ['read', 'write', 'rotate'] });
  });
  afterAll(async () => {
    root.close();
    await t.close();
  });

  const tokensIssued = async () => (await root.audit.listAuditEvents({ action: 'token.issue', actorId: agentId, limit: 1000 })).events.length;

  it('runs the seed walkthrough as an agent holding only its API key', async () => {
    const agent = createVaultClient({ address: t.grpcAddress, credentials: { apiKey } });
    try {
      const v1 = await agent.secrets.putSecret({ vaultId, path: 'app/db', type: 'password', value: 'old-value' });
      const v2 = await agent.secrets.putSecret({ vaultId, path: 'app/db', value: 'new-value' });
      expect([v1.secret?.version, v2.secret?.version]).toEqual([1, 2]);
      expect((await agent.secrets.getSecret({ vaultId, path: 'app/db' })).secret?.value).toBe('new-value');

      const rotated = await agent.secrets.rotateSecret({ vaultId, path: 'app/db', length: 24, charset: 'hex' });
      expect(rotated.secret?.version).toBe(3);
      const latest = (await agent.secrets.getSecret({ vaultId, path: 'app/db' })).secret!;
      expect(latest.value).toMatch(/^[0-9a-f]{24}$/);

      await root.secrets.disableSecretVersion({ vaultId, path: 'app/db', version: 2 });
      const versions = (await agent.secrets.listSecretVersions({ vaultId, path: 'app/db' })).versions;
      expect(versions.map((v) => [v.version, v.isDisabled])).toEqual([[3, false], [2, true], [1, false]]);
      const refused = await agent.secrets.getSecretVersion({ vaultId, path: 'app/db', version: 2 }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SecretVersionDisabledError);
      expect(refused).toMatchObject({ reason: 'SECRET_VERSION_DISABLED', metadata: { version: '2' } });
      expect(String(refused)).not.toContain('new-value');

      // One exchange served every call above.
      expect(await tokensIssued()).toBe(1);
    } finally {
      agent.close();
    }
  });

  it('takes an idempotency key as requestId: a repeated write answers the same and writes once', async () => {
    const write = () => root.secrets.putSecret({ vaultId, path: 'app/idempotent', value: 'once', requestId: 'sdk-write-1' });
    const [first, again] = [await write(), await write()];
    expect(again).toEqual(first);
    expect((await root.secrets.listSecretVersions({ vaultId, path: 'app/idempotent' })).versions.map((v) => v.version)).toEqual([1]);
    const reused = await root.secrets.putSecret({ vaultId, path: 'app/idempotent', value: 'other', requestId: 'sdk-write-1' }).catch((e: unknown) => e);
    expect(reused).toBeInstanceOf(AlreadyExistsError);
  });

  it('takes an etag on agent changes and surfaces a stale one as EtagMismatchError', async () => {
    const { agent } = await root.agents.createAgent({ name: 'sdk-etag' });
    const renamed = (await root.agents.updateAgent({ agentId: agent!.id, name: 'sdk-etag-2', etag: agent!.etag })).agent!;
    const stale = await root.agents.updateAgent({ agentId: agent!.id, name: 'lost', etag: agent!.etag }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(EtagMismatchError);
    expect(stale).toMatchObject({ reason: 'ETAG_MISMATCH', metadata: { current_etag: renamed.etag } });
  });

  it('surfaces refusals as typed errors', async () => {
    const agent = createVaultClient({ address: t.grpcAddress, credentials: { apiKey } });
    try {
      await expect(agent.secrets.getSecret({ vaultId, path: 'other/x' })).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(root.vaults.getVault({ vaultId: '00000000-0000-4000-8000-000000000000' })).rejects.toBeInstanceOf(NotFoundError);
      const anonymous = createVaultClient({ address: t.grpcAddress });
      await expect(anonymous.vaults.listVaults()).rejects.toBeInstanceOf(UnauthenticatedError);
      anonymous.close();
      const badKey = createVaultClient({ address: t.grpcAddress, credentials: { apiKey: `ocv_${'A'.repeat(43)}` } });
      await expect(badKey.secrets.getSecret({ vaultId, path: 'app/db' })).rejects.toBeInstanceOf(UnauthenticatedError);
      badKey.close();
    } finally {
      agent.close();
    }
  });

  it('exchanges the key again, unnoticed, when its token is revoked', async () => {
    const agent = createVaultClient({ address: t.grpcAddress, credentials: { apiKey } });
    try {
      await agent.secrets.putSecret({ vaultId, path: 'app/revoked', value: 'v' });
      const before = await tokensIssued();
      // Deactivating and reactivating moves the credential generation: the cached token is dead.
      await root.agents.updateAgent({ agentId, isActive: false });
      await root.agents.updateAgent({ agentId, isActive: true });
      expect((await agent.secrets.getSecret({ vaultId, path: 'app/revoked' })).secret?.value).toBe('v');
      expect(await tokensIssued()).toBe(before + 1);
    } finally {
      agent.close();
    }
  });

  it('renews its token before the token expires', async () => {
    let clock = Date.now();
    const agent = createVaultClient({ address: t.grpcAddress, credentials: { apiKey }, now: () => clock });
    try {
      await agent.secrets.putSecret({ vaultId, path: 'app/renew', value: 'v' });
      const before = await tokensIssued();
      clock += 30_000; // half of the 60 s lifetime: the token is kept
      await agent.secrets.getSecret({ vaultId, path: 'app/renew' });
      expect(await tokensIssued()).toBe(before);
      clock += 20_000; // past 80 % of it: renewed before the server would refuse it
      await agent.secrets.getSecret({ vaultId, path: 'app/renew' });
      expect(await tokensIssued()).toBe(before + 1);
    } finally {
      agent.close();
    }
  });

  it('reports an unreachable server as a typed error within the call deadline', async () => {
    const down = createVaultClient({ address: '127.0.0.1:1', credentials: { token: TEST_ROOT_TOKEN }, deadlineMs: 300, retry: { initialBackoffMs: 10 } });
    const error = await down.vaults.listVaults().catch((e: unknown) => e);
    down.close();
    expect(error).toMatchObject({ name: expect.stringMatching(/UnavailableError|DeadlineExceededError/) });
  });
});

describe('the SDK across a token expiry', () => {
  it('keeps an agent working after the server lets its token expire, without the caller noticing', async () => {
    const clock = createTestClock();
    const t = await startTestApp({}, { clock });
    const root = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    try {
      const vaultId = (await root.vaults.createVault({ name: 'expiry' })).vault!.id;
      const created = await root.agents.createAgent({ name: 'short-lived', tokenTtlSeconds: 60 });
      await root.policies.createPolicy({ vaultId, secretPathPattern: '**', principalType: 'agent', principalId: created.agent!.id, permissions: ['read', 'write'] });
      // The SDK's own clock stands still, so only the server's refusal can make it renew.
      const agent = createVaultClient({ address: t.grpcAddress, credentials: { apiKey: created.apiKey }, now: () => 0 });
      await agent.secrets.putSecret({ vaultId, path: 'db', value: 'before-expiry' });
      // Past the token's expiry and the clock leeway the server allows for instances' skew.
      clock.advance((60 + CLOCK_LEEWAY_SECONDS + 1) * 1000);
      expect((await agent.secrets.getSecret({ vaultId, path: 'db' })).secret?.value).toBe('before-expiry');
      const issued = await root.audit.listAuditEvents({ action: 'token.issue', actorId: created.agent!.id });
      expect(issued.events).toHaveLength(2);
      agent.close();
    } finally {
      root.close();
      await t.close();
    }
  });
});
