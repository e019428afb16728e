import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { createPolicyAccessControl } from '../../src/domain/access-control.js';
import { createBarrier } from '../../src/crypto/barrier.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { CHARSETS } from '../../src/crypto/random-string.js';
import { VaultError } from '../../src/domain/errors.js';
import { ROOT, type CallContext } from '../../src/domain/principal.js';
import { createSecretService, type PutSecretInput, type SecretService } from '../../src/domain/secret-service.js';
import { createVaultService } from '../../src/domain/vault-service.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';

const root: CallContext = { principal: ROOT, requestId: 'test' };

/** Asserts a promise fails with a VaultError of this code (and reason). */
async function failsWith(promise: Promise<unknown>, code: string, reason?: string) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}${reason ? `/${reason}` : ''}`).toBeInstanceOf(VaultError);
  expect((error as VaultError).code).toBe(code);
  if (reason) expect((error as VaultError).reason).toBe(reason);
  return error as VaultError;
}

describe('secret service', () => {
  let clock: Date;
  let secrets: SecretService;
  let storage: ReturnType<typeof createMemoryStorage>;
  let vaultId: string;

  const put = (path: string, value: string, extra: Partial<PutSecretInput> = {}) =>
    secrets.put(root, { vaultId, path, value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0, ...extra });
  const rotate = (path: string, extra: { length?: number; charset?: string; type?: string; metadata?: unknown; expiresAt?: Date; maxAccessCount?: number } = {}) =>
    secrets.rotate(root, { vaultId, path, length: extra.length, charset: extra.charset ?? '', type: extra.type ?? '', metadata: extra.metadata, expiresAt: extra.expiresAt, maxAccessCount: extra.maxAccessCount });

  beforeEach(async () => {
    clock = new Date('2026-06-01T00:00:00Z');
    storage = createMemoryStorage();
    const now = () => new Date(clock);
    const access = createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit, now });
    const vaults = createVaultService({ storage, access, now });
    const barrier = createBarrier(createKeyring(new Uint8Array(randomBytes(32))));
    secrets = createSecretService({ storage, barrier, access, vaults, now, maxValueBytes: 1024 });
    vaultId = (await vaults.create(root, { name: 'test', description: '' })).id;
  });

  it('stores a value and returns it as the latest version', async () => {
    const written = await put('api-keys/openai', 'sk-1', { type: 'api_key', metadata: { team: 'ml' } });
    expect(written).toMatchObject({ version: 1, type: 'api_key', metadata: { team: 'ml' }, path: 'api-keys/openai' });
    expect(written).not.toHaveProperty('value');
    const read = await secrets.get(root, vaultId, 'api-keys/openai');
    expect(read).toMatchObject({ value: 'sk-1', version: 1, type: 'api_key', createdBy: 'root' });
  });

  it('defaults the type to generic', async () => {
    expect((await put('p', 'x')).type).toBe('generic');
  });

  it('numbers each write as the next version and serves any version by number', async () => {
    await put('p', 'one');
    await put('p', 'two');
    expect((await put('p', 'three')).version).toBe(3);
    expect((await secrets.getVersion(root, vaultId, 'p', 2)).value).toBe('two');
    expect((await secrets.get(root, vaultId, 'p')).value).toBe('three');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 4), 'not_found');
  });

  it('skips disabled versions for latest, 410s reads of them, and lists them as disabled', async () => {
    await put('p', 'one');
    await put('p', 'two');
    await secrets.setDisabled(root, vaultId, 'p', 2, true);
    await secrets.setDisabled(root, vaultId, 'p', 2, true); // idempotent
    expect((await secrets.get(root, vaultId, 'p')).value).toBe('one');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 2), 'gone', 'SECRET_VERSION_DISABLED');
    expect((await secrets.listVersions(root, vaultId, 'p')).items.map((v) => [v.version, v.disabled])).toEqual([
      [2, true],
      [1, false],
    ]);
    await secrets.setDisabled(root, vaultId, 'p', 1, true);
    await failsWith(secrets.get(root, vaultId, 'p'), 'gone', 'SECRET_NO_READABLE_VERSION');
    await secrets.setDisabled(root, vaultId, 'p', 2, false);
    expect((await secrets.get(root, vaultId, 'p')).value).toBe('two');
  });

  it('refuses a read of an expired latest version instead of falling back', async () => {
    await put('p', 'one');
    await put('p', 'two', { expiresAt: new Date(clock.getTime() + 60_000) });
    expect((await secrets.get(root, vaultId, 'p')).value).toBe('two');
    clock = new Date(clock.getTime() + 60_000);
    await failsWith(secrets.get(root, vaultId, 'p'), 'gone', 'SECRET_VERSION_EXPIRED');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 2), 'gone', 'SECRET_VERSION_EXPIRED');
    expect((await secrets.getVersion(root, vaultId, 'p', 1)).value).toBe('one');
  });

  it('rejects an expiry in the past', async () => {
    await failsWith(put('p', 'x', { expiresAt: new Date(clock.getTime() - 1) }), 'invalid_argument');
  });

  it('allows exactly max_access_count reads, latest and by number alike, even concurrently', async () => {
    await put('once', 'x', { maxAccessCount: 3 });
    const results = await Promise.allSettled([
      ...Array.from({ length: 5 }, () => secrets.get(root, vaultId, 'once')),
      ...Array.from({ length: 5 }, () => secrets.getVersion(root, vaultId, 'once', 1)),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    await failsWith(secrets.get(root, vaultId, 'once'), 'gone', 'SECRET_VERSION_EXHAUSTED');
    // Listing does not spend reads.
    await put('listed', 'x', { maxAccessCount: 1 });
    await secrets.listVersions(root, vaultId, 'listed');
    await secrets.list(root, vaultId, '');
    expect((await secrets.get(root, vaultId, 'listed')).value).toBe('x');
  });

  it('treats max_access_count 0 as unlimited and rejects negative budgets', async () => {
    await put('p', 'x', { maxAccessCount: 0 });
    for (let i = 0; i < 5; i++) await secrets.get(root, vaultId, 'p');
    await failsWith(put('p', 'x', { maxAccessCount: -1 }), 'invalid_argument');
  });

  it('keeps the read budget and the lifetime of the previous version across a rotation unless overridden', async () => {
    const hour = 3_600_000;
    await put('once', 'v1', { expiresAt: new Date(clock.getTime() + hour), maxAccessCount: 1 });
    clock = new Date(clock.getTime() + 10 * 60_000);
    const rotated = await rotate('once');
    expect(rotated.maxAccessCount).toBe(1);
    expect(rotated.expiresAt).toEqual(new Date(clock.getTime() + hour));
    await secrets.get(root, vaultId, 'once');
    await failsWith(secrets.get(root, vaultId, 'once'), 'gone');
    clock = new Date(clock.getTime() + hour);
    await failsWith(rotate('once', { expiresAt: new Date(clock.getTime() - 1) }), 'invalid_argument');
    await failsWith(rotate('once', { maxAccessCount: -1 }), 'invalid_argument');
    const overridden = await rotate('once', { expiresAt: new Date(clock.getTime() + 5 * hour), maxAccessCount: 0 });
    expect(overridden).toMatchObject({ maxAccessCount: 0, expiresAt: new Date(clock.getTime() + 5 * hour) });
    await put('forever', 'v1');
    expect(await rotate('forever')).toMatchObject({ maxAccessCount: 0, expiresAt: null });
  });

  it('keeps the read budget and the lifetime of the previous version across a scheduled rotation', async () => {
    const hour = 3_600_000;
    const rotationPolicy = { intervalSeconds: 600, charset: 'hex', stage: '' };
    await put('scheduled', 'v1', { expiresAt: new Date(clock.getTime() + hour), maxAccessCount: 2, rotationPolicy });
    const dueAt = (await storage.secrets.schedule(vaultId, 'scheduled'))!.nextRotationAt!;
    clock = new Date(dueAt);
    expect(await secrets.rotateScheduled(vaultId, 'scheduled', dueAt)).toBe(true);
    const rotated = await secrets.get(root, vaultId, 'scheduled');
    expect(rotated).toMatchObject({ version: 2, maxAccessCount: 2, expiresAt: new Date(clock.getTime() + hour) });
    await secrets.get(root, vaultId, 'scheduled');
    await failsWith(secrets.get(root, vaultId, 'scheduled'), 'gone');
    await put('unlimited', 'v1', { rotationPolicy });
    const unlimitedDue = (await storage.secrets.schedule(vaultId, 'unlimited'))!.nextRotationAt!;
    clock = new Date(unlimitedDue);
    expect(await secrets.rotateScheduled(vaultId, 'unlimited', unlimitedDue)).toBe(true);
    expect(await secrets.get(root, vaultId, 'unlimited')).toMatchObject({ version: 2, maxAccessCount: 0, expiresAt: null });
  });

  it('rotates to a generated value of the requested charset and length, keeping type and metadata', async () => {
    await put('db/password', 'initial', { type: 'password', metadata: { owner: 'dba' } });
    for (const [charset, length] of [['hex', 8], ['base64', 1024], ['alphanumeric', 33], ['ascii', 64]] as const) {
      const rotated = await rotate('db/password', { charset, length });
      expect(rotated).toMatchObject({ type: 'password', metadata: { owner: 'dba' } });
      const { value } = await secrets.get(root, vaultId, 'db/password');
      expect(value).toHaveLength(length);
      expect([...value].every((c) => CHARSETS[charset].includes(c))).toBe(true);
    }
    const defaults = await rotate('db/password');
    expect(defaults.version).toBe(6);
    expect((await secrets.get(root, vaultId, 'db/password')).value).toMatch(/^[0-9a-f]{32}$/);
    const overridden = await rotate('db/password', { type: 'api_key', metadata: { owner: 'sre' } });
    expect(overridden).toMatchObject({ type: 'api_key', metadata: { owner: 'sre' } });
  });

  it('rejects rotation lengths and charsets outside the contract, and rotating a missing path', async () => {
    await put('p', 'x');
    await failsWith(rotate('p', { length: 7 }), 'invalid_argument');
    await failsWith(rotate('p', { length: 1025 }), 'invalid_argument');
    await failsWith(rotate('p', { length: 0 }), 'invalid_argument');
    await failsWith(rotate('p', { charset: 'HEX' }), 'invalid_argument');
    await failsWith(rotate('missing'), 'not_found');
    expect((await secrets.listVersions(root, vaultId, 'p')).items.map((v) => v.version)).toEqual([1]);
  });

  it('deletes every version, 410s later reads, hides the path and continues numbering on re-create', async () => {
    await put('p', 'one');
    await put('p', 'two');
    await secrets.delete(root, vaultId, 'p');
    await failsWith(secrets.get(root, vaultId, 'p'), 'gone', 'SECRET_DELETED');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 1), 'gone', 'SECRET_DELETED');
    await failsWith(secrets.listVersions(root, vaultId, 'p'), 'gone', 'SECRET_DELETED');
    await failsWith(rotate('p'), 'not_found');
    expect((await secrets.list(root, vaultId, '')).items).toEqual([]);
    expect((await put('p', 'three')).version).toBe(3);
    expect((await secrets.get(root, vaultId, 'p')).value).toBe('three');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 2), 'gone', 'SECRET_DELETED');
  });

  it('lists each live path once with its newest version, by prefix', async () => {
    await put('a/x', '1');
    await put('a/x', '2', { metadata: { v: 2 } });
    await put('a/y', '1');
    await put('b', '1');
    await secrets.setDisabled(root, vaultId, 'a/y', 1, true);
    const listed = (await secrets.list(root, vaultId, 'a/')).items;
    expect(listed.map((v) => [v.path, v.version, v.disabled])).toEqual([
      ['a/x', 2, false],
      ['a/y', 1, true],
    ]);
    expect(listed[0]).not.toHaveProperty('value');
  });

  it('validates paths, values, types, metadata and ids with clear messages', async () => {
    for (const path of ['', '/a', 'a/', 'a//b', 'a b', '-a', 'a'.repeat(513), 'ü']) {
      await failsWith(put(path, 'x'), 'invalid_argument');
    }
    expect((await put('a'.repeat(512), 'x')).version).toBe(1);
    expect((await put('A_b-c/9', 'x')).version).toBe(1);
    await failsWith(put('p', ''), 'invalid_argument');
    const tooBig = await failsWith(put('p', 'x'.repeat(1025)), 'invalid_argument');
    expect(tooBig.message).toContain('1024 bytes');
    expect(tooBig.message).not.toContain('xxxx');
    await failsWith(put('p', 'x', { type: 'rsa' }), 'invalid_argument');
    await failsWith(put('p', 'x', { metadata: ['not', 'an', 'object'] }), 'invalid_argument');
    await failsWith(put('p', 'x', { metadata: { big: 'y'.repeat(17 * 1024) } }), 'invalid_argument');
    await failsWith(secrets.put(root, { vaultId: 'nope', path: 'p', value: 'x', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }), 'invalid_argument');
    await failsWith(secrets.getVersion(root, vaultId, 'p', 0), 'invalid_argument');
  });

  it('answers NOT_FOUND for a vault that does not exist', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    await failsWith(secrets.put(root, { vaultId: missing, path: 'p', value: 'x', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }), 'not_found');
    await failsWith(secrets.get(root, missing, 'p'), 'not_found');
    await failsWith(secrets.list(root, missing, ''), 'not_found');
  });

  it('refuses an agent without a policy, whether or not the path exists', async () => {
    const agent: CallContext = { principal: { type: 'agent', id: 'a' }, requestId: 't' };
    await put('p', 'x');
    await failsWith(secrets.get(agent, vaultId, 'p'), 'permission_denied');
    await failsWith(secrets.get(agent, vaultId, 'does-not-exist'), 'permission_denied');
  });

  it('records an audit event for every write, read, disable and delete, without values', async () => {
    await put('p', 'audit-canary-value');
    await secrets.get(root, vaultId, 'p');
    await secrets.setDisabled(root, vaultId, 'p', 1, true);
    await secrets.delete(root, vaultId, 'p');
    const actions = storage.auditRows.filter((e) => e.resourceType === 'secret').map((e) => [e.action, e.resourceId, e.details]);
    expect(actions).toEqual([
      ['secret.write', 'p', { version: 1 }],
      ['secret.read', 'p', { version: 1 }],
      ['secret.disable', 'p', { version: 1 }],
      ['secret.delete', 'p', null],
    ]);
    expect(JSON.stringify(storage.auditRows)).not.toContain('audit-canary-value');
  });
});
