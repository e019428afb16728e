import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError, VaultMissingError } from '../../src/storage/storage-errors.js';
import type { AgentRecord, AuditRecord, CreatedPosition, NewSecretVersion, PolicyRecord, Storage, VaultRecord } from '../../src/storage/storage.js';

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
    const auditRecord = (action: string, path: string): AuditRecord => ({
      id: randomUUID(),
      action,
      actorType: 'system',
      actorId: 'system',
      resourceType: 'secret',
      resourceId: path,
      vaultId: vault.id,
      outcome: 'success',
      details: { version: 1 },
      requestId: 'req-expiry',
      createdAt: new Date('2026-05-01T00:00:00.000Z'),
    });

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

      it('refuses an append to a vault that does not exist, writing nothing', async () => {
        const missing = randomUUID();
        await expect(storage.secrets.append(missing, 'p', () => fields('x'), () => [])).rejects.toBeInstanceOf(VaultMissingError);
        expect(await storage.secrets.lookup(missing, 'p', { kind: 'latest' })).toMatchObject({ exists: false });
        await storage.vaults.delete(vault.id, []);
        await expect(storage.secrets.append(vault.id, 'p', () => fields('x'), () => [])).rejects.toBeInstanceOf(VaultMissingError);
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

    describe('read budgets: the count after a read', () => {
      it('tells the audit callback the exact count after each spend, so only the last read records the budget spent', async () => {
        await put('twice', 'x', { maxAccessCount: 2 });
        const spent = (accessCount: number) => (accessCount === 2 ? [auditRecord('secret.budget_spent', 'twice')] : []);
        const results = await Promise.all(
          Array.from({ length: 10 }, () => storage.secrets.consumeRead(vault.id, 'twice', 1, ({ accessCount }) => [auditRecord('secret.read', 'twice'), ...spent(accessCount)])),
        );
        expect(results.filter(Boolean)).toHaveLength(2);
        const actions = (await storage.audit.list({ resourceId: 'twice', limit: 20, offset: 0 })).map((e) => e.action);
        expect(actions.sort()).toEqual(['secret.budget_spent', 'secret.read', 'secret.read']);
      });
    });

    describe('expiry records', () => {
      const at = new Date('2026-05-01T00:00:00.000Z');
      const before = (ms: number) => new Date(at.getTime() - ms);

      it('lists expired versions not yet recorded, soonest first, and records each exactly once under concurrency', async () => {
        await put('later', 'x', { expiresAt: new Date(at.getTime() + 1000) });
        await put('never', 'x');
        await put('p', 'one', { expiresAt: before(1000) });
        await put('p', 'two', { expiresAt: before(5000) });
        expect(await storage.secrets.unrecordedExpiries(at, 10)).toEqual([
          { vaultId: vault.id, path: 'p', version: 2, expiresAt: before(5000) },
          { vaultId: vault.id, path: 'p', version: 1, expiresAt: before(1000) },
        ]);
        expect(await storage.secrets.unrecordedExpiries(at, 1)).toHaveLength(1);

        const results = await Promise.all(Array.from({ length: 8 }, () => storage.secrets.recordExpiry(vault.id, 'p', 2, at, [auditRecord('secret.expire', 'p')])));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await storage.audit.list({ action: 'secret.expire', limit: 20, offset: 0 })).map((e) => e.resourceId)).toEqual(['p']);
        expect((await storage.secrets.unrecordedExpiries(at, 10)).map((e) => e.version)).toEqual([1]);
        // Not yet expired by the caller's clock: nothing to record.
        expect(await storage.secrets.recordExpiry(vault.id, 'later', 1, at, [auditRecord('secret.expire', 'later')])).toBe(false);
        expect(await storage.secrets.recordExpiry(vault.id, 'never', 1, at, [])).toBe(false);
      });

      it('marks a deleted version without writing its event, so it leaves the scan', async () => {
        await put('gone', 'x', { expiresAt: before(1000) });
        await storage.secrets.delete(vault.id, 'gone', []);
        expect((await storage.secrets.unrecordedExpiries(at, 10)).map((e) => e.path)).toEqual(['gone']);
        expect(await storage.secrets.recordExpiry(vault.id, 'gone', 1, at, [auditRecord('secret.expire', 'gone')])).toBe(false);
        expect(await storage.secrets.unrecordedExpiries(at, 10)).toEqual([]);
        expect(await storage.audit.list({ action: 'secret.expire', limit: 20, offset: 0 })).toEqual([]);
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

    const event = (action: string, extra: Partial<AuditRecord> = {}): AuditRecord => ({
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
      createdAt: new Date('2026-03-04T05:06:07.089Z'),
      ...extra,
    });

    describe('sealed blobs (master-key rewrap)', () => {
      // A blob as the barrier lays it out: format byte, 8-byte master key id, then opaque bytes.
      const blob = (keyId: string, tail = randomBytes(8)) => Buffer.concat([Buffer.from([1]), Buffer.from(keyId, 'hex'), tail]);
      const OLD = '0123456789abcdef';
      const NEW = 'fedcba9876543210';
      const ref = (path: string, version: number) => ({ kind: 'secret_version' as const, vaultId: vault.id, path, version });

      it('counts blobs per master key id and kind, skipping deleted values', async () => {
        await put('a', 'x', { ciphertext: blob(OLD) });
        await put('a', 'x', { ciphertext: blob(NEW) });
        await put('b', 'x', { ciphertext: blob(OLD) });
        await put('gone', 'x', { ciphertext: blob(OLD) });
        await storage.secrets.delete(vault.id, 'gone', []);
        await storage.sealedKeys.add('audit-chain', OLD, blob(NEW));
        const counts = await storage.sealed.countByKey();
        expect(counts.sort((x, y) => `${x.kind}${x.keyId}`.localeCompare(`${y.kind}${y.keyId}`))).toEqual([
          { keyId: NEW, kind: 'sealed_key', count: 1 },
          { keyId: OLD, kind: 'secret_version', count: 2 },
          { keyId: NEW, kind: 'secret_version', count: 1 },
        ].sort((x, y) => `${x.kind}${x.keyId}`.localeCompare(`${y.kind}${y.keyId}`)));
      });

      it('lists blobs not under a key in key order, page by page after a ref', async () => {
        for (const path of ['b', 'a', 'c/d']) await put(path, 'x', { ciphertext: blob(OLD) });
        await put('a', 'x', { ciphertext: blob(OLD) });
        await put('n', 'x', { ciphertext: blob(NEW) });
        const first = await storage.sealed.listNotWrappedBy('secret_version', NEW, 2, null);
        expect(first.map((b) => b.ref)).toEqual([ref('a', 1), ref('a', 2)]);
        const second = await storage.sealed.listNotWrappedBy('secret_version', NEW, 10, first[1]!.ref);
        expect(second.map((b) => b.ref)).toEqual([ref('b', 1), ref('c/d', 1)]);
        expect(Buffer.from(second[0]!.blob).subarray(1, 9).toString('hex')).toBe(OLD);
        expect(await storage.sealed.listNotWrappedBy('secret_version', NEW, 10, second[1]!.ref)).toEqual([]);
      });

      it('replaces a blob only while it is still the one expected, and changes nothing else', async () => {
        const original = blob(OLD);
        await put('p', 'x', { ciphertext: original, maxAccessCount: 3 });
        const next = blob(NEW);
        expect(await storage.sealed.replace(ref('p', 1), original, next)).toBe(true);
        // A second runner holding the old blob loses: it cannot clobber the first one's write.
        expect(await storage.sealed.replace(ref('p', 1), original, blob(NEW))).toBe(false);
        const { version } = await storage.secrets.lookup(vault.id, 'p', { kind: 'number', version: 1 });
        expect(Buffer.from(version!.ciphertext!).equals(next)).toBe(true);
        expect(version).toMatchObject({ version: 1, maxAccessCount: 3, accessCount: 0, disabled: false });
        expect(await storage.sealed.replace(ref('missing', 1), original, next)).toBe(false);
        await storage.secrets.delete(vault.id, 'p', []);
        expect(await storage.sealed.replace(ref('p', 1), next, blob(NEW))).toBe(false);
      });

      it('keeps sealed keys per purpose and key id, first one wins, and re-wraps them like values', async () => {
        const first = blob(OLD);
        await storage.sealedKeys.add('audit-chain', 'k1', first);
        await storage.sealedKeys.add('audit-chain', 'k1', blob(NEW));
        await storage.sealedKeys.add('other', 'k1', blob(NEW));
        const listed = await storage.sealedKeys.list('audit-chain');
        expect(listed.map((k) => [k.keyId, Buffer.from(k.blob).equals(first)])).toEqual([['k1', true]]);
        const [stale] = await storage.sealed.listNotWrappedBy('sealed_key', NEW, 10, null);
        expect(stale!.ref).toEqual({ kind: 'sealed_key', purpose: 'audit-chain', keyId: 'k1' });
        const next = blob(NEW);
        expect(await storage.sealed.replace(stale!.ref, first, next)).toBe(true);
        expect(Buffer.from((await storage.sealedKeys.list('audit-chain'))[0]!.blob).equals(next)).toBe(true);
        expect(await storage.sealed.listNotWrappedBy('sealed_key', NEW, 10, null)).toEqual([]);
      });

      it('removes a key canary', async () => {
        await storage.keyCanaries.add(OLD, blob(OLD));
        await storage.keyCanaries.add(NEW, blob(NEW));
        await storage.keyCanaries.remove(OLD);
        await storage.keyCanaries.remove('never-stored');
        expect((await storage.keyCanaries.list()).map((c) => c.keyId)).toEqual([NEW]);
      });
    });

    describe('audit', () => {
      it('writes the events given with each change, and lists them newest first with filters', async () => {
        await storage.secrets.append(vault.id, 'p', () => fields('x'), (v) => [event('secret.write', { details: { version: v.version } })]);
        await storage.secrets.setDisabled(vault.id, 'p', 1, true, [event('secret.disable', { actorId: 'agent-1', actorType: 'agent' })]);
        await storage.appendAudit([event('secret.read', { resourceId: 'other', createdAt: new Date('2026-03-05T00:00:00Z') })]);
        const all = await storage.audit.list({ limit: 10, offset: 0 });
        expect(all.map((e) => e.action)).toEqual(['secret.read', 'secret.disable', 'secret.write']);
        expect(all[2]).toMatchObject({ details: { version: 1 }, requestId: 'req-1', vaultId: vault.id, outcome: 'success', createdAt: new Date('2026-03-04T05:06:07.089Z') });
        expect((await storage.audit.list({ action: 'secret.disable', limit: 10, offset: 0 })).map((e) => e.actorId)).toEqual(['agent-1']);
        expect((await storage.audit.list({ actorId: 'agent-1', limit: 10, offset: 0 })).map((e) => e.action)).toEqual(['secret.disable']);
        expect((await storage.audit.list({ resourceId: 'other', limit: 10, offset: 0 })).map((e) => e.action)).toEqual(['secret.read']);
        expect((await storage.audit.list({ from: new Date('2026-03-05T00:00:00Z'), limit: 10, offset: 0 })).map((e) => e.action)).toEqual(['secret.read']);
        expect((await storage.audit.list({ to: new Date('2026-03-05T00:00:00Z'), limit: 10, offset: 0 })).map((e) => e.action)).toEqual(['secret.disable', 'secret.write']);
        expect((await storage.audit.list({ limit: 1, offset: 1 })).map((e) => e.action)).toEqual(['secret.disable']);
      });

      it('writes no event when the change fails', async () => {
        await expect(storage.secrets.append(vault.id, 'p', () => { throw new Error('no'); }, () => [event('secret.write')])).rejects.toThrow();
        expect(await storage.audit.list({ limit: 10, offset: 0 })).toEqual([]);
      });

      it('seals pending events into one chain, in order, each linked to the previous hash', async () => {
        await storage.appendAudit([event('a'), event('b')]);
        expect(await storage.audit.head()).toBeNull();
        const seen: Array<[string, string, number]> = [];
        const link = (previous: string, e: AuditRecord, index: number) => {
          seen.push([previous, e.action, index]);
          return { hash: `h${index}`, keyId: 'k1' };
        };
        expect(await storage.audit.seal(link, 100)).toBe(2);
        await storage.appendAudit([event('c')]);
        expect(await storage.audit.seal(link, 100)).toBe(1);
        expect(await storage.audit.seal(link, 100)).toBe(0);
        expect(seen).toEqual([['', 'a', 1], ['h1', 'b', 2], ['h2', 'c', 3]]);
        const chain = await storage.audit.readChain(0, 10);
        expect(chain.map((e) => [e.action, e.chainIndex, e.hash, e.keyId])).toEqual([['a', 1, 'h1', 'k1'], ['b', 2, 'h2', 'k1'], ['c', 3, 'h3', 'k1']]);
        expect((await storage.audit.readChain(2, 10)).map((e) => e.action)).toEqual(['c']);
        expect(await storage.audit.head()).toEqual({ chainIndex: 3, hash: 'h3', eventId: chain[2]!.id });
        const listed = await storage.audit.list({ limit: 10, offset: 0 });
        expect(listed[0]).toMatchObject({ action: 'c', chainIndex: 3, hash: 'h3' });
      });

      it('reports when the oldest event still waiting for a link was written', async () => {
        expect((await storage.stats()).oldestUnsealedAuditAt).toBeNull();
        await storage.appendAudit([event('a', { createdAt: new Date('2026-03-04T05:06:07.089Z') })]);
        await storage.appendAudit([event('b', { createdAt: new Date('2026-03-04T06:00:00.000Z') })]);
        expect((await storage.stats()).oldestUnsealedAuditAt).toEqual(new Date('2026-03-04T05:06:07.089Z'));
        await storage.audit.seal((_p, _e, i) => ({ hash: `h${i}`, keyId: 'k' }), 1);
        expect((await storage.stats()).oldestUnsealedAuditAt).toEqual(new Date('2026-03-04T06:00:00.000Z'));
        await storage.audit.seal((_p, _e, i) => ({ hash: `h${i}`, keyId: 'k' }), 10);
        expect((await storage.stats()).oldestUnsealedAuditAt).toBeNull();
      });

      it('seals at most the given number of events per call', async () => {
        await storage.appendAudit([event('a'), event('b'), event('c')]);
        const link = (_p: string, _e: AuditRecord, i: number) => ({ hash: `h${i}`, keyId: 'k' });
        expect(await storage.audit.seal(link, 2)).toBe(2);
        expect(await storage.audit.seal(link, 2)).toBe(1);
      });

      it('gives concurrent sealers one gapless chain', async () => {
        await storage.appendAudit(Array.from({ length: 30 }, (_, i) => event(`e${i}`)));
        const link = (previous: string, e: AuditRecord, i: number) => ({ hash: `${i}:${e.action}<-${previous.split(':')[0]}`, keyId: 'k' });
        await Promise.all(Array.from({ length: 4 }, () => storage.audit.seal(link, 10)));
        while ((await storage.audit.seal(link, 10)) > 0);
        const chain = await storage.audit.readChain(0, 100);
        expect(chain.map((e) => e.chainIndex)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
        chain.forEach((e, i) => expect(e.hash).toBe(`${i + 1}:${e.action}<-${i === 0 ? '' : i}`));
      });
    });

    describe('leases', () => {
      const link = (_p: string, _e: AuditRecord, i: number) => ({ hash: `h${i}`, keyId: 'k' });
      /** Polls until `holder` gets the lease (the other's expires by the store's clock); bounded. */
      const acquireWhenFree = async (name: string, holder: string, ttlMs: number) => {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const lease = await storage.leases.acquire(name, holder, ttlMs);
          if (lease) return lease;
          if (Date.now() > deadline) throw new Error(`lease ${name} never came free`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };

      it('grants a free lease, renews it for its holder with the same fencing number, and refuses others', async () => {
        const before = Date.now();
        const first = await storage.leases.acquire('job', 'a', 30_000);
        expect(first).toMatchObject({ name: 'job', holder: 'a', fencing: 1 });
        expect(first!.validUntil).toBeGreaterThanOrEqual(before + 30_000);
        expect(await storage.leases.acquire('job', 'b', 30_000)).toBeNull();
        expect(await storage.leases.acquire('job', 'a', 30_000)).toMatchObject({ holder: 'a', fencing: 1 });
        // Names are independent.
        expect(await storage.leases.acquire('other-job', 'b', 30_000)).toMatchObject({ holder: 'b', fencing: 1 });
      });

      it('passes an expired lease to the next holder with a higher fencing number, and refuses the stale holder', async () => {
        const old = (await storage.leases.acquire('sealer', 'a', 200))!;
        const taken = await acquireWhenFree('sealer', 'b', 30_000);
        expect(taken.fencing).toBeGreaterThan(old.fencing);
        expect(await storage.leases.acquire('sealer', 'a', 30_000)).toBeNull();
        // A write fenced by the stale lease is refused and writes nothing; the current one's works.
        await storage.appendAudit([event('a')]);
        await expect(storage.audit.seal(link, 10, old)).rejects.toBeInstanceOf(LeaseLostError);
        expect(await storage.audit.head()).toBeNull();
        expect(await storage.audit.seal(link, 10, taken)).toBe(1);
        // Releasing a stale lease does not free the current holder's.
        await storage.leases.release(old);
        expect(await storage.leases.acquire('sealer', 'a', 30_000)).toBeNull();
      });

      it('lets another holder claim a released lease at once, and refuses writes fenced by it', async () => {
        const lease = (await storage.leases.acquire('job', 'a', 60_000))!;
        await storage.leases.release(lease);
        await storage.appendAudit([event('a')]);
        await expect(storage.audit.seal(link, 10, lease)).rejects.toBeInstanceOf(LeaseLostError);
        const next = await storage.leases.acquire('job', 'b', 60_000);
        expect(next?.fencing).toBe(lease.fencing + 1);
      });

      it('grants a contended lease to exactly one of many concurrent claimants', async () => {
        const claims = await Promise.all(Array.from({ length: 12 }, (_, i) => storage.leases.acquire('contended', `holder-${i}`, 30_000)));
        const granted = claims.filter((c) => c !== null);
        expect(granted).toHaveLength(1);
        expect(granted[0]!.fencing).toBe(1);
      });

      it('refuses a name, holder or TTL it cannot keep as given', async () => {
        await expect(storage.leases.acquire('', 'a', 1000)).rejects.toThrow(/lease name/);
        await expect(storage.leases.acquire('x'.repeat(65), 'a', 1000)).rejects.toThrow(/lease name/);
        await expect(storage.leases.acquire('job', 'h'.repeat(256), 1000)).rejects.toThrow(/lease holder/);
        await expect(storage.leases.acquire('job', 'a', 0)).rejects.toThrow(/TTL/);
        await expect(storage.leases.acquire('job', 'a', 1.5)).rejects.toThrow(/TTL/);
      });
    });

    describe('agents', () => {
      const agent = (extra: Partial<AgentRecord> = {}): AgentRecord => ({
        id: randomUUID(),
        name: 'ci-bot',
        description: 'builds',
        scopes: ['ci', 'deploy'],
        isActive: true,
        tokenTtlSeconds: 900,
        createdBy: 'root',
        createdAt: new Date('2026-01-01T00:00:00.123Z'),
        expiresAt: new Date('2027-01-01T00:00:00Z'),
        lastActiveAt: null,
        keyHash: Uint8Array.from(randomBytes(32)),
        credentialGeneration: 1,
        ...extra,
      });

      it('creates, finds by id and by key hash, lists oldest first', async () => {
        const first = agent();
        const second = agent({ createdAt: new Date('2026-01-02T00:00:00Z'), expiresAt: null, scopes: [] });
        await storage.agents.create(first, [event('agent.create')]);
        await storage.agents.create(second, []);
        expect(await storage.agents.get(first.id)).toEqual(first);
        expect(await storage.agents.getByKeyHash(second.keyHash)).toEqual(second);
        expect(await storage.agents.getByKeyHash(new Uint8Array(32))).toBeNull();
        expect(await storage.agents.get(randomUUID())).toBeNull();
        expect((await storage.agents.list()).map((a) => a.id)).toEqual([first.id, second.id]);
      });

      it('updates only the given fields and bumps the generation when activation changes', async () => {
        const a = agent();
        await storage.agents.create(a, []);
        const renamed = await storage.agents.update(a.id, { name: 'renamed', tokenTtlSeconds: 60 }, []);
        expect(renamed).toMatchObject({ name: 'renamed', description: 'builds', tokenTtlSeconds: 60, isActive: true, credentialGeneration: 1 });
        const off = await storage.agents.update(a.id, { isActive: false }, []);
        expect(off).toMatchObject({ isActive: false, credentialGeneration: 2 });
        expect(await storage.agents.update(randomUUID(), { name: 'x' }, [])).toBeNull();
      });

      it('rotates the key: the old hash no longer finds the agent and the generation moves on', async () => {
        const a = agent();
        await storage.agents.create(a, []);
        const newHash = Uint8Array.from(randomBytes(32));
        expect(await storage.agents.rotateKey(a.id, newHash, [])).toMatchObject({ credentialGeneration: 2 });
        expect(await storage.agents.getByKeyHash(a.keyHash)).toBeNull();
        expect((await storage.agents.getByKeyHash(newHash))?.id).toBe(a.id);
        expect(await storage.agents.rotateKey(randomUUID(), newHash, [])).toBeNull();
      });

      it('records the last activity and deletes an agent with its policies', async () => {
        const a = agent();
        await storage.agents.create(a, []);
        await storage.agents.touch(a.id, new Date('2026-02-02T02:02:02.222Z'));
        expect((await storage.agents.get(a.id))?.lastActiveAt).toEqual(new Date('2026-02-02T02:02:02.222Z'));
        await storage.policies.create(policy({ principalId: a.id }), []);
        expect(await storage.agents.delete(a.id, [])).toBe(true);
        expect(await storage.agents.get(a.id)).toBeNull();
        expect(await storage.policies.listFor(vault.id, a.id)).toEqual([]);
        expect(await storage.agents.delete(a.id, [])).toBe(false);
      });

      const policy = (extra: Partial<PolicyRecord> = {}): PolicyRecord => ({
        id: randomUUID(),
        vaultId: vault.id,
        secretPathPattern: 'api-keys/**',
        principalType: 'agent',
        principalId: randomUUID(),
        permissions: ['read', 'rotate'],
        conditions: { ip: ['10.0.0.0/8'] },
        expiresAt: null,
        createdBy: 'root',
        createdByType: 'root',
        createdAt: new Date('2026-01-01T00:00:00Z'),
        effect: 'allow',
        priority: 0,
        ...extra,
      });

      describe('policies', () => {
        it('creates, lists per vault and per principal, updates and deletes', async () => {
          const a = agent();
          await storage.agents.create(a, []);
          const p1 = policy({ principalId: a.id });
          const p2 = policy({ createdAt: new Date('2026-01-02T00:00:00Z'), effect: 'deny', priority: 5, expiresAt: new Date('2030-01-01T00:00:00Z'), conditions: null });
          await storage.policies.create(p1, [event('policy.create')]);
          await storage.policies.create(p2, []);
          expect(await storage.policies.list(vault.id)).toEqual([p1, p2]);
          expect(await storage.policies.listFor(vault.id, a.id)).toEqual([p1]);
          const other = newVault('other');
          await storage.vaults.create(other, []);
          expect(await storage.policies.list(other.id)).toEqual([]);
          const updated = await storage.policies.update(vault.id, p1.id, { permissions: ['write'], priority: 3 }, []);
          expect(updated).toEqual({ ...p1, permissions: ['write'], priority: 3 });
          expect(await storage.policies.update(other.id, p1.id, { priority: 1 }, [])).toBeNull();
          expect(await storage.policies.delete(other.id, p1.id, [])).toBe(false);
          expect(await storage.policies.delete(vault.id, p1.id, [])).toBe(true);
          expect(await storage.policies.list(vault.id)).toEqual([p2]);
        });

        it('bumps the named agent\'s credential generation on every policy change', async () => {
          const a = agent();
          await storage.agents.create(a, []);
          const p = policy({ principalId: a.id });
          await storage.policies.create(p, []);
          expect((await storage.agents.get(a.id))?.credentialGeneration).toBe(2);
          await storage.policies.update(vault.id, p.id, { priority: 1 }, []);
          expect((await storage.agents.get(a.id))?.credentialGeneration).toBe(3);
          await storage.policies.delete(vault.id, p.id, []);
          expect((await storage.agents.get(a.id))?.credentialGeneration).toBe(4);
        });

        it('removes a vault\'s policies with the vault', async () => {
          await storage.policies.create(policy(), []);
          await storage.vaults.delete(vault.id, []);
          expect(await storage.policies.list(vault.id)).toEqual([]);
        });
      });

      describe('keyset pages', () => {
        /** Walks a list page by page with the storage's own keyset parameter. */
        async function walk<T, K>(fetch: (after: K | undefined) => Promise<T[]>, keyOf: (row: T) => K): Promise<T[][]> {
          const pages: T[][] = [];
          let after: K | undefined;
          for (;;) {
            const page = await fetch(after);
            if (page.length === 0) return pages;
            pages.push(page);
            after = keyOf(page[page.length - 1]!);
          }
        }
        const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second));

        it('pages vaults, agents and policies by (created_at, id), ties broken by id bytes', async () => {
          const vaults = [vault];
          for (let i = 0; i < 5; i++) vaults.push({ ...newVault(`v${i}`), createdAt: i < 3 ? at(1) : at(2) });
          for (const v of vaults.slice(1)) await storage.vaults.create(v, []);
          const order = (rows: Array<{ createdAt: Date; id: string }>) =>
            [...rows].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id))).map((r) => r.id);
          const vaultPages = await walk((after?: CreatedPosition) => storage.vaults.list({ after, limit: 2 }), (v) => ({ createdAt: v.createdAt, id: v.id }));
          expect(vaultPages.map((p) => p.length)).toEqual([2, 2, 2]);
          expect(vaultPages.flat().map((v) => v.id)).toEqual(order(vaults));
          expect(vaultPages.flat()).toEqual(await storage.vaults.list());

          const agents = Array.from({ length: 5 }, (_, i) => agent({ createdAt: i < 3 ? at(1) : at(2) }));
          for (const a of agents) await storage.agents.create(a, []);
          const agentPages = await walk((after?: CreatedPosition) => storage.agents.list({ after, limit: 2 }), (a) => ({ createdAt: a.createdAt, id: a.id }));
          expect(agentPages.flat().map((a) => a.id)).toEqual(order(agents));

          const policies = Array.from({ length: 5 }, (_, i) => policy({ principalId: agents[0]!.id, createdAt: i < 3 ? at(1) : at(2) }));
          for (const p of policies) await storage.policies.create(p, []);
          const policyPages = await walk((after?: CreatedPosition) => storage.policies.list(vault.id, { after, limit: 3 }), (p) => ({ createdAt: p.createdAt, id: p.id }));
          expect(policyPages.map((p) => p.length)).toEqual([3, 2]);
          expect(policyPages.flat().map((p) => p.id)).toEqual(order(policies));
        });

        it('pages the newest versions of paths by path bytes, within a prefix, and versions newest first', async () => {
          const paths = ['a/1', 'a/10', 'a/2', 'a/Z', 'a/z', 'b/1'];
          for (const path of paths) await put(path, 'x');
          for (let i = 0; i < 4; i++) await put('a/2', 'again');
          const latest = await walk((after?: string) => storage.secrets.listLatest(vault.id, 'a/', { after, limit: 2 }), (v) => v.path);
          expect(latest.map((p) => p.map((v) => v.path))).toEqual([['a/1', 'a/10'], ['a/2', 'a/Z'], ['a/z']]);
          expect(latest.flat().find((v) => v.path === 'a/2')?.version).toBe(5);
          const versions = await walk((after?: number) => storage.secrets.listVersions(vault.id, 'a/2', { after, limit: 2 }), (v) => v.version);
          expect(versions.map((p) => p.map((v) => v.version))).toEqual([[5, 4], [3, 2], [1]]);
          // A page after a path that no longer exists still starts at the next one.
          await storage.secrets.delete(vault.id, 'a/2', []);
          expect((await storage.secrets.listLatest(vault.id, 'a/', { after: 'a/10', limit: 10 })).map((v) => v.path)).toEqual(['a/Z', 'a/z']);
        });

        it('pages audit events newest first by seq', async () => {
          await storage.appendAudit([event('a'), event('b'), event('c'), event('d'), event('e')]);
          const pages = await walk((before?: number) => storage.audit.list({ limit: 2, offset: 0, beforeSeq: before }), (e) => e.seq);
          expect(pages.map((p) => p.map((e) => e.action))).toEqual([['e', 'd'], ['c', 'b'], ['a']]);
          const seqs = pages.flat().map((e) => e.seq);
          expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
        });
      });
    });
  });
}
