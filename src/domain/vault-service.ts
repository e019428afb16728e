import { randomUUID } from 'node:crypto';
import type { AccessControl } from './access-control.js';
import type { Storage, VaultRecord } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { notFound } from './errors.js';
import { createdKey, createdPosition, createPageTokens, isCreatedKey, listPage, type Page, type PageRequest, type PageTokens } from './paging.js';
import type { CallContext } from './principal.js';
import { requireText, requireUuid } from './validation.js';

export interface VaultService {
  create(context: CallContext, input: { name: string; description: string }): Promise<VaultRecord>;
  /** One page of vaults, oldest first. */
  list(context: CallContext, page?: PageRequest): Promise<Page<VaultRecord>>;
  get(context: CallContext, vaultId: string): Promise<VaultRecord>;
  delete(context: CallContext, vaultId: string): Promise<void>;
  /** Returns the vault or throws NOT_FOUND; used by other services before they act on a vault. */
  require(context: CallContext, vaultId: string): Promise<VaultRecord>;
}

export interface VaultServiceDeps {
  storage: Storage;
  access: AccessControl;
  now: () => Date;
  pages?: PageTokens;
}

export function createVaultService({ storage, access, now, pages = createPageTokens() }: VaultServiceDeps): VaultService {
  async function require(_context: CallContext, vaultId: string) {
    requireUuid('vault_id', vaultId);
    const vault = await storage.vaults.get(vaultId);
    if (!vault) throw notFound(`vault ${vaultId} does not exist`);
    return vault;
  }

  return {
    require,

    async create(context, input) {
      access.requireOperator(context, 'create vaults');
      const at = now();
      const vault: VaultRecord = {
        id: randomUUID(),
        name: requireText('name', input.name.trim(), { min: 1, max: 128 }),
        description: requireText('description', input.description, { max: 1024 }),
        createdBy: context.principal.id,
        createdByType: context.principal.type,
        createdAt: at,
      };
      await storage.vaults.create(vault, [
        auditEvent(context, at, { action: 'vault.create', resourceType: 'vault', resourceId: vault.id, vaultId: vault.id }),
      ]);
      return vault;
    },

    async list(context, page = { pageSize: 0, pageToken: '' }) {
      access.requireOperator(context, 'list vaults');
      return listPage(pages, { list: 'vaults', context, params: [] }, page, {
        fetch: (after, limit) => storage.vaults.list({ after: createdPosition(after), limit }),
        keyOf: createdKey,
        isKey: isCreatedKey,
      });
    },

    async get(context, vaultId) {
      access.requireOperator(context, 'read vault details');
      return require(context, vaultId);
    },

    async delete(context, vaultId) {
      requireUuid('vault_id', vaultId);
      access.requireOperator(context, 'delete vaults');
      const event = auditEvent(context, now(), { action: 'vault.delete', resourceType: 'vault', resourceId: vaultId, vaultId });
      if (!(await storage.vaults.delete(vaultId, [event]))) throw notFound(`vault ${vaultId} does not exist`);
    },
  };
}
