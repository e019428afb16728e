import { compareCreated, pageOf } from '../path-order.js';
import type { AgentRecord, AgentStore, AuditRecord, PolicyRecord, PolicyStore } from '../storage.js';

/** Agents and policies in memory; they share state because policy changes bump agent generations. */
export function createMemoryIdentityStores(record: (events: AuditRecord[]) => void) {
  const agents = new Map<string, AgentRecord>();
  const policies = new Map<string, PolicyRecord>();
  const copyAgent = (a: AgentRecord): AgentRecord => structuredClone(a);
  const bump = (principalId: string) => {
    const agent = agents.get(principalId);
    if (agent) agent.credentialGeneration += 1;
  };

  const agentStore: AgentStore = {
    async create(agent, audit) {
      if (agents.has(agent.id)) throw new Error(`agent ${agent.id} already exists`);
      agents.set(agent.id, copyAgent(agent));
      record(audit);
    },
    async get(id) {
      const agent = agents.get(id);
      return agent ? copyAgent(agent) : null;
    },
    async getByKeyHash(keyHash) {
      const wanted = Buffer.from(keyHash);
      const agent = [...agents.values()].find((a) => wanted.equals(Buffer.from(a.keyHash)));
      return agent ? copyAgent(agent) : null;
    },
    async list(page) {
      const sorted = [...agents.values()].sort(compareCreated);
      return pageOf(sorted, page, (a, after) => compareCreated(a, after) > 0).map(copyAgent);
    },
    async update(id, changes, audit, precondition) {
      const agent = agents.get(id);
      if (!agent) return null;
      precondition?.(copyAgent(agent));
      const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
      if (changes.isActive !== undefined && changes.isActive !== agent.isActive) agent.credentialGeneration += 1;
      Object.assign(agent, defined);
      record(audit);
      return copyAgent(agent);
    },
    async rotateKey(id, keyHash, audit, precondition) {
      const agent = agents.get(id);
      if (!agent) return null;
      precondition?.(copyAgent(agent));
      agent.keyHash = Uint8Array.from(keyHash);
      agent.credentialGeneration += 1;
      record(audit);
      return copyAgent(agent);
    },
    async delete(id, audit, precondition) {
      const agent = agents.get(id);
      if (!agent) return false;
      precondition?.(copyAgent(agent));
      agents.delete(id);
      for (const [policyId, policy] of policies) if (policy.principalId === id) policies.delete(policyId);
      record(audit);
      return true;
    },
    async touch(id, at) {
      const agent = agents.get(id);
      if (agent) agent.lastActiveAt = at;
    },
  };

  const inVault = (vaultId: string) =>
    [...policies.values()]
      .filter((p) => p.vaultId === vaultId)
      .sort(compareCreated)
      .map((p) => structuredClone(p));

  const policyStore: PolicyStore = {
    async create(policy, audit) {
      policies.set(policy.id, structuredClone(policy));
      bump(policy.principalId);
      record(audit);
    },
    async list(vaultId, page) {
      return pageOf(inVault(vaultId), page, (p, after) => compareCreated(p, after) > 0);
    },
    async listFor(vaultId, principalId) {
      return inVault(vaultId).filter((p) => p.principalId === principalId);
    },
    async update(vaultId, id, changes, audit, precondition) {
      const policy = policies.get(id);
      if (!policy || policy.vaultId !== vaultId) return null;
      precondition?.(structuredClone(policy));
      Object.assign(policy, Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined)));
      bump(policy.principalId);
      record(audit);
      return structuredClone(policy);
    },
    async delete(vaultId, id, audit, precondition) {
      const policy = policies.get(id);
      if (!policy || policy.vaultId !== vaultId) return false;
      precondition?.(structuredClone(policy));
      policies.delete(id);
      bump(policy.principalId);
      record(audit);
      return true;
    },
  };

  /** Drops a deleted vault's policies. */
  const deleteVaultPolicies = (vaultId: string) => {
    for (const [id, policy] of policies) {
      if (policy.vaultId === vaultId) {
        policies.delete(id);
        bump(policy.principalId);
      }
    }
  };

  return { agents: agentStore, policies: policyStore, deleteVaultPolicies };
}
