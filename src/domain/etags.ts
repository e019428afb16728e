import { createHash } from 'node:crypto';
import type { AgentRecord, PolicyRecord } from '../storage/storage.js';
import { ETAG_MISMATCH, failedPrecondition, invalidArgument } from './errors.js';
import { quote } from './validation.js';

/**
 * Etags of agents and policies (AIP-154): a digest of every stored field a client sees or that
 * decides access, so any change makes a new etag and an etag names one state of the resource.
 * Derived, not stored: no column to keep in step, and every store computes the same value.
 * Changing a field back gives the earlier etag again, which is right: the state is the same.
 *
 * A mismatch is FAILED_PRECONDITION, reason ETAG_MISMATCH (HTTP 412), like a secret's
 * VERSION_MISMATCH. (AIP-154 suggests ABORTED; one precondition code for every compare-and-set
 * miss, and If-Match's own 412, serve clients better than two.)
 */

const ETAG_PATTERN = /^[0-9a-f]{32}$/;

/** The agent's etag. last_active_at is left out: authenticating changes nothing a caller updates. */
export function agentEtag(agent: AgentRecord): string {
  return digest([
    'agent',
    agent.id,
    agent.name,
    agent.description,
    agent.scopes,
    agent.isActive,
    agent.tokenTtlSeconds,
    agent.expiresAt?.getTime() ?? null,
    // Bumped by key rotation, deactivation and every change to a policy naming the agent.
    agent.credentialGeneration,
  ]);
}

/** The policy's etag: every field. */
export function policyEtag(policy: PolicyRecord): string {
  return digest([
    'policy',
    policy.id,
    policy.vaultId,
    policy.secretPathPattern,
    policy.principalType,
    policy.principalId,
    policy.permissions,
    canonical(policy.conditions),
    policy.expiresAt?.getTime() ?? null,
    policy.createdBy,
    policy.createdByType,
    policy.createdAt.getTime(),
    policy.effect,
    policy.priority,
  ]);
}

/**
 * The etag a request sends, checked for shape: the value of an `etag` field, bare or in the
 * double quotes of an ETag header. Undefined when the request sends none.
 */
export function requireEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  const bare = etag.startsWith('"') && etag.endsWith('"') && etag.length > 1 ? etag.slice(1, -1) : etag;
  if (!ETAG_PATTERN.test(bare)) throw invalidArgument(`etag must be an etag this API returned (32 hex digits), got ${quote(etag)}`);
  return bare;
}

/**
 * A check for the store to run on the current record under its row lock, in the change's
 * transaction: throws ETAG_MISMATCH unless the record's etag is `expected`. Undefined (no check)
 * when the caller sent no etag.
 */
export function etagPrecondition<T>(kind: 'agent' | 'policy', id: string, expected: string | undefined, etagOf: (record: T) => string): ((current: T) => void) | undefined {
  if (expected === undefined) return undefined;
  return (current) => {
    const actual = etagOf(current);
    if (actual !== expected) {
      throw failedPrecondition(ETAG_MISMATCH, `${kind} ${id} has changed since etag ${expected} (its etag is now ${actual}); nothing was changed`, {
        [`${kind}_id`]: id,
        expected_etag: expected,
        current_etag: actual,
      });
    }
  };
}

function digest(fields: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex').slice(0, 32);
}

/** JSON with object keys sorted, so a store that reorders keys does not change the etag. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
