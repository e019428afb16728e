import { createConnection, createPool, type Connection, type ConnectionOptions, type Pool, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import type { Connection as CoreConnection } from 'mysql2';
import { driverTlsOptions, identityCheckedStream } from './database-tls.js';
import type { ConnectionSettings } from './database-url.js';
import { StorageBusyError, StorageOverloadedError } from '../storage-errors.js';

export type { Pool, PoolConnection };

/** A value a statement may bind. Objects and arrays are refused: see `checkParams`. */
export type SqlParam = string | number | boolean | null | Date | Uint8Array;

/** A result row as mysql2 returns it; `row-mapping.ts` turns it into a typed record. */
export type Row = Record<string, unknown>;

/** What an INSERT, UPDATE or DELETE reports. */
export interface Changed {
  /** Rows matched (the pool sets FOUND_ROWS); for ON DUPLICATE KEY UPDATE 1 = inserted, 2 = updated. */
  affectedRows: number;
  /** The OK packet's last-insert id: an AUTO_INCREMENT value or LAST_INSERT_ID(expr); 0 if neither. */
  insertId: number;
}

/** What the query modules see of a connection: prepared statements with checked parameters. */
export interface Sql {
  select(statement: string, params?: readonly SqlParam[]): Promise<Row[]>;
  change(statement: string, params?: readonly SqlParam[]): Promise<Changed>;
  /**
   * A change whose counts nobody reads. In a transaction it waits to go with the COMMIT (or the
   * next statement) in one round trip, so its error surfaces there; elsewhere it runs at once.
   */
  write(statement: string, params?: readonly SqlParam[]): Promise<void>;
}

export const DEFAULT_POOL_SIZE = 10;

/**
 * Overload shows as a fast, clear refusal rather than growing latency: at most `queueLimit` calls
 * wait for a connection (beyond: RESOURCE_EXHAUSTED), each for at most `acquireTimeoutMs`
 * (beyond: UNAVAILABLE). Both answers carry a Retry-After.
 */
export interface PoolLimits {
  queueLimit: number;
  acquireTimeoutMs: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = { queueLimit: 1000, acquireTimeoutMs: 5000 };

/**
 * Prepared statements mysql2 keeps open per connection (it closes the least recently used beyond
 * this). Its default, 16,000, times the pool size exceeds the server's global
 * max_prepared_stmt_count (16,382 by default), and some statements vary in text (batch sizes;
 * the audit list inlines LIMIT/OFFSET), so without a cap a long-running pool would exhaust it.
 */
const PREPARED_STATEMENTS_PER_CONNECTION = 256;

/**
 * Per-connection session settings, applied once when a connection is first handed out.
 * - time_zone: DATETIME(6) columns hold UTC. mysql2's `timezone: 'Z'` already converts Dates on
 *   the client; the session zone makes NOW() and friends agree with it.
 * - sql_mode: strict, so an over-long path or value is an error rather than silently truncated
 *   (two long paths truncated alike would become one secret). Set explicitly because a server's
 *   configured mode is outside our control. Every mode named exists on MariaDB 10.11 and MySQL 8.
 */
const SESSION_SETUP =
  "SET time_zone = '+00:00', " +
  "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'";

/**
 * On a Galera node, reads wait until the node has applied every write the cluster committed
 * before them (wsrep_sync_wait=1, causality checks for reads), so a value written through one
 * instance is read back through any other, as on a single server.
 */
const GALERA_SESSION_SETUP = 'SET wsrep_sync_wait = 1';

const galeraPools = new WeakSet<object>();

/** The server is a Galera node: sessions the pool opens from now on also get GALERA_SESSION_SETUP. */
export function markGaleraPool(pool: Pool): void {
  galeraPools.add(pool);
}

export function isGaleraPool(pool: Pool): boolean {
  return galeraPools.has(pool);
}

export function openPool(settings: ConnectionSettings, poolSize = DEFAULT_POOL_SIZE, limits: PoolLimits = DEFAULT_POOL_LIMITS): Pool {
  if (!Number.isInteger(poolSize) || poolSize < 1) throw new Error(`database pool size must be a positive integer, got ${poolSize}`);
  if (!Number.isInteger(limits.queueLimit) || limits.queueLimit < 1) throw new Error(`database queue limit must be a positive integer, got ${limits.queueLimit}`);
  return createPool({
    ...connectionOptions(settings),
    connectionLimit: poolSize,
    maxIdle: poolSize,
    idleTimeout: 60_000,
    waitForConnections: true,
    queueLimit: limits.queueLimit,
    maxPreparedStatements: PREPARED_STATEMENTS_PER_CONNECTION,
  });
}

/** One connection of its own, outside any pool (health checks must not queue behind calls). */
export function openConnection(settings: ConnectionSettings): Promise<Connection> {
  return createConnection(connectionOptions(settings));
}

function connectionOptions(settings: ConnectionSettings): ConnectionOptions {
  return {
    host: settings.host,
    port: settings.port,
    user: settings.user,
    password: settings.password,
    database: settings.database,
    ssl: driverTlsOptions(settings.tls),
    stream: identityCheckedStream(settings.host, settings.port, settings.tls),
    connectTimeout: 10_000,
    enableKeepAlive: true,
    // BIGINT (audit seq, COUNT(*)) as strings so no value is silently rounded.
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
    dateStrings: false,
    charset: 'utf8mb4',
    // affectedRows counts matched rows, so re-disabling a disabled version still reports the row.
    flags: ['FOUND_ROWS'],
    // transaction-sql.ts sends a transaction's last writes and its COMMIT as one query. Values
    // still never reach SQL text unescaped: checkParams admits scalars only, and mysql2 escapes them.
    multipleStatements: true,
  };
}

/**
 * The pool's use right now. mysql2 has no public counters, so this reads the core pool's queues
 * (stable across mysql2 3.x); anything unexpected reads as 0 rather than failing a scrape.
 */
export function poolStats(pool: Pool, size: number): { size: number; inUse: number; waiting: number } {
  const core = (pool as unknown as { pool?: Record<string, { length?: unknown } | undefined> }).pool;
  const length = (name: string) => {
    const n = core?.[name]?.length;
    return typeof n === 'number' ? n : 0;
  };
  return { size, inUse: Math.max(0, length('_allConnections') - length('_freeConnections')), waiting: length('_connectionQueue') };
}

// Keyed by mysql2's underlying connection: the promise wrapper is new on every getConnection().
const setUp = new WeakSet<object>();

/**
 * Takes a connection from the pool with the session settings applied, waiting at most the
 * acquire timeout (or until `deadline`, if sooner).
 */
export async function acquire(pool: Pool, limits: PoolLimits = DEFAULT_POOL_LIMITS, deadline?: number): Promise<PoolConnection> {
  const connection = await takeConnection(pool, Math.min(limits.acquireTimeoutMs, deadline === undefined ? Infinity : Math.max(0, deadline - Date.now())));
  if (!setUp.has(connection.connection)) {
    try {
      await connection.query(SESSION_SETUP);
      if (galeraPools.has(pool)) await connection.query(GALERA_SESSION_SETUP);
    } catch (error) {
      connection.destroy();
      throw error;
    }
    setUp.add(connection.connection);
  }
  return connection;
}

/** mysql2's own error when its queue is full (it has no code). */
const QUEUE_LIMIT_MESSAGE = 'Queue limit reached.';

/** pool.getConnection() bounded in time: mysql2's pool has no acquire timeout of its own. */
function takeConnection(pool: Pool, timeoutMs: number): Promise<PoolConnection> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new StorageBusyError(timeoutMs));
    }, timeoutMs);
    pool.getConnection().then(
      (connection) => {
        clearTimeout(timer);
        // Granted after its caller gave up: hand it straight back to the next waiter.
        if (timedOut) connection.release();
        else resolve(connection);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error && error.message === QUEUE_LIMIT_MESSAGE ? new StorageOverloadedError() : error);
      },
    );
  });
}

