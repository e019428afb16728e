import type { PolicyRecord } from '../storage/storage.js';
import { globMatches } from './path-glob.js';

/** What a secret call does; each accepts the permissions listed in ACCEPTED_PERMISSIONS. */
export type SecretAction = 'read' | 'write' | 'rotate' | 'delete';

export const ACCEPTED_PERMISSIONS: Record<SecretAction, readonly string[]> = {
  read: ['read'],
  write: ['write'],
  rotate: ['rotate', 'write'],
  delete: ['delete', 'write'],
};

/**
 * Decides one action on one path from an agent's policies in a vault: among the unexpired
 * policies whose pattern matches and whose permissions include one the action accepts, the
 * highest priority decides, and at equal priority deny wins. No such policy: denied.
 */
export function isAllowed(policies: readonly PolicyRecord[], action: SecretAction, path: string, now: Date): boolean {
  const accepted = ACCEPTED_PERMISSIONS[action];
  let best: { priority: number; allow: boolean } | undefined;
  for (const policy of policies) {
    if (policy.expiresAt && policy.expiresAt.getTime() <= now.getTime()) continue;
    if (!policy.permissions.some((p) => accepted.includes(p))) continue;
    if (!globMatches(policy.secretPathPattern, path)) continue;
    const allow = policy.effect === 'allow';
    if (!best || policy.priority > best.priority) best = { priority: policy.priority, allow };
    else if (policy.priority === best.priority && !allow) best.allow = false;
  }
  return best?.allow ?? false;
}
