import { policyEtag } from '../../domain/etags.js';
import type { PolicyService } from '../../domain/policy-service.js';
import { PolicyServiceService, type Policy } from '../../gen/vault/v1/policy_service.js';
import type { PolicyRecord } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.PolicyService. */
export function policyServiceMethods(policies: PolicyService) {
  return defineService(PolicyServiceService, {
    async createPolicy(context, request) {
      const policy = await policies.create(context, {
        vaultId: request.vaultId,
        secretPathPattern: request.secretPathPattern,
        principalType: request.principalType,
        principalId: request.principalId,
        permissions: request.permissions,
        conditions: request.conditions,
        expiresAt: request.expiresAt,
        effect: request.effect,
        priority: request.priority,
      });
      return { policy: toPolicy(policy) };
    },
    async listPolicies(context, request) {
      const page = await policies.list(context, request.vaultId, { pageSize: request.pageSize, pageToken: request.pageToken });
      return { policies: page.items.map(toPolicy), nextPageToken: page.nextPageToken };
    },
    async updatePolicy(context, request) {
      const policy = await policies.update(context, request.vaultId, request.policyId, {
        permissions: request.permissions,
        conditions: request.conditions,
        expiresAt: request.expiresAt,
        effect: request.effect,
        priority: request.priority,
        etag: request.etag,
      });
      return { policy: toPolicy(policy) };
    },
    async deletePolicy(context, request) {
      await policies.delete(context, request.vaultId, request.policyId, request.etag);
      return {};
    },
  });
}

function toPolicy(p: PolicyRecord): Policy {
  return {
    id: p.id,
    vaultId: p.vaultId,
    secretPathPattern: p.secretPathPattern,
    principalType: p.principalType,
    principalId: p.principalId,
    permissions: p.permissions,
    conditions: p.conditions ?? undefined,
    expiresAt: p.expiresAt ?? undefined,
    createdBy: p.createdBy,
    createdByType: p.createdByType,
    createdAt: p.createdAt,
    effect: p.effect,
    priority: p.priority,
    etag: policyEtag(p),
  };
}
