import type { PolicyStore, Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { permissionDenied } from './errors.js';
import { isAllowed, type SecretAction } from './policy-evaluation.js';
import type { CallContext } from './principal.js';

export type { SecretAction } from './policy-evaluation.js';

/**
 * Decides every call. The domain asks before it touches storage, so a caller without permission
 * learns nothing about whether a path exists.
 */
export interface AccessControl {
  /** Throws PERMISSION_DENIED unless the caller may do `action` on `path` in the vault. */
  requireSecretAccess(context: CallContext, vaultId: string, action: SecretAction, path: string): Promise<void>;
  /** Whether the caller may do `action` on `path`, without refusing or auditing anything. */
  mayAccess(context: CallContext, vaultId: string, action: SecretAction, path: string): Promise<boolean>;
  /** A predicate telling which paths of a vault the caller may read (for listings). */
  readablePaths(context: CallContext, vaultId: string): Promise<(path: string) => boolean>;
  /** Throws PERMISSION_DENIED unless the caller is an operator (root). */
  requireOperator(context: CallContext, what: string): void;
}

/**
 * Root may do everything; an agent may do what its policies in the vault allow (see
 * policy-evaluation.ts), read fresh from storage on every call so a policy change applies at
 * once on every instance. Refusals are audited.
 */
export function createPolicyAccessControl({
  policies,
  appendAudit,
  now,
}: {
  policies: Pick<PolicyStore, 'listFor'>;
  appendAudit: Storage['appendAudit'];
  now: () => Date;
}): AccessControl {
  const requireRoot = (context: CallContext, what: string) => {
    if (context.principal.type !== 'root') throw permissionDenied(`only an operator may ${what}`);
  };

  const mayAccess = async (context: CallContext, vaultId: string, action: SecretAction, path: string, at = now()) => {
    if (context.principal.type === 'root') return true;
    return context.principal.type === 'agent' && isAllowed(await policies.listFor(vaultId, context.principal.id), action, path, at);
  };

  return {
    mayAccess: (context, vaultId, action, path) => mayAccess(context, vaultId, action, path),

    async requireSecretAccess(context, vaultId, action, path) {
      const at = now();
      if (await mayAccess(context, vaultId, action, path, at)) return;
      await appendAudit([
        auditEvent(context, at, { action: `secret.${action}`, resourceType: 'secret', resourceId: path, vaultId, outcome: 'denied' }),
      ]);
      // The same answer whether or not the path exists: no existence oracle.
      throw permissionDenied(`${context.principal.type} ${context.principal.id || '(anonymous)'} may not ${action} secret ${JSON.stringify(path)} in vault ${vaultId}`);
    },

    async readablePaths(context, vaultId) {
      if (context.principal.type === 'root') return () => true;
      const own = context.principal.type === 'agent' ? await policies.listFor(vaultId, context.principal.id) : [];
      if (own.length === 0) throw permissionDenied(`${context.principal.type} ${context.principal.id} has no access to vault ${vaultId}`);
      const at = now();
      return (path) => isAllowed(own, 'read', path, at);
    },

    requireOperator: requireRoot,
  };
}
