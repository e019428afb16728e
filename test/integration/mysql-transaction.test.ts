// The transaction runner, the pool's guards and the migration list, against a real server.
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';
import { checkOrder, MIGRATIONS } from '../../src/storage/mysql/migrations.js';
import { acquire, checkParams, DEFAULT_POOL_LIMITS, openPool, poolStats, sqlOn, type Pool } from '../../src/storage/mysql/pool.js';
import { failureKind, retryCause } from '../../src/storage/mysql/retryable-errors.js';
import { CommitOutcomeUnknownError, StorageContentionError, StorageUnavailableError } from '../../src/storage/storage-errors.js';
import {
  DEFAULT_RETRY,
  inTransaction,
  withConnection,
  type Database,
} from '../../src/storage/mysql/transaction.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

describe('failureKind', () => {
  const driverError = (fields: object) => Object.assign(new Error(String((fields as { message?: string }).message ?? 'x')), fields);
  it.each([
    ['deadlock (also a Galera certification failure)', { errno: 1213, code: 'ER_LOCK_DEADLOCK' }, 'conflict'],
    ['lock wait timeout', { errno: 1205 }, 'conflict'],
    ['Galera node not ready (an outage, not contention)', { errno: 1047, message: 'WSREP has not yet prepared node for application use' }, 'unready'],
    ['plain unknown command', { errno: 1047, message: 'Unknown command' }, 'other'],
    ['connection lost', { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }, 'connection'],
    ['reset', { code: 'ECONNRESET' }, 'connection'],
    ['broken pipe', { code: 'EPIPE' }, 'connection'],
    ['refused', { code: 'ECONNREFUSED' }, 'connection'],
    ['server shutdown', { errno: 1053 }, 'connection'],
    ['gone away', { errno: 2006 }, 'connection'],
    ['lost during query', { errno: 2013 }, 'connection'],
    ['MariaDB connection killed', { errno: 1927 }, 'connection'],
    ['closed connection', { message: 'Connection is closed.' }, 'connection'],
    ['command on closed connection', { message: "Can't add new command when connection is in closed state" }, 'connection'],
    ['duplicate key', { errno: 1062, code: 'ER_DUP_ENTRY' }, 'other'],
    ['caller error', {}, 'other'],
  ])('classifies %s', (_, fields, kind) => {
    expect(failureKind(driverError(fields))).toBe(kind);
  });

  it.each([
    [{ errno: 1213 }, 'deadlock'],
    [{ errno: 1205 }, 'lock_wait_timeout'],
    [{ errno: 1047, message: 'WSREP has not yet prepared node for application use' }, 'cluster_not_ready'],
    [{ code: 'PROTOCOL_CONNECTION_LOST' }, 'connection_lost'],
    [{ errno: 2013 }, 'connection_lost'],
  ])('names the retry cause of %o', (fields, cause) => {
    expect(retryCause(driverError(fields))).toBe(cause);
  });
});

