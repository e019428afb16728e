import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditRecord, NewSecretVersion, Storage, VaultRecord } from '../../src/storage/storage.js';

/**
 * The storage contract: every Storage implementation must pass this suite unchanged (after
 * Vault's ExerciseBackend). `open` returns a fresh, empty storage.
 */
export function storageContract(name: string, open: () => Promise<{ storage: Storage; close(): Promise<void> } | null>) {
  describe(`storage contract: ${name}`, () => {
    let storage: Storage;
    let close: () => Promise<void>;
    let vault: VaultRecord;

    beforeEach(async (context) => {
      const opened = await open();
      if (!opened) return context.skip();
      ({ storage, close } = opened);
      vault = newVault();
      await storage.vaults.create(vault, []);
    });
    afterEach(async () => {
      await close?.();
    });

    const newVault = (name = 'v'): VaultRecord => ({
      id: randomUUID(),
      name,
      description: 'd',
      createdBy: 'root',
      createdByType: 'root',
      createdAt: new Date(Math.floor(Date.now() / 1000) * 1000),
    });
    const fields = (value: string, extra: Partial<NewSecretVersion> = {}): NewSecretVersion => ({
      id: randomUUID(),
      type: 'generic',
      metadata: { env: 'test' },
      ciphertext: Buffer.from(value),
      createdBy: 'root',
      createdAt: new Date('2026-01-02T03:04:05.678Z'),
      expiresAt: null,
      maxAccessCount: 0,
      ...extra,
    });
    const put = (path: string, value: string, extra: Partial<NewSecretVersion> = {}) =>
      storage.secrets.append(vault.id, path, () => fields(value, extra), () => []);

    describe('vaults', () => {
      it('creates, gets, lists oldest first and deletes vaults', async () => {
        const later = { ...newVault('later'), createdAt: new Date(vault.createdAt.getTime() + 1000) };
        await storage.vaults.create(later, []);
        expect(await storage.vaults.get(vault.id)).toEqual(vault);
        expect((await storage.vaults.list()).map((v) => v.id)).toEqual([vault.id, later.id]);
        expect(await storage.vaults.delete(later.id, [])).toBe(true);
        expect(await storage.vaults.get(later.id)).toBeNull();
        expect(await storage.vaults.delete(later.id, [])).toBe(false);
      });

      it('deleting a vault removes its secrets', async () => {
        await put('a', 'x');
        await storage.vaults.delete(vault.id, []);
        await storage.vaults.create(vault, []);
        expect(await storage.secrets.listLatest(vault.id, '')).toEqual([]);
        expect((await put('a', 'y')).version).toBe(1);
      });
    });

    describe('secret versions', () => {
      it('round-trips every field of a version', async () => {
        const expiresAt = new Date('2030-05-06T07:08:09.123Z');
        const written = await put('db/password', 'cipher', {
          type: 'password',
          metadata: { owner: 'team', nested: { n: 1, list: [true, null, 'x'] } },
          expiresAt,
          maxAccessCount: 3,
        });
        const { version, exists, deleted } = await storage.secrets.lookup(vault.id, 'db/password', { kind: 'latest' });
        expect({ exists, deleted }).toEqual({ exists: true, deleted: false });
        expect(version).toEqual(written);
        expect(version).toMatchObject({
          vaultId: vault.id,
          path: 'db/password',
          version: 1,
          type: 'password',
          metadata: { owner: 'team', nested: { n: 1, list: [true, null, 'x'] } },
          createdAt: new Date('2026-01-02T03:04:05.678Z'),
          expiresAt,
          maxAccessCount: 3,
          accessCount: 0,
          disabled: false,
          deleted: false,
        });
        expect(Buffer.from(version!.ciphertext!).toString()).toBe('cipher');
      });

      it('numbers versions from 1 and tells build the number and the previous version', async () => {
        await put('p', 'one', { metadata: { n: 1 } });
        const seen: Array<[number, unknown]> = [];
        await storage.secrets.append(
          vault.id,
          'p',
          (context) => {
            seen.push([context.version, context.previous?.metadata]);
            return fields('two');
          },
          () => [],
        );
        expect(seen).toEqual([[2, { n: 1 }]]);
      });

      it('writes nothing when build throws', async () => {
        await put('p', 'one');
        await expect(
          storage.secrets.append(vault.id, 'p', () => { throw new Error('refused'); }, () => []),
        ).rejects.toThrow('refused');
        expect((await put('p', 'two')).version).toBe(2);
        expect((await storage.secrets.listVersions(vault.id, 'p')).map((v) => v.version)).toEqual([2, 1]);
      });

      it('gives unique, gapless numbers to concurrent appends', async () => {
        const results = await Promise.all(Array.from({ length: 40 }, (_, i) => put('race', `v${i}`)));
        expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      });

      it('keeps paths separate, byte-exact', async () => {
        await put('Key', 'upper');
        await put('key', 'lower');
        const upper = await storage.secrets.lookup(vault.id, 'Key', { kind: 'latest' });
        const lower = await storage.secrets.lookup(vault.id, 'key', { kind: 'latest' });
        expect(Buffer.from(upper.version!.ciphertext!).toString()).toBe('upper');
        expect(Buffer.from(lower.version!.ciphertext!).toString()).toBe('lower');
        expect(upper.version!.version).toBe(1);
      });

      it('reports an unknown path as not existing', async () => {
        expect(await storage.secrets.lookup(vault.id, 'nope', { kind: 'latest' })).toEqual({
          exists: false,
          deleted: false,
          version: null,
        });
      });

      it('resolves latest to the newest version that is not disabled', async () => {
        await put('p', 'one');
        await put('p', 'two');
        expect(await storage.secrets.setDisabled(vault.id, 'p', 2, true, [])).toBe(true);
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).version?.version).toBe(1);
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'number', version: 2 })).version?.disabled).toBe(true);
        await storage.secrets.setDisabled(vault.id, 'p', 1, true, []);
        expect(await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).toMatchObject({ exists: true, version: null });
        await storage.secrets.setDisabled(vault.id, 'p', 2, false, []);
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).version?.version).toBe(2);
        expect(await storage.secrets.setDisabled(vault.id, 'p', 3, true, [])).toBe(false);
      });

      it('lists versions newest first with their disabled flags', async () => {
        await put('p', 'one');
        await put('p', 'two');
        await put('p', 'three');
        await storage.secrets.setDisabled(vault.id, 'p', 2, true, []);
        const listed = await storage.secrets.listVersions(vault.id, 'p');
        expect(listed.map((v) => [v.version, v.disabled])).toEqual([[3, false], [2, true], [1, false]]);
        expect(await storage.secrets.listVersions(vault.id, 'other')).toEqual([]);
      });

      it('lists the newest version of each live path in byte order, filtered by prefix', async () => {
        await put('b/two', 'x');
        await put('a/one', 'x');
        await put('a/one', 'y', { metadata: { newest: true } });
        await put('B', 'x');
        await put('gone', 'x');
        await storage.secrets.delete(vault.id, 'gone', []);
        await storage.secrets.setDisabled(vault.id, 'b/two', 1, true, []);
        const all = await storage.secrets.listLatest(vault.id, '');
        expect(all.map((v) => [v.path, v.version])).toEqual([['B', 1], ['a/one', 2], ['b/two', 1]]);
        expect(all[1]!.metadata).toEqual({ newest: true });
        expect(all[2]!.disabled).toBe(true);
        expect((await storage.secrets.listLatest(vault.id, 'a/')).map((v) => v.path)).toEqual(['a/one']);
        expect(await storage.secrets.listLatest(vault.id, 'A')).toEqual([]);
      });

      it('treats a prefix with LIKE wildcards literally', async () => {
        await put('a_b', 'x');
        await put('axb', 'x');
        expect((await storage.secrets.listLatest(vault.id, 'a_')).map((v) => v.path)).toEqual(['a_b']);
      });
    });

    describe('read budgets', () => {
      it('allows exactly N reads of a version with a budget of N under concurrency', async () => {
        await put('once', 'x', { maxAccessCount: 5 });
        const results = await Promise.all(
          Array.from({ length: 30 }, () => storage.secrets.consumeRead(vault.id, 'once', 1, [])),
        );
        expect(results.filter(Boolean)).toHaveLength(5);
        const { version } = await storage.secrets.lookup(vault.id, 'once', { kind: 'number', version: 1 });
        expect(version?.accessCount).toBe(5);
      });

      it('refuses to spend a read of a disabled or deleted version', async () => {
        await put('p', 'x', { maxAccessCount: 5 });
        await storage.secrets.setDisabled(vault.id, 'p', 1, true, []);
        expect(await storage.secrets.consumeRead(vault.id, 'p', 1, [])).toBe(false);
        await storage.secrets.setDisabled(vault.id, 'p', 1, false, []);
        await storage.secrets.delete(vault.id, 'p', []);
        expect(await storage.secrets.consumeRead(vault.id, 'p', 1, [])).toBe(false);
      });
    });

    describe('delete', () => {
      it('erases ciphertexts, hides versions and continues numbering after re-creation', async () => {
        await put('p', 'one');
        await put('p', 'two');
        expect(await storage.secrets.delete(vault.id, 'p', [])).toBe(true);
        expect(await storage.secrets.delete(vault.id, 'p', [])).toBe(false);
        const gone = await storage.secrets.lookup(vault.id, 'p', { kind: 'number', version: 2 });
        expect(gone).toMatchObject({ exists: true, deleted: true, version: { deleted: true, ciphertext: null } });
        expect(await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).toMatchObject({ deleted: true, version: null });
        expect(await storage.secrets.listVersions(vault.id, 'p')).toEqual([]);
        const again = await storage.secrets.append(
          vault.id,
          'p',
          (context) => {
            expect(context.previous).toBeNull();
            return fields('three');
          },
          () => [],
        );
        expect(again.version).toBe(3);
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).deleted).toBe(false);
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'number', version: 1 })).version?.deleted).toBe(true);
        expect((await storage.secrets.listVersions(vault.id, 'p')).map((v) => v.version)).toEqual([3]);
      });
    });

    describe('audit', () => {
      const event = (action: string): AuditRecord => ({
        id: randomUUID(),
        action,
        actorType: 'root',
        actorId: 'root',
        resourceType: 'secret',
        resourceId: 'p',
        vaultId: vault.id,
        outcome: 'success',
        details: { version: 1 },
        requestId: 'req-1',
        createdAt: new Date(),
      });

      it('accepts audit events with each change and on their own', async () => {
        await storage.secrets.append(vault.id, 'p', () => fields('x'), (v) => [{ ...event('secret.write'), details: { version: v.version } }]);
        await storage.secrets.setDisabled(vault.id, 'p', 1, true, [event('secret.disable')]);
        await storage.appendAudit([event('secret.read')]);
        await expect(storage.ping()).resolves.toBeUndefined();
      });
    });
  });
}
