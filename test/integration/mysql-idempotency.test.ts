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
    let fail: (() => void) | undefined;
    const first = storage.idempotency.run(claim, async () => {
      await append('handover');
      await new Promise<void>((resolve) => (fail = resolve));
      throw new Error('first call failed');
    });
    const firstFailed = expect(first).rejects.toThrow(/first call failed/);
    await until(async () => fail !== undefined, 'the first call to hold its claim');
    const second = storage.idempotency.run(claim, async () => {
      await append('handover');
      return Buffer.from('second');
    });
    await until(() => claimInsertRunning(database.url), 'the repeat to wait on the claim row');
    fail!();
    await firstFailed;
    expect(await second).toEqual({ replayed: false, response: Buffer.from('second') });
    expect(await versions('handover')).toEqual([1]);
  });

  it('shows a write inside a call what other writers committed before it took the path, as a write of its own would see', async () => {
    await append('snapshot');
    // Started outside the call, so it runs on a transaction of its own when let go.
    let letGo!: () => void;
    const other = (async () => {
      await new Promise<void>((resolve) => (letGo = resolve));
      return append('snapshot');
    })();
    let previousSeen: number | undefined;
    await storage.idempotency.run(claimOf(), async () => {
      // A read first (as an access check does), then another writer commits version 2.
      await storage.secrets.lookup(vaultId, 'snapshot', { kind: 'latest' });
      letGo();
      expect((await other).version).toBe(2);
      const created = await storage.secrets.append(
        vaultId,
        'snapshot',
        ({ version, previous }) => {
          previousSeen = previous?.version;
          return { id: randomUUID(), type: 'generic', metadata: null, ciphertext: Buffer.from(`v${version}`), createdBy: 'root', createdAt: new Date(), expiresAt: null, maxAccessCount: 0 };
        },
        () => [],
      );
      expect(created.version).toBe(3);
      return Buffer.from('done');
    });
    expect(previousSeen).toBe(2);
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

/** Polls `condition` every 10 ms until it holds, for at most 5 s. */
async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what} after 5 s`);
}

/** True while a connection runs the claim INSERT: with the first call holding the row, that one waits for it. */
async function claimInsertRunning(url: string): Promise<boolean> {
  const connection = await createConnection(url);
  try {
    const [rows] = await connection.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE info LIKE 'INSERT INTO idempotency_keys%'");
    return Number((rows as Array<{ n: number }>)[0]!.n) > 0;
  } finally {
    await connection.end();
  }
}
