import type { PolicyRecord, PolicyStore, Storage } from '../storage/storage.js';
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
  /** Drops the policies this instance remembers, after it changed a policy or an agent. */
  forgetPolicies(): void;
}

/**
 * How long an instance may decide from policies it read: a change made on another instance
 * applies within this (the instance that made it forgets at once), as agent revocation does.
 */
export const POLICY_CACHE_MS = 1000;
/** Entries kept at most; past it the cache starts afresh (a burst of distinct callers, not a leak). */
const POLICY_CACHE_ENTRIES = 10_000;

/**
 * Root may do everything; an agent may do what its policies in the vault allow (see
 * policy-evaluation.ts). An agent's policies in a vault are read from storage at most once per
 * POLICY_CACHE_MS per instance, so a call does not pay a policy query each; expiry of a policy is
 * still judged at every call, against the call's time. Refusals are audited.
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

  const cache = new Map<string, { policies: Promise<PolicyRecord[]>; until: number }>();
  // Keyed by generation too: a policy change bumps the agent's generation, so a caller
  // authenticated under the new one never gets the policies read under the old.
  const policiesOf = (vaultId: string, agentId: string, generation = -1): Promise<PolicyRecord[]> => {
    const key = `${vaultId}\u0000${agentId}\u0000${generation}`;
    const at = now().getTime();
    const hit = cache.get(key);
    if (hit && hit.until > at) return hit.policies;
    // The promise is cached, so concurrent calls of one agent share one query; a failed read is not kept.
    const loading = policies.listFor(vaultId, agentId);
    if (cache.size >= POLICY_CACHE_ENTRIES) cache.clear();
    cache.set(key, { policies: loading, until: at + POLICY_CACHE_MS });
    loading.catch(() => cache.get(key)?.policies === loading && cache.delete(key));
    return loading;
  };

  const mayAccess = async (context: CallContext, vaultId: string, action: SecretAction, path: string, at = now()) => {
    if (context.principal.type === 'root') return true;
    return context.principal.type === 'agent' && isAllowed(await policiesOf(vaultId, context.principal.id, context.principal.generation), action, path, at);
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
      const own = context.principal.type === 'agent' ? await policiesOf(vaultId, context.principal.id, context.principal.generation) : [];
      if (own.length === 0) throw permissionDenied(`${context.principal.type} ${context.principal.id} has no access to vault ${vaultId}`);
      const at = now();
      return (path) => isAllowed(own, 'read', path, at);
    },

    requireOperator: requireRoot,

    forgetPolicies: () => cache.clear(),
  };
}
