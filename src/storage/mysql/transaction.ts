import { acquire, sqlOn, type Pool, type PoolConnection, type Sql } from './pool.js';
import { CommitOutcomeUnknownError, StorageContentionError, StorageUnavailableError } from '../storage-errors.js';
import { errorFields, failureKind } from './retryable-errors.js';

export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  /** Delay before the 2nd try; doubles each time, jittered to 50-100 %, capped at maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** ~0.6 s of back-off in all: rides out lock contention and a dropped connection, not an outage. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 5, maxDelayMs: 500 };

/** The pool and how to run work on it. */
export interface Database {
  pool: Pool;
  logger: WarnLogger;
  retry: RetryPolicy;
}

/**
 * Runs `work` between BEGIN and COMMIT on one connection. On a deadlock, lock wait timeout,
 * Galera not-ready or a lost connection, the WHOLE transaction runs again (so `work` and any
 * callback it calls must have no side effects but their result). Anything else rolls back and is
 * rethrown unchanged.
 */
export function inTransaction<T>(db: Database, work: (sql: Sql) => Promise<T>): Promise<T> {
  return withRetries(db, async () => {
    const connection = await acquire(db.pool);
    let committing = false;
    try {
      await connection.beginTransaction();
      const result = await work(sqlOn(connection));
      committing = true;
      await connection.commit();
      connection.release();
      return result;
    } catch (error) {
      await abandon(connection, error);
      if (committing && failureKind(error) === 'connection') throw new CommitOutcomeUnknownError({ cause: error });
      throw error;
    }
  });
}

/**
 * Runs read-only `work` on one pooled connection (autocommit), retried like a transaction, so a
 * read right after a database restart is not failed by a dead pooled connection.
 */
export function withConnection<T>(db: Database, work: (sql: Sql) => Promise<T>): Promise<T> {
  return withRetries(db, async () => {
    const connection = await acquire(db.pool);
    try {
      const result = await work(sqlOn(connection));
      connection.release();
      return result;
    } catch (error) {
      if (failureKind(error) === 'connection') connection.destroy();
      else connection.release();
      throw error;
    }
  });
}

async function withRetries<T>(db: Database, attempt: () => Promise<T>): Promise<T> {
  const { attempts, baseDelayMs, maxDelayMs } = db.retry;
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (error) {
      const kind = failureKind(error);
      if (kind === 'other') throw error;
      if (tried >= attempts) {
        db.logger.warn({ ...errorFields(error), attempts: tried }, 'database call failed after retries');
        // Leave the seam as the store's own errors: callers need not know the driver's codes.
        throw kind === 'conflict' ? new StorageContentionError({ cause: error }) : new StorageUnavailableError('the database is unavailable', { cause: error });
      }
      // Contention is routine and would flood the log; a lost connection is worth a line.
      if (kind === 'connection') db.logger.warn({ ...errorFields(error), attempt: tried }, 'database connection lost; retrying');
      const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (tried - 1));
      await sleep(ceiling * (0.5 + Math.random() / 2));
    }
  }
}

/** Rolls back and returns the connection to the pool, or destroys it if it is (or becomes) broken. */
async function abandon(connection: PoolConnection, error: unknown): Promise<void> {
  if (failureKind(error) === 'connection') {
    connection.destroy();
    return;
  }
  try {
    await connection.rollback();
    connection.release();
  } catch {
    // A connection that cannot roll back is in an unknown state: never reuse it.
    connection.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
