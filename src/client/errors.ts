// Errors of the SDK: one class per gRPC code a caller may want to tell apart, and one per
// ErrorInfo reason of a refused read, so `catch (e) { if (e instanceof SecretVersionDisabledError) }`
// works without string matching. Messages are the server's, which never carry secret material.
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ErrorInfo } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';

const ERROR_INFO_TYPE = 'type.googleapis.com/google.rpc.ErrorInfo';

export class VaultClientError extends Error {
  override name = 'VaultClientError';
  constructor(
    message: string,
    /** The gRPC status code. */
    readonly code: grpcStatus,
    /** google.rpc.ErrorInfo.reason when the server sent one, e.g. `SECRET_VERSION_DISABLED`. */
    readonly reason: string | undefined,
    /** google.rpc.ErrorInfo.metadata (path, vault_id, version, ...). */
    readonly metadata: Record<string, string>,
  ) {
    super(message);
  }
}

export class InvalidArgumentError extends VaultClientError { override name = 'InvalidArgumentError'; }
export class NotFoundError extends VaultClientError { override name = 'NotFoundError'; }
export class AlreadyExistsError extends VaultClientError { override name = 'AlreadyExistsError'; }
export class PermissionDeniedError extends VaultClientError { override name = 'PermissionDeniedError'; }
export class UnauthenticatedError extends VaultClientError { override name = 'UnauthenticatedError'; }
export class FailedPreconditionError extends VaultClientError { override name = 'FailedPreconditionError'; }
export class ConflictError extends VaultClientError { override name = 'ConflictError'; }
export class ResourceExhaustedError extends VaultClientError { override name = 'ResourceExhaustedError'; }
export class UnavailableError extends VaultClientError { override name = 'UnavailableError'; }
export class DeadlineExceededError extends VaultClientError { override name = 'DeadlineExceededError'; }
export class DataLossError extends VaultClientError { override name = 'DataLossError'; }
export class InternalError extends VaultClientError { override name = 'InternalError'; }

/** A read the vault refuses for good (HTTP 410): the version or secret is gone. */
export class SecretGoneError extends FailedPreconditionError { override name = 'SecretGoneError'; }
export class SecretVersionDisabledError extends SecretGoneError { override name = 'SecretVersionDisabledError'; }
export class SecretVersionExpiredError extends SecretGoneError { override name = 'SecretVersionExpiredError'; }
export class SecretVersionExhaustedError extends SecretGoneError { override name = 'SecretVersionExhaustedError'; }
export class SecretDeletedError extends SecretGoneError { override name = 'SecretDeletedError'; }
export class SecretNoReadableVersionError extends SecretGoneError { override name = 'SecretNoReadableVersionError'; }

/** A compare-and-set write (`ifVersion`) lost: the path's newest version is `metadata.current_version`. */
export class VersionMismatchError extends FailedPreconditionError { override name = 'VersionMismatchError'; }
/** A change of an agent or policy sent with a stale `etag` lost: its etag is now `metadata.current_etag`. */
export class EtagMismatchError extends FailedPreconditionError { override name = 'EtagMismatchError'; }

type ErrorClass = new (message: string, code: grpcStatus, reason: string | undefined, metadata: Record<string, string>) => VaultClientError;

const BY_REASON: Record<string, ErrorClass> = {
  SECRET_VERSION_DISABLED: SecretVersionDisabledError,
  SECRET_VERSION_EXPIRED: SecretVersionExpiredError,
  SECRET_VERSION_EXHAUSTED: SecretVersionExhaustedError,
  SECRET_DELETED: SecretDeletedError,
  SECRET_NO_READABLE_VERSION: SecretNoReadableVersionError,
  VERSION_MISMATCH: VersionMismatchError,
  ETAG_MISMATCH: EtagMismatchError,
};

const BY_CODE: Partial<Record<grpcStatus, ErrorClass>> = {
  [grpcStatus.INVALID_ARGUMENT]: InvalidArgumentError,
  [grpcStatus.OUT_OF_RANGE]: InvalidArgumentError,
  [grpcStatus.NOT_FOUND]: NotFoundError,
  [grpcStatus.ALREADY_EXISTS]: AlreadyExistsError,
  [grpcStatus.PERMISSION_DENIED]: PermissionDeniedError,
  [grpcStatus.UNAUTHENTICATED]: UnauthenticatedError,
  [grpcStatus.FAILED_PRECONDITION]: FailedPreconditionError,
  [grpcStatus.ABORTED]: ConflictError,
  [grpcStatus.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [grpcStatus.UNAVAILABLE]: UnavailableError,
  [grpcStatus.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [grpcStatus.DATA_LOSS]: DataLossError,
};

/** Turns a grpc-js failure into the SDK's class for it, reading ErrorInfo from the status details. */
export function toClientError(error: ServiceError): VaultClientError {
  const info = errorInfoOf(error);
  const Class = (info && BY_REASON[info.reason]) ?? BY_CODE[error.code] ?? InternalError;
  return new Class(error.details || error.message, error.code, info?.reason, info?.metadata ?? {});
}

function errorInfoOf(error: ServiceError): ErrorInfo | undefined {
  const raw = error.metadata?.get('grpc-status-details-bin')[0];
  if (!(raw instanceof Buffer)) return undefined;
  try {
    const detail = Status.decode(raw).details.find((d) => d.typeUrl === ERROR_INFO_TYPE);
    return detail ? ErrorInfo.decode(detail.value) : undefined;
  } catch {
    return undefined;
  }
}
