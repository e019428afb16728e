import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The limits of the call being served, carried from the transport to the storage layer without
 * threading them through every domain function: the client's deadline (gRPC `grpc-timeout`, or
 * the HTTP `Grpc-Timeout` header as grpc-gateway reads it) and whether the client went away.
 * Storage reads them before each attempt, so a call nobody waits for is never sent to the database,
 * and conflicts are retried for as long as the caller still waits.
 */
export interface CallLimits {
  /** Absolute, Date.now() ms; absent when the client set none. */
  deadline?: number;
  /**
   * True once the client cancelled or disconnected. A function the transport answers from its own
   * state, not an AbortSignal: an AbortController per call, aborted at every call's end, cost a
   * DOMException (with its stack) per call.
   */
  cancelled?: () => boolean;
}

const current = new AsyncLocalStorage<CallLimits>();

export function runWithCallLimits<T>(limits: CallLimits, work: () => Promise<T>): Promise<T> {
  return current.run(limits, work);
}

/**
 * Runs work that serves many calls at once (a shared batch, the change feed's tailer) under none
 * of their limits; timers it starts belong to no call either.
 */
export function runOutsideCalls<T>(work: () => T): T {
  return current.exit(work);
}

export function currentCallLimits(): CallLimits {
  return current.getStore() ?? {};
}

/** The client's deadline passed before the work was sent: nobody waits for its answer. */
export class CallDeadlineExceededError extends Error {
  override readonly name = 'CallDeadlineExceededError';
  constructor() {
    super("the call's deadline passed before the database work could run");
  }
}

/** The client cancelled the call (or disconnected) before the work was sent. */
export class CallCancelledError extends Error {
  override readonly name = 'CallCancelledError';
  constructor() {
    super('the client cancelled the call before the database work could run');
  }
}

/** Throws if the current call's client no longer waits for the answer. */
export function requireCallAlive(limits: CallLimits = currentCallLimits(), now = Date.now()): void {
  if (limits.cancelled?.()) throw new CallCancelledError();
  if (limits.deadline !== undefined && now >= limits.deadline) throw new CallDeadlineExceededError();
}

/** grpc-timeout's wire form (gRPC HTTP/2 spec): up to 8 digits and a unit; undefined if absent or malformed. */
export function parseGrpcTimeout(value: string | undefined, now = Date.now()): number | undefined {
  const match = value === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (!match) return undefined;
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[match[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'];
  return now + Number(match[1]) * unitMs;
}
