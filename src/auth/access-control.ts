import { permissionDenied } from '../domain/errors.js';
import type { CallContext } from '../domain/principal.js';

/** What a secret call does; each accepts the permissions listed in ACCEPTED_PERMISSIONS. */
export type SecretAction = 'read' | 'write' | 'rotate' | 'delete';

export const ACCEPTED_PERMISSIONS: Record<SecretAction, readonly string[]> = {
  read: ['read'],
  write: ['write'],
  rotate: ['rotate', 'write'],
  delete: ['delete', 'write'],
};

/**
 * Decides every call. The domain asks before it touches storage, so a caller without permission
 * learns nothing about whether a path exists.
 */
export interface AccessControl {
  /** Throws PERMISSION_DENIED unless the caller may do `action` on `path` in the vault. */
  requireSecretAccess(context: CallContext, vaultId: string, action: SecretAction, path: string): Promise<void>;
  /** A predicate telling which paths of a vault the caller may read (for listings). */
  readablePaths(context: CallContext, vaultId: string): Promise<(path: string) => boolean>;
  /** Throws PERMISSION_DENIED unless the caller is an operator (root). */
  requireOperator(context: CallContext, what: string): void;
}

/** Root may do everything; every other principal is refused. */
export function createRootOnlyAccessControl(): AccessControl {
  const requireRoot = (context: CallContext, what: string) => {
    if (context.principal.type !== 'root') throw permissionDenied(`only an operator may ${what}`);
  };
  return {
    async requireSecretAccess(context, _vaultId, action) {
      requireRoot(context, `${action} secrets`);
    },
    async readablePaths(context) {
      return () => context.principal.type === 'root';
    },
    requireOperator: requireRoot,
  };
}
