import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppendOptions, AuditRecord, Storage, VaultRecord } from '../../src/storage/storage.js';

/**
 * The storage contract for staged rotation (current / previous / pending and promotion), run
 * against every Storage implementation like storage-contract.ts.
 */
export function stagedRotationContract(name: string, open: () => Promise<{ storage: Storage; close(): Promise<void> } | null>) {
  describe(`staged rotation contract: ${name}`, () => {
    let storage: Storage;
    let close: () => Promise<void>;
    let vault: VaultRecord;

    beforeEach(async (context) => {
      const opened = await open();
      if (!opened) return context.skip();
      ({ storage, close } = opened);
      vault = { id: randomUUID(), name: 'v', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date('2026-01-01T00:00:00Z') };
      await storage.vaults.create(vault, []);
    });
    afterEach(async () => {
      await close?.();
    });

    const put = (path: string, value: string, stage?: AppendOptions['stage']) =>
      storage.secrets.append(
        vault.id,
        path,
        () => ({
          id: randomUUID(),
          type: 'generic',
          metadata: null,
          ciphertext: Buffer.from(value),
          createdBy: 'root',
          createdAt: new Date('2026-01-02T03:04:05.678Z'),
          expiresAt: null,
          maxAccessCount: 0,
        }),
        () => [],
        stage ? { stage } : {},
      );
    const stages = async (path: string) => (await storage.secrets.listVersions(vault.id, path)).map((v) => [v.version, v.stage]);
    const latest = async (path: string) => (await storage.secrets.lookup(vault.id, path, { kind: 'latest' })).version?.version ?? null;
    const inStage = async (path: string, stage: 'current' | 'previous' | 'pending') =>
      (await storage.secrets.lookup(vault.id, path, { kind: 'stage', stage })).version?.version ?? null;
    const audit = (action: string): AuditRecord => ({
      id: randomUUID(),
      action,
      actorType: 'root',
      actorId: 'root',
      resourceType: 'secret',
      resourceId: 'p',
      vaultId: vault.id,
      outcome: 'success',
      details: null,
      requestId: 'r',
      createdAt: new Date('2026-01-02T03:04:05.678Z'),
    });
    const recorded = async (action: string) => (await storage.audit.list({ action, limit: 100, offset: 0 })).length;

    it('makes each plain write current, the one before previous, and the older one stage-less', async () => {
      expect((await put('p', 'one')).stage).toBe('current');
      await put('p', 'two');
      await put('p', 'three');
      expect(await stages('p')).toEqual([[3, 'current'], [2, 'previous'], [1, null]]);
      expect(await latest('p')).toBe(3);
      expect(await inStage('p', 'previous')).toBe(2);
    });

    it('keeps a pending version out of latest, readable by stage, and replaces an older pending one', async () => {
      await put('p', 'one');
      expect((await put('p', 'two', 'pending')).stage).toBe('pending');
      expect(await latest('p')).toBe(1);
      expect(await inStage('p', 'pending')).toBe(2);
      expect(await inStage('p', 'current')).toBe(1);
      await put('p', 'three', 'pending');
      expect(await stages('p')).toEqual([[3, 'pending'], [2, null], [1, 'current']]);
      expect(await latest('p')).toBe(1);
      // A plain write in between becomes current and leaves the pending version pending.
      await put('p', 'four');
      expect(await stages('p')).toEqual([[4, 'current'], [3, 'pending'], [2, null], [1, 'previous']]);
    });

    it('promotes pending to current, the old current to previous, and rolls back by promoting previous', async () => {
      await put('p', 'one');
      await put('p', 'two');
      await put('p', 'three', 'pending');
      const promoted = await storage.secrets.promote(vault.id, 'p', 3, ({ replaced }) => [{ ...audit('secret.promote'), details: { replaced } }]);
      expect(promoted).toMatchObject({ kind: 'promoted', replaced: 2, version: { version: 3, stage: 'current' } });
      expect(await stages('p')).toEqual([[3, 'current'], [2, 'previous'], [1, null]]);
      expect(await latest('p')).toBe(3);
      expect(await inStage('p', 'pending')).toBeNull();

      const rollback = await storage.secrets.promote(vault.id, 'p', 2, () => [audit('secret.promote')]);
      expect(rollback).toMatchObject({ kind: 'promoted', replaced: 3 });
      expect(await stages('p')).toEqual([[3, 'previous'], [2, 'current'], [1, null]]);
      expect(await latest('p')).toBe(2);
      expect(await recorded('secret.promote')).toBe(2);
    });

    it('promotes a stage-less older version, and leaves a current one unchanged without recording', async () => {
      await put('p', 'one');
      await put('p', 'two');
      await put('p', 'three');
      expect(await storage.secrets.promote(vault.id, 'p', 1, () => [audit('secret.promote')])).toMatchObject({ kind: 'promoted', replaced: 3 });
      expect(await stages('p')).toEqual([[3, 'previous'], [2, null], [1, 'current']]);
      expect(await storage.secrets.promote(vault.id, 'p', 1, () => [audit('secret.promote')])).toMatchObject({ kind: 'unchanged' });
      expect(await recorded('secret.promote')).toBe(1);
    });

    it('refuses to promote a disabled, unknown or deleted version, changing nothing', async () => {
      await put('p', 'one');
      await put('p', 'two', 'pending');
      await storage.secrets.setDisabled(vault.id, 'p', 2, true, []);
      expect(await storage.secrets.promote(vault.id, 'p', 2, () => [audit('secret.promote')])).toEqual({ kind: 'disabled' });
      expect(await storage.secrets.promote(vault.id, 'p', 9, () => [audit('secret.promote')])).toEqual({ kind: 'missing' });
      expect(await storage.secrets.promote(vault.id, 'nope', 1, () => [audit('secret.promote')])).toEqual({ kind: 'missing' });
      expect(await stages('p')).toEqual([[2, 'pending'], [1, 'current']]);
      await storage.secrets.delete(vault.id, 'p', []);
      expect(await storage.secrets.promote(vault.id, 'p', 1, () => [audit('secret.promote')])).toEqual({ kind: 'missing' });
      expect(await recorded('secret.promote')).toBe(0);
    });

    it('falls back from a disabled current version to the newest readable one that is not pending', async () => {
      await put('p', 'one');
      await put('p', 'two');
      await put('p', 'three', 'pending');
      await storage.secrets.setDisabled(vault.id, 'p', 2, true, []);
      expect(await latest('p')).toBe(1);
      await storage.secrets.setDisabled(vault.id, 'p', 1, true, []);
      expect(await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).toMatchObject({ exists: true, version: null });
    });

    it('clears stages on delete; the next write after a delete is current alone', async () => {
      await put('p', 'one');
      await put('p', 'two', 'pending');
      await storage.secrets.delete(vault.id, 'p', []);
      expect(await inStage('p', 'current')).toBeNull();
      expect(await inStage('p', 'pending')).toBeNull();
      await put('p', 'three');
      expect(await stages('p')).toEqual([[3, 'current']]);
    });

    it('lets exactly one of many concurrent scheduled rotations claim a due time', async () => {
      const dueAt = new Date('2026-01-02T03:04:05.678Z');
      const policy = { intervalSeconds: 60, length: 32, charset: 'hex', stage: 'current' as const };
      await storage.secrets.append(
        vault.id,
        'p',
        () => ({ id: randomUUID(), type: 'generic', metadata: null, ciphertext: Buffer.from('x'), createdBy: 'root', createdAt: dueAt, expiresAt: null, maxAccessCount: 0, schedule: { policy, nextRotationAt: dueAt } }),
        () => [],
      );
      expect(await storage.secrets.dueRotations(new Date(dueAt.getTime() - 1), 10)).toEqual([]);
      expect(await storage.secrets.dueRotations(dueAt, 10)).toEqual([{ vaultId: vault.id, path: 'p', dueAt, policy }]);
      const nextAt = new Date(dueAt.getTime() + 60_000);
      const results = await Promise.all(
        Array.from({ length: 12 }, () =>
          storage.secrets.rotateDue(
            { vaultId: vault.id, path: 'p', dueAt, nextAt, at: dueAt },
            () => ({ id: randomUUID(), type: 'generic', metadata: null, ciphertext: Buffer.from('y'), createdBy: 'system', createdAt: dueAt, expiresAt: null, maxAccessCount: 0 }),
            () => [audit('secret.rotate')],
          ),
        ),
      );
      expect(results.filter((r) => r !== null).map((r) => r!.version)).toEqual([2]);
      expect(await recorded('secret.rotate')).toBe(1);
      expect(await storage.secrets.schedule(vault.id, 'p')).toEqual({ policy, nextRotationAt: nextAt, lastRotatedAt: dueAt });
      expect(await storage.secrets.dueRotations(dueAt, 10)).toEqual([]);
    });

    it('keeps one version per stage under concurrent writes and promotions', async () => {
      await put('p', 'seed');
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          i % 3 === 0 ? put('p', `v${i}`, 'pending') : i % 3 === 1 ? put('p', `v${i}`) : storage.secrets.promote(vault.id, 'p', 1 + (i % 5), () => []),
        ),
      );
      const listed = await storage.secrets.listVersions(vault.id, 'p');
      for (const stage of ['current', 'previous', 'pending'] as const) {
        expect(listed.filter((v) => v.stage === stage).length).toBeLessThanOrEqual(1);
      }
      expect(listed.filter((v) => v.stage === 'current')).toHaveLength(1);
      expect(await latest('p')).toBe(listed.find((v) => v.stage === 'current')!.version);
    });
  });
}
