/**
 * The closed set of domain failures. The gRPC layer maps each code once (rpc/status-mapping.ts)
 * and the HTTP gateway maps the resulting gRPC status once, so a message written here is what a
 * client sees: name the resource and say what to do, and never include a value, key or token.
 */
export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'gone'
  | 'permission_denied'
  | 'unauthenticated'
  | 'resource_exhausted'
  | 'out_of_range'
  | 'unavailable'
  | 'data_loss';

/** Why a secret read is refused: gRPC FAILED_PRECONDITION with an ErrorInfo reason, HTTP 410. */
export const GONE_REASONS = [
  'SECRET_VERSION_DISABLED',
  'SECRET_VERSION_EXPIRED',
  'SECRET_VERSION_EXHAUSTED',
  'SECRET_DELETED',
  'SECRET_NO_READABLE_VERSION',
] as const;

export type GoneReason = (typeof GONE_REASONS)[number];

/**
 * The reason of a compare-and-set miss (`if_version`): a FAILED_PRECONDITION that HTTP answers
 * with 412 Precondition Failed, as for a failed If-Match.
 */
export const VERSION_MISMATCH = 'VERSION_MISMATCH';

/** The reason of an etag miss on an agent or policy (domain/etags.ts); also HTTP 412. */
export const ETAG_MISMATCH = 'ETAG_MISMATCH';

export class VaultError extends Error {
  override readonly name = 'VaultError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Machine-readable reason (google.rpc.ErrorInfo.reason); required for `gone`. */
    readonly reason?: string,
    /** Extra ErrorInfo metadata; never secret material. */
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * An idempotency key (request_id / Idempotency-Key) sent again with a different request:
 * ALREADY_EXISTS, HTTP 409 (domain/idempotency.ts).
 */
export const IDEMPOTENCY_KEY_REUSED = 'IDEMPOTENCY_KEY_REUSED';

export const invalidArgument = (message: string) => new VaultError('invalid_argument', message);
export const notFound = (message: string) => new VaultError('not_found', message);
export const permissionDenied = (message: string) => new VaultError('permission_denied', message);
export const unauthenticated = (message: string) => new VaultError('unauthenticated', message);
export const gone = (reason: GoneReason, message: string, metadata: Record<string, string> = {}) =>
  new VaultError('gone', message, reason, metadata);
export const alreadyExists = (reason: string, message: string) => new VaultError('already_exists', message, reason);
/** A position past the end of a sequence, e.g. a change-stream cursor ahead of the newest event. */
export const outOfRange = (message: string) => new VaultError('out_of_range', message);
/** The service cannot go on serving the call here (e.g. it is stopping); retrying is right. */
export const unavailable = (message: string) => new VaultError('unavailable', message);
export const dataLoss = (message: string) => new VaultError('data_loss', message);
/** A change that cannot apply in the resource's present state (a read refusal is `gone`, 410). */
export const failedPrecondition = (reason: string, message: string, metadata: Record<string, string> = {}) =>
  new VaultError('failed_precondition', message, reason, metadata);
/** Too many attempts: `retryAfterSeconds` says when to try again (HTTP Retry-After). */
export const resourceExhausted = (reason: string, message: string, retryAfterSeconds: number) =>
  new VaultError('resource_exhausted', message, reason, { retry_after_seconds: String(retryAfterSeconds) });
