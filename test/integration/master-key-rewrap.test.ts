// Master-key rotation end to end on the domain: rewrap, resume, concurrent runs, a start with only
// the new key, tokens and the audit chain across the rotation. On memory and on MariaDB.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPolicyAccessControl } from '../../src/domain/access-control.js';
import { createAgentTokens } from '../../src/auth/agent-token.js';
import { deriveAgentTokenKeys } from '../../src/auth/agent-token-keys.js';
import { createBarrier } from '../../src/crypto/barrier.js';
import { checkKeysAgainstStorage } from '../../src/crypto/key-check.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createAuditChain } from '../../src/domain/audit-chain.js';
import { createAuditService } from '../../src/domain/audit-service.js';
import { createMasterKeyService, openRetiredAuditKeys } from '../../src/domain/master-keys.js';
import { ROOT, type CallContext } from '../../src/domain/principal.js';
import { createSecretService } from '../../src/domain/secret-service.js';
import { createVaultService } from '../../src/domain/vault-service.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import type { Storage } from '../../src/storage/storage.js';
import { createTestDatabase } from '../support/database.js';

const root: CallContext = { principal: ROOT, requestId: 'rewrap-test' };
const newKey = () => new Uint8Array(randomBytes(32));

/** One instance of the service's domain over shared storage, as startApp builds it. */
async function instance(storage: Storage, current: Uint8Array, old: Uint8Array[] = []) {
  const keyring = createKeyring(current, old);
  const barrier = createBarrier(keyring);
  await checkKeysAgainstStorage(keyring, barrier, storage.keyCanaries);
  const now = () => new Date();
  const access = createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit.bind(storage), now });
  const vaults = createVaultService({ storage, access, now });
  return {
    keyId: keyring.current.id,
    vaults,
    secrets: createSecretService({ storage, barrier, access, vaults, now, maxValueBytes: 4096 }),
    keys: createMasterKeyService({ storage, barrier, keyring, access, now }),
    audit: createAuditService({ storage, access, chain: createAuditChain(keyring, await openRetiredAuditKeys(storage, barrier)) }),
    tokens: createAgentTokens(deriveAgentTokenKeys(keyring)),
  };
}
type Instance = Awaited<ReturnType<typeof instance>>;

const stores: Array<[string, () => Promise<{ storage: Storage; close(): Promise<void> } | null>]> = [
  ['memory', async () => ({ storage: createMemoryStorage(), close: async () => {} })],
  [
    'mysql',
    async () => {
      const database = await createTestDatabase();
      if (!database) return null;
      const storage = await createMysqlStorage({ url: database.url, poolSize: 6 });
      return {
        storage,
        async close() {
          await storage.close();
          await database.drop();
        },
      };
    },
  ],
];

