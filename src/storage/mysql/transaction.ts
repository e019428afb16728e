import { AsyncLocalStorage } from 'node:async_hooks';
import { CallCancelledError, currentCallLimits, requireCallAlive, type CallLimits } from '../call-deadline.js';
import { acquire, isGaleraPool, runCommand, sqlOn, type Pool, type PoolConnection, type PoolLimits, type Sql } from './pool.js';
import { CommitOutcomeUnknownError, StorageContentionError, StorageUnavailableError } from '../storage-errors.js';
import { transactionSqlOn } from './transaction-sql.js';
import { errorFields, failureKind, retryCause, type FailureKind } from './retryable-errors.js';
import type { AuditRecord, RetryCause } from '../storage.js';

export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

export interface RetryPolicy {
  /**
   * How long conflicts (deadlocks, Galera certification failures at COMMIT) are retried, from the
   * first try, when the call passes no deadline of its own. Contention on a hot row across
   * cluster nodes clears in milliseconds to a few hundred; a client should never see it.
   */
  budgetMs: number;
  /**
   * Tries, the first included, on a lost connection or a cluster node that is not ready (1047):
   * those are outages, answered UNAVAILABLE after a short ride-out rather than waited out.
   */
  attempts: number;
  /** Back-off before the 2nd try; doubles each time, capped at maxDelayMs, full jitter (0-100 %). */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Conflicts: up to 8 s; outages: ~0.5 s of tries. */
export const DEFAULT_RETRY: RetryPolicy = { budgetMs: 8_000, attempts: 8, baseDelayMs: 2, maxDelayMs: 250 };

/** The pool and how to run work on it. */
export interface Database {
  pool: Pool;
  /** How many calls may wait for a connection, and how long. */
  poolLimits: PoolLimits;
  logger: WarnLogger;
  retry: RetryPolicy;
  /**
   * On a cluster node: refuses work (throws StorageUnavailableError) while the node is not
   * synced, and is told of every outage-like failure so it checks again. Absent on one server.
   */
  readiness?: Readiness;
  /** Told each time a failed attempt is about to run again (metrics); must not throw. */
  onRetry?: (cause: RetryCause) => void;
}

export interface Readiness {
  /** Throws StorageUnavailableError unless the node was last seen ready. */
  require(): void;
  /** A call saw the connection die or the node refuse (1047): stop trusting the last check. */
  suspect(): void;
}

/**
 * A transaction that spans a whole call (storage.ts IdempotencyStore.run): while it is open, every
 * inTransaction and withConnection on its database made in its async context runs on it, without
 * a connection, BEGIN or retries of its own, so a failure anywhere rolls back and retries the call
 * as a whole.
 */
export interface CallTransaction {
  readonly sql: Sql;
  /**
   * Audit events written "on their own" (appendAudit, e.g. a refusal) during the call: committed
   * with it when it succeeds, and written after the rollback when it fails, as they would be
   * without a call transaction.
   */
  readonly deferredAudit: AuditRecord[];
}

const callTransactions = new AsyncLocalStorage<CallTransaction & { db: Database; open: boolean }>();

/** The call transaction on `db` that the caller runs inside, if one is open. */
export function joinedCallTransaction(db: Database): CallTransaction | undefined {
  const call = callTransactions.getStore();
  return call && call.db === db && call.open ? call : undefined;
}

/**
 * Runs `work` as a call transaction (above); retried as a whole like inTransaction. READ
 * COMMITTED: each store call in it was written as a transaction of its own, whose plain reads
 * after its first lock see what other writers committed; under REPEATABLE READ they would see the
 * snapshot of the call's first read (an access check, say), e.g. an append a stale previous version.
 */
export function inCallTransaction<T>(db: Database, work: (call: CallTransaction) => Promise<T>, limits: CallLimits = currentCallLimits()): Promise<T> {
  return runTransaction(
    db,
    'READ COMMITTED',
    async (sql) => {
      const call = { db, sql, deferredAudit: [], open: true };
      try {
        return await callTransactions.run(call, () => work(call));
      } finally {
        // Work that outlives the call (nothing should) gets a connection of its own, not this one.
        call.open = false;
      }
    },
    limits,
  );
}

/**
 * Runs `work` between BEGIN and COMMIT on one connection (or on the call transaction it joins).
 * On a deadlock, lock wait timeout, Galera not-ready or a lost connection, the WHOLE transaction
 * runs again (so `work` and any callback it calls must have no side effects but their result).
 * Anything else rolls back and is rethrown unchanged.
 */
export function inTransaction<T>(db: Database, work: (sql: Sql) => Promise<T>, limits: CallLimits = currentCallLimits()): Promise<T> {
  const joined = joinedCallTransaction(db);
  if (joined) return work(joined.sql);
  return runTransaction(db, undefined, work, limits);
}

/** inTransaction's loop; `isolation` set for this transaction only (the server's default otherwise). */
function runTransaction<T>(db: Database, isolation: 'READ COMMITTED' | undefined, work: (sql: Sql) => Promise<T>, limits: CallLimits): Promise<T> {
  return withRetries(db, limits, async () => {
    const connection = await acquire(db.pool, db.poolLimits, limits.deadline);
    let committing = false;
    try {
      // Without GLOBAL or SESSION it applies to the next transaction only: the pooled connection keeps its default.
      const opening = [...(isolation ? [`SET TRANSACTION ISOLATION LEVEL ${isolation}`] : []), 'START TRANSACTION'];
      const sql = transactionSqlOn(connection, opening, !isGaleraPool(db.pool));
      const result = await work(sql);
      // From here a lost connection leaves the outcome unknown: the COMMIT goes with the last writes.
      committing = true;
      await sql.commit();
      connection.release();
      return result;
    } catch (error) {
      await abandon(connection, error);
      // A certification failure (1213) at COMMIT is a clean "not applied"; a dead connection or a
      // node dropping out of the cluster at COMMIT is not known either way.
      const kind = failureKind(error);
      if (committing && (kind === 'connection' || kind === 'unready')) {
        db.readiness?.suspect();
        throw new CommitOutcomeUnknownError({ cause: error });
      }
      throw error;
    }
  });
}

/**
 * Runs read-only `work` on one pooled connection (autocommit), retried like a transaction, so a
 * read right after a database restart is not failed by a dead pooled connection.
 */
export function withConnection<T>(db: Database, work: (sql: Sql) => Promise<T>, limits: CallLimits = currentCallLimits()): Promise<T> {
  // Inside a call transaction a read sees the call's own writes.
  const joined = joinedCallTransaction(db);
  if (joined) return work(joined.sql);
  return withPooledConnection(db, (connection) => work(sqlOn(connection)), limits);
}

/**
 * One pooled connection for `work`, retried as a whole; a connection that failed as a connection
 * is destroyed rather than returned to the pool. For statements that cannot run in a transaction
 * (DDL), use it directly.
 */
export function withPooledConnection<T>(db: Database, work: (connection: PoolConnection) => Promise<T>, limits: CallLimits = currentCallLimits()): Promise<T> {
  return withRetries(db, limits, async () => {
    const connection = await acquire(db.pool, db.poolLimits, limits.deadline);
    try {
      const result = await work(connection);
      connection.release();
      return result;
    } catch (error) {
      if (failureKind(error) === 'connection') connection.destroy();
      else connection.release();
      throw error;
    }
  });
}

/**
 * Runs `attempt` until it succeeds, fails for good, or its allowance is spent: conflicts until the
 * deadline (or the budget), outages for `attempts` tries. Each failure is left as the store's own
 * error, so callers need not know the driver's codes.
 */
export async function withRetries<T>(db: Database, limits: CallLimits, attempt: () => Promise<T>): Promise<T> {
  const { attempts, baseDelayMs, maxDelayMs, budgetMs } = db.retry;
  const deadline = limits.deadline ?? Date.now() + budgetMs;
  // A call whose client gave up is not sent: its answer would go nowhere.
  requireCallAlive(limits);
  for (let tried = 1; ; tried++) {
    db.readiness?.require();
    try {
      return await attempt();
    } catch (error) {
      const kind = failureKind(error);
      if (kind === 'other') throw error;
      if (kind !== 'conflict') db.readiness?.suspect();
      const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(tried - 1, 30)) * Math.random();
      const spent = kind === 'conflict' ? Date.now() + delay >= deadline : tried >= attempts || Date.now() + delay >= deadline;
      if (spent) throw givenUp(db, error, kind, tried);
      // Contention is routine and would flood the log; a lost connection is worth a line.
      if (kind === 'connection') db.logger.warn({ ...errorFields(error), attempt: tried }, 'database connection lost; retrying');
      await sleep(delay);
      if (limits.cancelled?.()) throw new CallCancelledError();
      // The sleep may overshoot: past the deadline, the last failure is the answer, not another try.
      if (Date.now() >= deadline) throw givenUp(db, error, kind, tried);
      db.onRetry?.(retryCause(error));
    }
  }
}

/** The store's own error for a failure whose retries are spent; the driver's code only, as its message may name hosts or users. */
function givenUp(db: Database, error: unknown, kind: FailureKind, tried: number): Error {
  db.logger.warn({ ...errorFields(error), attempts: tried }, 'database call failed after retries');
  if (kind === 'conflict') return new StorageContentionError({ cause: error });
  const { code, errno } = errorFields(error);
  const why = kind === 'unready' ? 'the database node is not ready (not synced with its cluster)' : 'the database is unavailable';
  return new StorageUnavailableError(`${why} (${code ?? errno ?? 'no error code'})`, { cause: error });
}

/** Rolls back and returns the connection to the pool, or destroys it if it is (or becomes) broken. */
async function abandon(connection: PoolConnection, error: unknown): Promise<void> {
  if (failureKind(error) === 'connection') {
    connection.destroy();
    return;
  }
  try {
    await runCommand(connection, 'ROLLBACK');
    connection.release();
  } catch {
    // A connection that cannot roll back is in an unknown state: never reuse it.
    connection.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
