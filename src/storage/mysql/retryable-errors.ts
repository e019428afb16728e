import type { RetryCause } from '../storage.js';

/**
 * Which database failures are worth running the whole transaction again.
 *
 * - `conflict`: the server rolled the transaction back (or refused to start it) and a fresh
 *   attempt can succeed; the connection itself is fine.
 * - `connection`: the connection is dead (server restarted, connection killed, network reset); it
 *   must be destroyed, never returned to the pool. The server rolls back whatever it had open.
 * - `unready`: a cluster node refuses work (Galera 1047: joining, not synced, or cut off from the
 *   primary component). An outage of this node, not contention: UNAVAILABLE, never ABORTED.
 * - `other`: retrying would fail the same way (bad SQL, constraint violation, caller's error).
 */
export type FailureKind = 'conflict' | 'connection' | 'unready' | 'other';

/** 1213 deadlock (also a Galera certification failure at commit); 1205 lock wait timeout. */
const CONFLICT_ERRNOS = new Set([1213, 1205]);
/** 1047 is "unknown command" in general; only Galera's "WSREP has not yet prepared node" is transient. */
const WSREP_NOT_READY_ERRNO = 1047;

const CONNECTION_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'EPIPE',
  'ECONNREFUSED',
  'ETIMEDOUT', // connect timeout while the server is starting or unreachable
  'ER_SERVER_SHUTDOWN',
]);
const CONNECTION_ERRNOS = new Set([
  1053, // ER_SERVER_SHUTDOWN
  1927, // MariaDB ER_CONNECTION_KILLED
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
  4031, // MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT: disconnected for inactivity
]);
const CONNECTION_MESSAGES = ['Connection is closed', "Can't add new command when connection is in closed state"];

export function failureKind(error: unknown): FailureKind {
  if (typeof error !== 'object' || error === null) return 'other';
  const { code, errno, message } = error as { code?: unknown; errno?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (typeof errno === 'number') {
    if (CONFLICT_ERRNOS.has(errno)) return 'conflict';
    if (errno === WSREP_NOT_READY_ERRNO && /wsrep/i.test(text)) return 'unready';
    if (CONNECTION_ERRNOS.has(errno)) return 'connection';
  }
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return 'connection';
  if (CONNECTION_MESSAGES.some((m) => text.includes(m))) return 'connection';
  return 'other';
}

/** The finer cause of a retryable failure, for the retry counter. */
export function retryCause(error: unknown): RetryCause {
  const errno = typeof error === 'object' && error !== null ? (error as { errno?: unknown }).errno : undefined;
  const kind = failureKind(error);
  if (kind === 'connection') return 'connection_lost';
  if (kind === 'unready') return 'cluster_not_ready';
  if (errno === 1205) return 'lock_wait_timeout';
  return 'deadlock';
}

/** The identifying fields of a driver error, safe to log (no SQL text, no values). */
export function errorFields(error: unknown): { code?: string; errno?: number } {
  if (typeof error !== 'object' || error === null) return {};
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  return {
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof errno === 'number' ? { errno } : {}),
  };
}