describe.each(stores)('master-key rewrap on %s', (_name, open) => {
  let storage: Storage;
  let close: () => Promise<void>;
  let k1: Uint8Array;
  let k2: Uint8Array;
  let vaultId: string;
  /** Every value written, by path and version. */
  let written: Map<string, string[]>;

  beforeEach(async (context) => {
    const opened = await open();
    if (!opened) return context.skip();
    ({ storage, close } = opened);
    k1 = newKey();
    k2 = newKey();
    written = new Map();
    const first = await instance(storage, k1);
    vaultId = (await first.vaults.create(root, { name: 'rotation', description: '' })).id;
    for (const path of ['db/password', 'api-keys/openai', 'certs/tls', 'z/last']) {
      for (let v = 1; v <= 3; v++) await put(first, path, `${path}#${v}-${randomBytes(4).toString('hex')}`);
    }
    await first.secrets.setDisabled(root, vaultId, 'certs/tls', 2, true);
    await put(first, 'doomed', 'will be deleted');
    await first.secrets.delete(root, vaultId, 'doomed');
    written.delete('doomed');
    await first.audit.sealPending();
    // That instance is then replaced: it gives the sealer lease up, as a stopping app does.
    await first.audit.stopSealing();
  });
  afterEach(async () => {
    await close?.();
  });

  async function put(on: Instance, path: string, value: string) {
    await on.secrets.put(root, { vaultId, path, value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 });
    written.set(path, [...(written.get(path) ?? []), value]);
  }

  /** Reads every version of every secret; disabled versions are enabled for the read and back. */
  async function readEverything(on: Instance) {
    const seen = new Map<string, string[]>();
    for (const [path, values] of written) {
      const read: string[] = [];
      for (let v = 1; v <= values.length; v++) {
        const disabled = path === 'certs/tls' && v === 2;
        if (disabled) await on.secrets.setDisabled(root, vaultId, path, v, false);
        read.push((await on.secrets.getVersion(root, vaultId, path, v)).value);
        if (disabled) await on.secrets.setDisabled(root, vaultId, path, v, true);
      }
      seen.set(path, read);
    }
    return seen;
  }

  const usageOf = async (on: Instance, keyId: string) => (await on.keys.listKeys(root)).keys.find((k) => k.keyId === keyId);

  it('after a rotation and a rewrap, starts with only the new key and reads back every version', async () => {
    const rotated = await instance(storage, k2, [k1]);
    await put(rotated, 'db/password', 'written after the rotation');
    const oldId = (await instance(storage, k1, [k2])).keyId;
    expect(await usageOf(rotated, oldId)).toMatchObject({ secretVersions: 12, hasCanary: true, configured: true, current: false });
    // Before the rewrap, the old key is still needed.
    await expect(instance(storage, k2)).rejects.toThrow(/not configured/);

    const progress = await rotated.keys.rewrap(root, { batchSize: 0, maxBatches: 0 });
    expect(progress).toMatchObject({ rewrapped: 12, skipped: 0, failed: 0, remaining: 0, complete: true, currentKeyId: rotated.keyId, retiredKeyIds: [oldId] });
    // The retired key's audit-chain key now lives sealed under the new key.
    expect(progress.keys.find((k) => k.keyId === rotated.keyId)).toMatchObject({ current: true, secretVersions: 13, sealedKeys: 1, hasCanary: true });
    expect(progress.keys.find((k) => k.keyId === oldId)).toMatchObject({ protectedItems: 0, hasCanary: false });

    const newOnly = await instance(storage, k2);
    expect(await readEverything(newOnly)).toEqual(written);
    await put(newOnly, 'after/restart', 'still writable');
    // The chain holds links made under the removed key and under the new one, and verifies.
    await newOnly.audit.sealPending();
    const verification = await newOnly.audit.verify(root);
    expect(verification).toMatchObject({ chainValid: true });
    expect(verification.eventsVerified).toBeGreaterThan(14);
    const keyIds = new Set((await storage.audit.readChain(0, 10_000)).map((e) => e.keyId));
    expect(keyIds).toEqual(new Set([oldId, newOnly.keyId]));
  });

  it('finishes a rewrap that was stopped half-way when it runs again', async () => {
    const rotated = await instance(storage, k2, [k1]);
    const partial = await rotated.keys.rewrap(root, { batchSize: 4, maxBatches: 2 });
    expect(partial).toMatchObject({ rewrapped: 8, complete: false, remaining: 4, retiredKeyIds: [] });
    await expect(instance(storage, k2)).rejects.toThrow(/not configured/);
    // Still readable in between, old and new layouts side by side.
    expect(await readEverything(rotated)).toEqual(written);

    const rest = await rotated.keys.rewrap(root, { batchSize: 4, maxBatches: 0 });
    expect(rest).toMatchObject({ rewrapped: 4, remaining: 0, complete: true });
    expect(await readEverything(await instance(storage, k2))).toEqual(written);
    // A further run finds nothing to do.
    expect(await rotated.keys.rewrap(root, { batchSize: 4, maxBatches: 0 })).toMatchObject({ rewrapped: 0, remaining: 0, complete: true, retiredKeyIds: [] });
  });

  it('lets several instances rewrap at once while writes go on, each item exactly once', async () => {
    const [a, b, c] = [await instance(storage, k2, [k1]), await instance(storage, k2, [k1]), await instance(storage, k2, [k1])];
    const results = await Promise.all([
      a.keys.rewrap(root, { batchSize: 2, maxBatches: 0 }),
      b.keys.rewrap(root, { batchSize: 3, maxBatches: 0 }),
      put(c, 'api-keys/openai', 'written during the rewrap'),
      c.keys.rewrap(root, { batchSize: 5, maxBatches: 0 }),
    ]);
    const runs = [results[0], results[1], results[3]];
    expect(runs.reduce((n, r) => n + r.rewrapped, 0)).toBe(12);
    expect(runs.every((r) => r.failed === 0)).toBe(true);
    const final = await a.keys.rewrap(root, { batchSize: 0, maxBatches: 0 });
    expect(final).toMatchObject({ rewrapped: 0, remaining: 0, complete: true });
    expect(await readEverything(await instance(storage, k2))).toEqual(written);
  });

  it('keeps tokens issued before the rotation valid while the old key is configured', async () => {
    const before = await instance(storage, k1);
    const token = await before.tokens.issue({ sub: 'agent-1', gen: 0, iat: 1, exp: 4_000_000_000 });
    const rotated = await instance(storage, k2, [k1]);
    expect(await rotated.tokens.verify(token, 2)).toMatchObject({ sub: 'agent-1', gen: 0 });
    // New tokens are signed with the new key and name it.
    const fresh = await rotated.tokens.issue({ sub: 'agent-1', gen: 0, iat: 1, exp: 4_000_000_000 });
    expect(JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()).kid).toBe(rotated.keyId);
    await rotated.keys.rewrap(root, { batchSize: 0, maxBatches: 0 });
    const newOnly = await instance(storage, k2);
    // Once the old key is removed, its tokens fail (the agent exchanges its key again); new ones work.
    expect(await newOnly.tokens.verify(token, 2)).toBeNull();
    expect(await newOnly.tokens.verify(fresh, 2)).toMatchObject({ sub: 'agent-1' });
  });

  it('refuses a rewrap by anyone but root, and bad batch sizes', async () => {
    const rotated = await instance(storage, k2, [k1]);
    const agent: CallContext = { principal: { type: 'agent', id: 'a1' }, requestId: 'r' };
    await expect(rotated.keys.rewrap(agent, { batchSize: 0, maxBatches: 0 })).rejects.toMatchObject({ code: 'permission_denied' });
    await expect(rotated.keys.listKeys(agent)).rejects.toMatchObject({ code: 'permission_denied' });
    await expect(rotated.keys.rewrap(root, { batchSize: 5001, maxBatches: 0 })).rejects.toThrow(/batch_size must be a whole number from 1 to 5000/);
    await expect(rotated.keys.rewrap(root, { batchSize: 0, maxBatches: -1 })).rejects.toThrow(/max_batches/);
    expect((await usageOf(rotated, (await instance(storage, k1, [k2])).keyId))?.secretVersions).toBe(12);
  });
});
