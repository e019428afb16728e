import { status } from '@grpc/grpc-js';
import { VaultError, type ErrorCode } from '../domain/errors.js';
import { CallCancelledError, CallDeadlineExceededError } from '../storage/call-deadline.js';
import { CommitOutcomeUnknownError, StorageBusyError, StorageContentionError, StorageOverloadedError, StorageUnavailableError } from '../storage/storage-errors.js';

/** google.rpc.ErrorInfo's fields, as carried by an RpcError. */
export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

export const ERROR_DOMAIN = 'vault';

/** A failure as both transports send it: a gRPC code, a client-safe message, optional ErrorInfo. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    readonly code: status,
    message: string,
    readonly errorInfo?: ErrorInfo,
  ) {
    super(message);
  }
}

const CODES: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  // gRPC has no "gone": FAILED_PRECONDITION plus an ErrorInfo reason, which HTTP maps to 410.
  gone: status.FAILED_PRECONDITION,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  out_of_range: status.OUT_OF_RANGE,
  unavailable: status.UNAVAILABLE,
  data_loss: status.DATA_LOSS,
};

/**
 * The one place errors are converted. A VaultError keeps its message (written for clients); an
 * RpcError passes through; anything else is INTERNAL with a generic message, and `unexpected`
 * reports it so the caller can log it with its stack.
 */
export function toRpcError(error: unknown, unexpected: (error: unknown) => void): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof VaultError) {
    const info = error.reason ? { reason: error.reason, domain: ERROR_DOMAIN, metadata: error.metadata } : undefined;
    return new RpcError(CODES[error.code], error.message, info);
  }
  if (error instanceof CommitOutcomeUnknownError) {
    return new RpcError(
      status.UNAVAILABLE,
      'the database connection was lost while committing: the change may or may not have been applied; check (e.g. list versions) before retrying',
      { reason: 'COMMIT_OUTCOME_UNKNOWN', domain: ERROR_DOMAIN, metadata: {} },
    );
  }
  if (error instanceof StorageBusyError) return new RpcError(status.UNAVAILABLE, 'the vault is busy: no database connection became free in time; retry later', retryAfter('OVERLOADED', 1));
  if (error instanceof StorageOverloadedError) return new RpcError(status.RESOURCE_EXHAUSTED, 'the vault is overloaded: too many calls are waiting for the database; retry later', retryAfter('OVERLOADED', 1));
  if (error instanceof StorageUnavailableError) return new RpcError(status.UNAVAILABLE, 'storage is unavailable; retry later');
  if (error instanceof CallDeadlineExceededError) return new RpcError(status.DEADLINE_EXCEEDED, error.message);
  if (error instanceof CallCancelledError) return new RpcError(status.CANCELLED, error.message);
  if (error instanceof StorageContentionError) return new RpcError(status.ABORTED, 'the change conflicted with concurrent changes; retry it');
  unexpected(error);
  return new RpcError(status.INTERNAL, 'internal error');
}

/** ErrorInfo that both transports turn into a Retry-After (HTTP header, gRPC metadata). */
function retryAfter(reason: string, seconds: number): ErrorInfo {
  return { reason, domain: ERROR_DOMAIN, metadata: { retry_after_seconds: String(seconds) } };
}
