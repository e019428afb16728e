// Exit codes of the `vault` command, one per class of failure a script may want to branch on,
// and the advice printed with each.
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  SecretGoneError,
  UnauthenticatedError,
  UnavailableError,
  VaultClientError,
} from '../client/errors.js';

export const EXIT = {
  ok: 0,
  /** Anything not listed below (an internal error, data loss). */
  failure: 1,
  /** A usage error or INVALID_ARGUMENT. */
  invalidInput: 2,
  notFound: 3,
  /** The version or secret is gone: disabled, expired, its reads spent, deleted (HTTP 410). */
  gone: 4,
  permissionDenied: 5,
  unauthenticated: 6,
  /** The vault is unreachable, overloaded or timed out. */
  unavailable: 7,
  /** ALREADY_EXISTS, ABORTED or another precondition failed. */
  conflict: 8,
} as const;

/** The exit code and a message that says what to do next. */
export function describeFailure(error: unknown, address: string): { code: number; message: string } {
  if (!(error instanceof VaultClientError)) return { code: EXIT.failure, message: error instanceof Error ? error.message : String(error) };
  const reason = error.reason ? ` [${error.reason}]` : '';
  const said = `${error.message}${reason}`;
  if (error instanceof SecretGoneError) return { code: EXIT.gone, message: `${said}\nhint: list the versions that remain with 'vault secret versions'` };
  if (error instanceof InvalidArgumentError) return { code: EXIT.invalidInput, message: said };
  if (error instanceof NotFoundError) return { code: EXIT.notFound, message: said };
  if (error instanceof PermissionDeniedError) return { code: EXIT.permissionDenied, message: `${said}\nhint: an operator can grant access with 'vault policy create'` };
  if (error instanceof UnauthenticatedError)
    return { code: EXIT.unauthenticated, message: `${said}\nhint: set VAULT_TOKEN (root or agent token) or VAULT_API_KEY (an agent's ocv_ key)` };
  if (error instanceof UnavailableError || error instanceof DeadlineExceededError)
    return { code: EXIT.unavailable, message: `${said}\nhint: is the vault running at ${address}? (set VAULT_ADDR); retry later` };
  if (error instanceof AlreadyExistsError || error instanceof ConflictError || error instanceof FailedPreconditionError) return { code: EXIT.conflict, message: said };
  return { code: EXIT.failure, message: said };
}
