// Overload and abandoned calls fail fast, health answers regardless, and clearly instead of queueing: the pool's bounded queue
// and acquire timeout, and the client's deadline and cancellation carried down to the database.
import { randomUUID } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import { galeraState } from '../../src/storage/mysql/node-health.js';
import { CallCancelledError, CallDeadlineExceededError, parseGrpcTimeout, runWithCallLimits } from '../../src/storage/call-deadline.js';
import { parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';
import { openPool, type Pool, type PoolLimits } from '../../src/storage/mysql/pool.js';
import { DEFAULT_RETRY, inTransaction, withConnection, type Database } from '../../src/storage/mysql/transaction.js';
import { StorageBusyError, StorageOverloadedError } from '../../src/storage/storage-errors.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

describe('parseGrpcTimeout', () => {
  it.each([
    ['2S', 2000],
    ['150m', 150],
    ['1M', 60_000],
    ['1H', 3_600_000],
    ['5000u', 5],
  ])('reads %s as %i ms from now', (value, ms) => {
    expect(parseGrpcTimeout(value, 1000)).toBe(1000 + ms);
  });
  it.each([undefined, '', '2', 'S', '-1S', '123456789S', '2 seconds'])('ignores %j', (value) => {
    expect(parseGrpcTimeout(value, 1000)).toBeUndefined();
  });
});

describeWithDatabase('call limits on MySQL', () => {
  let database: TestDatabase;
  const pools: Pool[] = [];
  beforeAll(async () => {
    database = (await createTestDatabase())!;
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await database?.drop();
  });

  const dbWith = (poolSize: number, poolLimits: PoolLimits): Database => {
    const pool = openPool(parseDatabaseUrl(database.url), poolSize, poolLimits);
    pools.push(pool);
    return { pool, poolLimits, logger: { warn() {} }, retry: DEFAULT_RETRY };
  };

  /** Holds every connection of `db`'s pool until the returned function is called. */
  async function holdPool(db: Database, size: number) {
    const connections = await Promise.all(Array.from({ length: size }, () => db.pool.getConnection()));
    return () => connections.forEach((c) => c.release());
  }

  it('refuses a call at once when the queue of waiting calls is full', async () => {
    const db = dbWith(1, { queueLimit: 1, acquireTimeoutMs: 60_000 });
    const release = await holdPool(db, 1);
    const waiting = withConnection(db, (sql) => sql.select('SELECT 1 AS one'));
    await expect(withConnection(db, (sql) => sql.select('SELECT 2'))).rejects.toBeInstanceOf(StorageOverloadedError);
    release();
    // The call that fitted in the queue still gets its connection and its answer.
    await expect(waiting).resolves.toEqual([{ one: 1 }]);
  });

  it('gives up waiting for a connection after the acquire timeout, and the late connection is not leaked', async () => {
    const db = dbWith(1, { queueLimit: 10, acquireTimeoutMs: 30 });
    const release = await holdPool(db, 1);
    await expect(withConnection(db, (sql) => sql.select('SELECT 1'))).rejects.toBeInstanceOf(StorageBusyError);
    release();
    await expect(withConnection(db, (sql) => sql.select('SELECT 3 AS three'))).resolves.toEqual([{ three: 3 }]);
  });

  it('never sends the work of a call whose deadline has passed', async () => {
    const db = dbWith(2, { queueLimit: 10, acquireTimeoutMs: 5000 });
    let ran = false;
    const call = runWithCallLimits({ deadline: Date.now() - 1 }, () =>
      inTransaction(db, async (sql) => {
        ran = true;
        return sql.select('SELECT 1');
      }),
    );
    await expect(call).rejects.toBeInstanceOf(CallDeadlineExceededError);
    expect(ran).toBe(false);
  });

  it('never sends the work of a call its client cancelled', async () => {
    const db = dbWith(2, { queueLimit: 10, acquireTimeoutMs: 5000 });
    let ran = false;
    const call = runWithCallLimits({ cancelled: () => true }, () =>
      withConnection(db, async (sql) => {
        ran = true;
        return sql.select('SELECT 1');
      }),
    );
    await expect(call).rejects.toBeInstanceOf(CallCancelledError);
    expect(ran).toBe(false);
  });

  it('waits for a connection no longer than the call deadline', async () => {
    const db = dbWith(1, { queueLimit: 10, acquireTimeoutMs: 600_000 });
    const release = await holdPool(db, 1);
    const call = runWithCallLimits({ deadline: Date.now() + 30 }, () => withConnection(db, (sql) => sql.select('SELECT 1')));
    await expect(call).rejects.toBeInstanceOf(StorageBusyError);
    release();
  });
});

describeWithDatabase('call limits over the transports', () => {
  let t: TestApp;
  beforeAll(async () => {
    const database = (await createTestDatabase())!;
    t = await startTestApp({ VAULT_DATABASE_URL: database.url });
  });
  afterAll(async () => t?.close());

  it('answers 504 DEADLINE_EXCEEDED over HTTP for a Grpc-Timeout that has already run out', async () => {
    const res = await t.http('GET', '/v1/vaults?page_size=10', { headers: { 'Grpc-Timeout': '1n' } });
    expect(res.status).toBe(504);
    expect(res.json.code).toBe(4);
    expect(res.json.message).toMatch(/deadline/);
    // A generous one serves as usual.
    expect((await t.http('GET', '/v1/vaults?page_size=10', { headers: { 'Grpc-Timeout': '30S' } })).status).toBe(200);
  });
});

describe('galeraState', () => {
  const state = (ready: string, local: string, component = 'Primary') =>
    galeraState(new Map([['wsrep_ready', ready], ['wsrep_local_state_comment', local], ['wsrep_cluster_status', component]]));
  it('is healthy only when ready, Synced and in the Primary component', () => {
    expect(state('ON', 'Synced')).toMatchObject({ healthy: true, ready: true });
  });
  it('serves but is not healthy while a donor', () => {
    expect(state('ON', 'Donor/Desynced')).toMatchObject({ healthy: false, ready: true });
  });
  it.each([
    ['joining', 'OFF', 'Joining', 'Primary'],
    ['cut off from the primary component', 'ON', 'Synced', 'non-Primary'],
  ])('refuses work while %s', (_why, ready, local, component) => {
    const s = state(ready, local, component);
    expect(s).toMatchObject({ healthy: false, ready: false });
    expect(s.detail).toContain(local);
  });
});

describeWithDatabase('health on a saturated pool', () => {
  it('answers while every pool connection is stuck waiting for a lock', async () => {
    const database = (await createTestDatabase())!;
    const storage = await createMysqlStorage({ url: database.url, poolSize: 1 });
    const admin = await createConnection(database.url);
    try {
      const vaultId = randomUUID();
      await storage.vaults.create({ id: vaultId, name: 'sat', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date() }, []);
      // Hold the vault row's lock so the one pooled connection blocks in the write below.
      await admin.query('BEGIN');
      await admin.query('SELECT * FROM vaults FOR UPDATE');
      const stuck = storage.vaults.delete(vaultId, []).catch((e: unknown) => e);
      // The pool's only connection is inside the DELETE, waiting for the lock.
      const blockedInDelete = async () => {
        const [rows] = await admin.query<import('mysql2').RowDataPacket[]>(
          "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE info LIKE 'DELETE FROM vaults%'",
        );
        return Number(rows[0]?.n);
      };
      await expect.poll(blockedInDelete, { timeout: 10_000 }).toBe(1);
      await expect(storage.ping()).resolves.toBeUndefined();
      await admin.query('ROLLBACK');
      await stuck;
    } finally {
      await admin.end();
      await storage.close();
      await database.drop();
    }
  });
});

describe('call limits in dev mode (memory storage)', () => {
  it('answers 504 for a Grpc-Timeout that has already run out, as on MySQL', async () => {
    const t = await startTestApp();
    try {
      const res = await t.http('GET', '/v1/vaults?page_size=10', { headers: { 'Grpc-Timeout': '1n' } });
      expect(res.status).toBe(504);
      expect(res.json.message).toMatch(/deadline/);
    } finally {
      await t.close();
    }
  });
});