/**
 * A statement without parameters or result (START TRANSACTION, COMMIT, ...) through the driver's
 * callback API, like sqlOn's: its promise wrapper captures a stack trace per statement.
 */
export function runCommand(connection: PoolConnection, statement: string): Promise<void> {
  return new Promise((resolve, reject) => coreOf(connection).query(statement, (error: Error | null) => (error ? reject(error) : resolve())));
}

/** The driver's own connection under a promise one (the promise types call it a promise Connection). */
export function coreOf(connection: PoolConnection): CoreConnection {
  return connection.connection as unknown as CoreConnection;
}

/**
 * Prepared statements on one connection (mysql2 caches them per connection). They go through the
 * driver's callback API: its promise wrapper captures a stack trace for every statement, a few
 * per cent of the CPU of a read under load, for a stack that only says "pool.ts".
 */
export function sqlOn(connection: PoolConnection): Sql {
  const core = coreOf(connection);
  const execute = <T>(statement: string, params: readonly SqlParam[]) =>
    new Promise<T>((resolve, reject) => core.execute(statement, checkParams(params), (error: Error | null, result: unknown) => (error ? reject(error) : resolve(result as T))));
  return {
    async select(statement, params = []) {
      return execute<Row[]>(statement, params);
    },
    async change(statement, params = []) {
      return changedOf(await execute<ResultSetHeader>(statement, params));
    },
    async write(statement, params = []) {
      await execute<ResultSetHeader>(statement, params);
    },
  };
}

export function changedOf(result: ResultSetHeader): Changed {
  return { affectedRows: result.affectedRows, insertId: Number(result.insertId) };
}

type DriverParam = string | number | boolean | null | Date | Buffer;

/**
 * Refuses anything but scalars before it reaches mysql2, which would otherwise expand an object or
 * array into SQL (`{a: 1}` -> "`a` = 1" in query(); JSON in execute()) — a classic injection path
 * when a caller passes parsed JSON through. Byte arrays are sent as Buffers (binary, never
 * charset-converted). The message names the position and kind, never the value.
 */
export function checkParams(params: readonly unknown[]): DriverParam[] {
  return params.map((value, index) => {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
    if (typeof value === 'number') {
      if (Number.isFinite(value)) return value;
      throw new TypeError(`SQL parameter ${index + 1} is a non-finite number`);
    }
    if (value instanceof Date) {
      if (!Number.isNaN(value.getTime())) return value;
      throw new TypeError(`SQL parameter ${index + 1} is an invalid Date`);
    }
    if (Buffer.isBuffer(value)) return value;
    if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const kind = Array.isArray(value) ? 'an array' : value === undefined ? 'undefined' : `a ${typeof value === 'object' ? 'non-scalar object' : typeof value}`;
    throw new TypeError(`SQL parameter ${index + 1} is ${kind}; only strings, numbers, booleans, null, Dates and byte arrays may be bound`);
  });
}
