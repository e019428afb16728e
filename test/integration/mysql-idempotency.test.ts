// The MySQL idempotency store against a real server: the claim, the call's change and its answer
// commit together or not at all, and a repeat waiting on a claim that rolls back does the work itself.
import { randomBytes, randomUUID } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import type { AuditRecord, IdempotencyClaim, Storage } from '../../src/storage/storage.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

describeWithDatabase('MySQL idempotency store', () => {
  let database: TestDatabase;
  let storage: Storage;
  const vaultId = randomUUID();
  beforeAll(async () => {
    database = (await createTestDatabase())!;
    storage = await createMysqlStorage({ url: database.url });
    await storage.vaults.create({ id: vaultId, name: 'idem', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date() }, []);
  });
  afterAll(async () => {
    await storage?.close();
    await database?.drop();
  });

  const claimOf = (at = new Date()): IdempotencyClaim => ({ key: randomBytes(32), fingerprint: randomBytes(32), at, expiresAt: new Date(at.getTime() + 60_000) });
  const append = (path: string) =>
    storage.secrets.append(
      vaultId,
      path,
      ({ version }) => ({ id: randomUUID(), type: 'generic', metadata: null, ciphertext: Buffer.from(`v${version}`), createdBy: 'root', createdAt: new Date(), expiresAt: null, maxAccessCount: 0 }),
      () => [],
    );
  const versions = async (path: string) => (await storage.secrets.listVersions(vaultId, path)).map((v) => v.version);
  const denied = (path: string): AuditRecord => ({
    id: randomUUID(), action: 'secret.write', actorType: 'agent', actorId: 'a', resourceType: 'secret', resourceId: path, vaultId, outcome: 'denied', details: null, requestId: 'r', createdAt: new Date(),
  });

  it('rolls the change back with the claim when the call fails after changing something', async () => {
    const claim = claimOf();
    await expect(
      storage.idempotency.run(claim, async () => {
        await append('atomic');
        throw new Error('the call failed after its write');
      }),
    ).rejects.toThrow(/after its write/);
    expect(await versions('atomic')).toEqual([]);
    // The key is free: the same claim now runs and commits both.
    const outcome = await storage.idempotency.run(claim, async () => {
      await append('atomic');
      return Buffer.from('answer');
    });
    expect(outcome.replayed).toBe(false);
    expect(await versions('atomic')).toEqual([1]);
    expect(await storage.idempotency.run(claim, async () => expect.unreachable('ran twice'))).toEqual({ replayed: true, response: Uint8Array.from(Buffer.from('answer')) });
  });

  it('lets a repeat waiting on the claim do the work itself when the first rolls back', async () => {
    const claim = claimOf();
    let fail!: () => void;
    const first = storage.idempotency.run(claim, async () => {
      await append('handover');
      await new Promise<void>((resolve) => (fail = resolve));
      throw new Error('first call failed');
    });
    const firstFailed = expect(first).rejects.toThrow(/first call failed/);
    const second = storage.idempotency.run(claim, async () => {
      await append('handover');
      return Buffer.from('second');
    });
    await waitForLockWait(database.url);
    fail();
    await firstFailed;
    expect(await second).toEqual({ replayed: false, response: Buffer.from('second') });
    expect(await versions('handover')).toEqual([1]);
  });

  it('commits the audit of a successful call with it, and writes a failed call\'s refusal after the rollback', async () => {
    await expect(
      storage.idempotency.run(claimOf(), async () => {
        await storage.appendAudit([denied('refused/path')]);
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    const refusals = await storage.audit.list({ resourceId: 'refused/path', limit: 10, offset: 0 });
    expect(refusals.map((e) => e.outcome)).toEqual(['denied']);
  });
});

/** Resolves once some transaction waits for a row lock (the repeat on the claim row), within 5 s. */
async function waitForLockWait(url: string): Promise<void> {
  const connection = await createConnection(url);
  try {
    for (const until = Date.now() + 5000; Date.now() < until; ) {
      const [rows] = await connection.query("SELECT COUNT(*) AS waiting FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'");
      if (Number((rows as Array<{ waiting: number }>)[0]!.waiting) > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('no transaction started waiting on the claim within 5 s');
  } finally {
    await connection.end();
  }
}
