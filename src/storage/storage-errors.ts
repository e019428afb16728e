/**
 * Failures of the store itself, as opposed to answers about data. Implementations throw these
 * (never driver errors) once their own retries are spent, so the transports can map them without
 * knowing which database is behind the seam.
 */

/** The store did not answer (down, restarting, unreachable). Retrying later can succeed. */
export class StorageUnavailableError extends Error {
  override readonly name: string = 'StorageUnavailableError';
  constructor(message = 'storage is unavailable', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Every database connection stayed busy for the whole acquire timeout: the instance is saturated.
 * Answered at once (UNAVAILABLE, Retry-After) instead of queueing without bound.
 */
export class StorageBusyError extends StorageUnavailableError {
  override readonly name = 'StorageBusyError';
  constructor(readonly waitedMs: number) {
    super(`no database connection became free within ${Math.round(waitedMs)} ms`);
  }
}

/** The queue of calls waiting for a database connection is full: refused at once (RESOURCE_EXHAUSTED). */
export class StorageOverloadedError extends Error {
  override readonly name = 'StorageOverloadedError';
  constructor() {
    super('too many calls are waiting for a database connection');
  }
}

/**
 * The connection died while COMMIT was in flight: the store may or may not have applied the
 * change, so it is not retried (it could apply twice). The caller must check before retrying.
 */
export class CommitOutcomeUnknownError extends StorageUnavailableError {
  override readonly name = 'CommitOutcomeUnknownError';
  constructor(options?: { cause?: unknown }) {
    super('the database connection was lost during COMMIT; the change may or may not have been applied', options);
  }
}

/** Transactions kept conflicting (deadlocks, multi-primary certification failures) past every retry. */
export class StorageContentionError extends Error {
  override readonly name = 'StorageContentionError';
  constructor(options?: { cause?: unknown }) {
    super('the change kept conflicting with concurrent changes', options);
  }
}

/**
 * A compare-and-set write (`ifVersion`) found the path's newest version number to be another one;
 * nothing was written. `actual` is that number (0: the path never had a version).
 */
export class VersionMismatchError extends Error {
  override readonly name = 'VersionMismatchError';
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`expected newest version ${expected}, found ${actual}`);
  }
}

/** A write named a vault that does not exist (or was deleted meanwhile). An answer, not a fault. */
export class VaultMissingError extends Error {
  override readonly name = 'VaultMissingError';
  constructor(readonly vaultId: string) {
    super(`vault ${vaultId} does not exist`);
  }
}

/**
 * A write made as a lease's holder was refused: the lease expired or passed to another holder
 * (its fencing number moved on). Nothing was written; the caller must stop acting as the holder.
 */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(readonly leaseName: string) {
    super(`lease "${leaseName}" is no longer held by this holder (expired or taken over); the write was refused`);
  }
}

/**
 * An idempotency key was used again, by the same caller on the same method, with a different
 * request: nothing was done. Only the fingerprints were compared; neither request is kept.
 */
export class IdempotencyKeyReusedError extends Error {
  override readonly name = 'IdempotencyKeyReusedError';
  constructor() {
    super('the idempotency key was already used with a different request');
  }
}
