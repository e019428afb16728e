import { randomUUID } from 'node:crypto';
import type { AccessControl } from './access-control.js';
import { globProblem } from './path-glob.js';
import type { PolicyChanges, PolicyRecord, Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { etagPrecondition, policyEtag, requireEtag } from './etags.js';
import { invalidArgument, notFound } from './errors.js';
import { createdKey, createdPosition, createPageTokens, isCreatedKey, listPage, type Page, type PageRequest, type PageTokens } from './paging.js';
import type { CallContext } from './principal.js';
import { quote, requireFuture, requireIntRange, requireMetadata, requireUuid } from './validation.js';
import type { VaultService } from './vault-service.js';

export const PERMISSIONS = ['read', 'write', 'rotate', 'delete'] as const;
const EFFECTS = ['allow', 'deny'] as const;
const MAX_PRIORITY = 1_000_000;

export interface CreatePolicyInput {
  vaultId: string;
  secretPathPattern: string;
  principalType: string;
  principalId: string;
  permissions: string[];
  conditions: unknown;
  expiresAt: Date | undefined;
  effect: string;
  priority: number;
}

export interface UpdatePolicyInput {
  permissions: string[];
  conditions: unknown;
  expiresAt: Date | undefined;
  effect: string | undefined;
  priority: number | undefined;
  /** Compare-and-set: change the policy only if this is still its etag. */
  etag?: string;
}

/** Access policies of a vault; only operators manage them. */
export interface PolicyService {
  create(context: CallContext, input: CreatePolicyInput): Promise<PolicyRecord>;
  /** One page of the vault's policies, oldest first. */
  list(context: CallContext, vaultId: string, page?: PageRequest): Promise<Page<PolicyRecord>>;
  update(context: CallContext, vaultId: string, policyId: string, input: UpdatePolicyInput): Promise<PolicyRecord>;
  /** `etag`, when given: only if it is still the policy's etag. */
  delete(context: CallContext, vaultId: string, policyId: string, etag?: string): Promise<void>;
}

function requirePermissions(permissions: string[]): string[] {
  if (permissions.length === 0) throw invalidArgument(`permissions must name at least one of ${PERMISSIONS.join(', ')}`);
  for (const p of permissions) {
    if (!(PERMISSIONS as readonly string[]).includes(p)) throw invalidArgument(`permission ${quote(p)} is not one of ${PERMISSIONS.join(', ')}`);
  }
  return [...new Set(permissions)];
}

function requireEffect(effect: string): 'allow' | 'deny' {
  if (!(EFFECTS as readonly string[]).includes(effect)) throw invalidArgument(`effect ${quote(effect)} must be allow or deny`);
  return effect as 'allow' | 'deny';
}

export function createPolicyService({
  storage,
  access,
  vaults,
  now,
  onCredentialsChanged = () => {},
  pages = createPageTokens(),
}: {
  storage: Pick<Storage, 'policies' | 'agents'>;
  access: AccessControl;
  vaults: Pick<VaultService, 'require'>;
  now: () => Date;
  /** Told after a policy change, which revokes the named agent's tokens. */
  onCredentialsChanged?: () => void;
  pages?: PageTokens;
}): PolicyService {
  const event = (context: CallContext, action: string, vaultId: string, policyId: string, at = now()) =>
    auditEvent(context, at, { action, resourceType: 'policy', resourceId: policyId, vaultId });
  const missing = (vaultId: string, policyId: string) => notFound(`policy ${policyId} does not exist in vault ${vaultId}`);
  const ifEtag = (policyId: string, etag: string | undefined) => etagPrecondition('policy', policyId, requireEtag(etag), policyEtag);

  return {
    async create(context, input) {
      access.requireOperator(context, 'manage policies');
      await vaults.require(context, input.vaultId);
      const problem = globProblem(input.secretPathPattern);
      if (problem) throw invalidArgument(`secret_path_pattern ${quote(input.secretPathPattern.slice(0, 100))} ${problem}`);
      if (input.principalType !== 'agent') throw invalidArgument(`principal_type ${quote(input.principalType)} must be agent`);
      requireUuid('principal_id', input.principalId);
      if (!(await storage.agents.get(input.principalId))) throw notFound(`agent ${input.principalId} does not exist`);
      const at = now();
      const policy: PolicyRecord = {
        id: randomUUID(),
        vaultId: input.vaultId,
        secretPathPattern: input.secretPathPattern,
        principalType: input.principalType,
        principalId: input.principalId,
        permissions: requirePermissions(input.permissions),
        conditions: requireMetadata(input.conditions, 'conditions'),
        expiresAt: requireFuture('expires_at', input.expiresAt, at),
        createdBy: context.principal.id,
        createdByType: context.principal.type,
        createdAt: at,
        effect: requireEffect(input.effect || 'allow'),
        priority: requireIntRange('priority', input.priority, 0, MAX_PRIORITY),
      };
      await storage.policies.create(policy, [event(context, 'policy.create', policy.vaultId, policy.id, at)]);
      onCredentialsChanged();
      return policy;
    },

    async list(context, vaultId, page = { pageSize: 0, pageToken: '' }) {
      access.requireOperator(context, 'read policies');
      await vaults.require(context, vaultId);
      return listPage(pages, { list: 'policies', context, params: [vaultId] }, page, {
        fetch: (after, limit) => storage.policies.list(vaultId, { after: createdPosition(after), limit }),
        keyOf: createdKey,
        isKey: isCreatedKey,
      });
    },

    async update(context, vaultId, policyId, input) {
      access.requireOperator(context, 'manage policies');
      requireUuid('vault_id', vaultId);
      requireUuid('policy_id', policyId);
      const precondition = ifEtag(policyId, input.etag);
      const at = now();
      const changes: PolicyChanges = {
        permissions: input.permissions.length > 0 ? requirePermissions(input.permissions) : undefined,
        conditions: input.conditions === undefined ? undefined : (requireMetadata(input.conditions, 'conditions') ?? undefined),
        expiresAt: requireFuture('expires_at', input.expiresAt, at) ?? undefined,
        effect: input.effect === undefined ? undefined : requireEffect(input.effect),
        priority: input.priority === undefined ? undefined : requireIntRange('priority', input.priority, 0, MAX_PRIORITY),
      };
      const updated = await storage.policies.update(vaultId, policyId, changes, [event(context, 'policy.update', vaultId, policyId, at)], precondition);
      if (!updated) throw missing(vaultId, policyId);
      onCredentialsChanged();
      return updated;
    },

    async delete(context, vaultId, policyId, etag) {
      access.requireOperator(context, 'manage policies');
      requireUuid('vault_id', vaultId);
      requireUuid('policy_id', policyId);
      const precondition = ifEtag(policyId, etag);
      if (!(await storage.policies.delete(vaultId, policyId, [event(context, 'policy.delete', vaultId, policyId)], precondition))) throw missing(vaultId, policyId);
      onCredentialsChanged();
    },
  };
}