describe('checkParams', () => {
  it('passes scalars through and sends byte arrays as Buffers', () => {
    const date = new Date();
    const bytes = Uint8Array.from([1, 2, 3]).subarray(1);
    const [s, n, b, z, d, u] = checkParams(['s', 1.5, true, null, date, bytes]);
    expect([s, n, b, z, d]).toEqual(['s', 1.5, true, null, date]);
    expect(Buffer.isBuffer(u) && [...u]).toEqual([2, 3]);
  });

  it.each([
    ['an object', { id: 'hunter2' }],
    ['an array', ['hunter2']],
    ['undefined', undefined],
    ['NaN', NaN],
    ['an invalid Date', new Date('nope')],
    ['a bigint', 10n],
  ])('refuses %s, without echoing it', (_, value) => {
    expect(() => checkParams(['ok', value])).toThrow(/SQL parameter 2 is/);
    try {
      checkParams(['ok', value]);
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});

describe('migration list', () => {
  it('numbers migrations 1, 2, 3, ... in order', () => {
    expect(() => checkOrder(MIGRATIONS)).not.toThrow();
    expect(() => checkOrder([...MIGRATIONS, { version: MIGRATIONS.length + 2, name: 'gap', statements: [], applied: async () => false }])).toThrow(/expected/);
  });
});

describeWithDatabase('mysql transactions', () => {
  let database: TestDatabase;
  let pool: Pool;
  let admin: Connection;
  let warnings: string[];
  let retries: string[];
  let db: Database;

  beforeAll(async () => {
    database = (await createTestDatabase())!;
    admin = await createConnection(database.url);
    await admin.query('CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL, at DATETIME(6) NULL, s VARBINARY(255) NULL, b BLOB NULL) ENGINE=InnoDB');
    pool = openPool(parseDatabaseUrl(database.url), 3);
  });
  beforeEach(async () => {
    await admin.query('DELETE FROM t');
    warnings = [];
    retries = [];
    db = { pool, logger: { warn: (_obj, msg) => warnings.push(msg) }, retry: DEFAULT_RETRY, poolLimits: DEFAULT_POOL_LIMITS, onRetry: (cause) => retries.push(cause) };
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.end();
    await database?.drop();
  });

  const rows = async () => (await admin.query<RowDataPacket[]>('SELECT id, n FROM t ORDER BY id'))[0].map((r) => [r.id, r.n]);
  const killOwnConnection = async (sql: { select: (s: string) => Promise<Array<Record<string, unknown>>> }) => {
    const [row] = await sql.select('SELECT CONNECTION_ID() AS id');
    await admin.query(`KILL ${Number(row?.id)}`);
  };

  /** Two first attempts wait here for each other (each holding a lock); later attempts pass. */
  const meetingOfTwo = () => {
    let arrived = 0;
    let release!: () => void;
    const bothHere = new Promise<void>((resolve) => (release = resolve));
    return async (attempt: number) => {
      if (attempt > 1) return;
      if (++arrived === 2) release();
      await bothHere;
    };
  };

  it('runs the whole transaction again after a deadlock', async () => {
    await admin.query('INSERT INTO t (id, n) VALUES (1, 0), (2, 0)');
    const attempts = { a: 0, b: 0 };
    const meet = meetingOfTwo();
    const crossUpdate = (name: 'a' | 'b', first: number, second: number) =>
      inTransaction(db, async (sql) => {
        const attempt = ++attempts[name];
        await sql.change('UPDATE t SET n = n + 1 WHERE id = ?', [first]);
        await meet(attempt);
        await sql.change('UPDATE t SET n = n + 1 WHERE id = ?', [second]);
      });

    await Promise.all([crossUpdate('a', 1, 2), crossUpdate('b', 2, 1)]);
    expect(attempts.a + attempts.b).toBe(3); // exactly one victim, run again once
    expect(await rows()).toEqual([[1, 2], [2, 2]]);
    expect(retries).toEqual(['deadlock']);
  });

  it('ends a batch at its first error: a deadlock in the writes sent with COMMIT applies none of them, and the retry applies them once', async () => {
    await admin.query('INSERT INTO t (id, n) VALUES (1, 0), (2, 0)');
    const attempts = { a: 0, b: 0 };
    const meet = meetingOfTwo();
    // A has written less, so InnoDB picks it as the victim: its deadlock comes in its COMMIT batch.
    const a = inTransaction(db, async (sql) => {
      // Sent with START TRANSACTION, so A holds row 1 before the meeting.
      await sql.change('UPDATE t SET n = n + 1 WHERE id = 1');
      await meet(++attempts.a);
      await sql.write('UPDATE t SET n = n + 1 WHERE id = 2');
      // Were the batch run on past the deadlock, this would commit alone and the retry would fail on it.
      await sql.write('INSERT INTO t (id, n) VALUES (3, 0)');
    });
    const b = inTransaction(db, async (sql) => {
      await sql.change('INSERT INTO t (id, n) VALUES (10, 0), (11, 0), (12, 0), (13, 0)');
      await sql.change('UPDATE t SET n = n + 1 WHERE id = 2');
      await meet(++attempts.b);
      await sql.change('UPDATE t SET n = n + 1 WHERE id = 1');
    });
    await Promise.all([a, b]);
    expect(attempts).toEqual({ a: 2, b: 1 });
    expect(await rows()).toEqual([[1, 2], [2, 2], [3, 0], [10, 0], [11, 0], [12, 0], [13, 0]]);
    expect(retries).toEqual(['deadlock']);
  });

  it('sends waiting writes before a read, and fails the transaction at COMMIT, with nothing applied, when one of them fails', async () => {
    const seen = await inTransaction(db, async (sql) => {
      await sql.write('INSERT INTO t (id, n) VALUES (1, 7)');
      return (await sql.select('SELECT n FROM t WHERE id = 1'))[0]?.n;
    });
    expect(seen).toBe(7);
    const error = await inTransaction(db, async (sql) => {
      await sql.change('UPDATE t SET n = 8 WHERE id = 1');
      await sql.write('INSERT INTO t (id, n) VALUES (2, 0)');
      await sql.write('INSERT INTO t (id, n) VALUES (1, 0)');
      await sql.write('INSERT INTO t (id, n) VALUES (3, 0)');
    }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('ER_DUP_ENTRY');
    expect(await rows()).toEqual([[1, 7]]);
  });

  it('binds a waiting write\'s values exactly as a prepared statement does', async () => {
    const text = `it's a \\ "quote"; DROP TABLE t; -- \u{1F600} \0 end`;
    const bytes = Buffer.from([0, 39, 92, 34, 59, 255, 10, 13, 26]);
    const at = new Date('2026-02-03T04:05:06.789Z');
    await inTransaction(db, async (sql) => {
      await sql.change('INSERT INTO t (id, n, at, s, b) VALUES (?, ?, ?, ?, ?)', [1, -5, at, text, bytes]);
      await sql.write('INSERT INTO t (id, n, at, s, b) VALUES (?, ?, ?, ?, ?)', [2, -5, at, text, bytes]);
    });
    const [stored] = await admin.query<RowDataPacket[]>('SELECT id, n, at, s, b FROM t ORDER BY id');
    expect(stored).toHaveLength(2);
    const [prepared, waited] = stored.map(({ id: _, ...row }) => row);
    expect(waited).toEqual(prepared);
    expect(Buffer.from(waited!.s as Buffer).toString('utf8')).toBe(text);
    expect(Buffer.compare(waited!.b as Buffer, bytes)).toBe(0);
  });

  it('runs the whole transaction again when its connection is killed, and the first try leaves nothing', async () => {
    let attempts = 0;
    await inTransaction(db, async (sql) => {
      attempts++;
      await sql.change('INSERT INTO t (id, n) VALUES (10, 0)');
      if (attempts === 1) await killOwnConnection(sql);
      await sql.change('UPDATE t SET n = n + 1 WHERE id = 10');
    });
    expect(attempts).toBe(2);
    expect(await rows()).toEqual([[10, 1]]);
    expect(warnings).toContain('database connection lost; retrying');
    expect(retries).toEqual(['connection_lost']);
  });

  it('retries a read outside a transaction when its connection is killed', async () => {
    await admin.query('INSERT INTO t (id, n) VALUES (1, 5)');
    let attempts = 0;
    const n = await withConnection(db, async (sql) => {
      if (++attempts === 1) await killOwnConnection(sql);
      const [row] = await sql.select('SELECT n FROM t WHERE id = 1');
      return row?.n;
    });
    expect([attempts, n]).toEqual([2, 5]);
  });

  it('reports a connection lost at COMMIT instead of running the transaction twice', async () => {
    let attempts = 0;
    const error = await inTransaction(db, async (sql) => {
      attempts++;
      await sql.change('INSERT INTO t (id, n) VALUES (20, 0)');
      await killOwnConnection(sql);
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommitOutcomeUnknownError);
    expect(attempts).toBe(1);
  });

  it('rolls back and rethrows any other error at once, and the connection stays usable', async () => {
    const refusal = new Error('refused by the caller');
    let attempts = 0;
    await expect(
      inTransaction(db, async (sql) => {
        attempts++;
        await sql.change('INSERT INTO t (id, n) VALUES (30, 0)');
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect(attempts).toBe(1);
    expect(await rows()).toEqual([]);
    // Every pooled connection still works (none was left mid-transaction).
    await Promise.all(Array.from({ length: 6 }, (_, i) => inTransaction(db, (sql) => sql.change('INSERT INTO t (id, n) VALUES (?, 0)', [40 + i]))));
    expect(await rows()).toHaveLength(6);
  });

  it('retries conflicts until the budget is spent, then says so', async () => {
    const deadlock = Object.assign(new Error('Deadlock found when trying to get lock'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
    let attempts = 0;
    // Plenty of tries for a conflict (they are routine on a cluster), but never past the budget.
    const quick: Database = { ...db, retry: { attempts: 2, budgetMs: 150, baseDelayMs: 1, maxDelayMs: 2 } };
    const error = await inTransaction(quick, async () => { attempts++; throw deadlock; }).catch((e: unknown) => e);
    // The store's own error leaves the seam, with the driver's as its cause.
    expect(error).toBeInstanceOf(StorageContentionError);
    expect((error as Error).cause).toBe(deadlock);
    expect(attempts).toBeGreaterThan(2);
    expect(warnings).toEqual(['database call failed after retries']);
    // Told before each run again, not for the final failure.
    expect(retries).toEqual(Array.from({ length: attempts - 1 }, () => 'deadlock'));
  });

  it('reports connections in use and callers waiting for one', async () => {
    const held = await Promise.all([acquire(pool), acquire(pool), acquire(pool)]);
    const waiter = acquire(pool);
    try {
      expect(poolStats(pool, 3)).toEqual({ size: 3, inUse: 3, waiting: 1 });
    } finally {
      held[0]!.release();
      (await waiter).release();
      for (const connection of held.slice(1)) connection.release();
    }
    expect(poolStats(pool, 3)).toMatchObject({ inUse: 0, waiting: 0 });
  });

  it('retries conflicts until a deadline the call passes, instead of the budget', async () => {
    const deadlock = Object.assign(new Error('Deadlock found'), { errno: 1213 });
    const long: Database = { ...db, retry: { ...DEFAULT_RETRY, budgetMs: 60_000, baseDelayMs: 1, maxDelayMs: 2 } };
    // With the 60 s budget this would outlast the test's timeout; the deadline ends it.
    const error = await inTransaction(long, async () => { throw deadlock; }, { deadline: Date.now() + 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageContentionError);
  });

  it('answers a node that is not ready (1047) as unavailable after a few tries, never as a conflict', async () => {
    const notReady = Object.assign(new Error('WSREP has not yet prepared node for application use'), { errno: 1047 });
    let attempts = 0;
    const quick: Database = { ...db, retry: { attempts: 3, budgetMs: 60_000, baseDelayMs: 1, maxDelayMs: 2 } };
    const error = await inTransaction(quick, async () => { attempts++; throw notReady; }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageUnavailableError);
    expect(error).not.toBeInstanceOf(StorageContentionError);
    expect((error as Error).message).toMatch(/not ready/);
    expect(attempts).toBe(3);
  });

  it('refuses an object parameter before it reaches the driver', async () => {
    await expect(withConnection(db, (sql) => sql.select('SELECT ? AS x', [{ id: 1 } as never]))).rejects.toThrow(TypeError);
  });

  it('sets UTC and a strict sql_mode on every session, and stores DATETIME(6) as UTC', async () => {
    const connection = await acquire(pool);
    try {
      const sql = sqlOn(connection);
      const [session] = await sql.select('SELECT @@session.time_zone AS tz, @@session.sql_mode AS mode');
      expect(session?.tz).toBe('+00:00');
      expect(String(session?.mode)).toContain('STRICT_ALL_TABLES');

      const at = new Date('2026-01-02T03:04:05.678Z');
      await sql.change('INSERT INTO t (id, n, at) VALUES (1, 0, ?)', [at]);
      const [row] = await sql.select('SELECT at, CAST(at AS CHAR) AS text FROM t WHERE id = 1');
      expect(row?.at).toEqual(at);
      expect(row?.text).toBe('2026-01-02 03:04:05.678000');
      await expect(sql.change('INSERT INTO t (id, n) VALUES (2, 99999999999)')).rejects.toThrow(/Out of range/);
    } finally {
      connection.release();
    }
  });
});
