import { STATUS_CODES } from 'node:http';
import { status } from '@grpc/grpc-js';
import { ETAG_MISMATCH, GONE_REASONS, VERSION_MISMATCH } from '../domain/errors.js';

/**
 * The one table from gRPC codes to HTTP statuses: grpc-gateway's HTTPStatusFromCode
 * (FAILED_PRECONDITION is 400, deliberately not 412). Codes outside it are 500.
 */
const HTTP_STATUS_BY_CODE: Readonly<Record<number, number>> = {
  [status.OK]: 200,
  [status.CANCELLED]: 499,
  [status.UNKNOWN]: 500,
  [status.INVALID_ARGUMENT]: 400,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.UNAUTHENTICATED]: 401,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.FAILED_PRECONDITION]: 400,
  [status.ABORTED]: 409,
  [status.OUT_OF_RANGE]: 400,
  [status.UNIMPLEMENTED]: 501,
  [status.INTERNAL]: 500,
  [status.UNAVAILABLE]: 503,
  [status.DATA_LOSS]: 500,
};

/**
 * ErrorInfo reasons that make a FAILED_PRECONDITION a 410 Gone: a read of a version that is
 * disabled, expired or out of reads, or of a deleted secret. gRPC has no "gone" code.
 */
const GONE: ReadonlySet<string> = new Set(GONE_REASONS);

/** The HTTP status of a failed call, from its gRPC code and ErrorInfo reason. */
export function httpStatusForError(code: number, reason?: string): number {
  if (code === status.FAILED_PRECONDITION && reason !== undefined && GONE.has(reason)) return 410;
  // A compare-and-set miss is what If-Match failing means in HTTP (RFC 9110 13.1.1).
  if (code === status.FAILED_PRECONDITION && (reason === VERSION_MISMATCH || reason === ETAG_MISMATCH)) return 412;
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}

/**
 * RPCs that create a resource answer 201 (grpc-gateway would need an `x-http-code` header from
 * the handler; keeping the list here keeps one code path). Kept explicit and small on purpose.
 */
const CREATED: ReadonlySet<string> = new Set([
  'vault.v1.SecretService.PutSecret',
  'vault.v1.SecretService.RotateSecret',
  'vault.v1.VaultService.CreateVault',
  'vault.v1.AgentService.CreateAgent',
  'vault.v1.PolicyService.CreatePolicy',
]);

/**
 * The HTTP status of a successful call: 201 for the creating RPCs, 204 (empty body) for an RPC
 * whose response message has no fields (deletes, disable, enable), 200 otherwise.
 */
export function httpStatusForSuccess(fullName: string, responseIsEmpty: boolean): number {
  if (CREATED.has(fullName)) return 201;
  return responseIsEmpty ? 204 : 200;
}

/** The reason phrase for an HTTP status, for the error body's `title`. */
export function reasonPhrase(httpStatus: number): string {
  return STATUS_CODES[httpStatus] ?? (httpStatus === 499 ? 'Client Closed Request' : 'Unknown');
}
