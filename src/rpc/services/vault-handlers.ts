import type { VaultService } from '../../domain/vault-service.js';
import { VaultServiceService, type Vault } from '../../gen/vault/v1/vault_service.js';
import type { VaultRecord } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.VaultService. */
export function vaultServiceMethods(vaults: VaultService) {
  return defineService(VaultServiceService, {
    async createVault(context, request) {
      return { vault: toVault(await vaults.create(context, request)) };
    },
    async listVaults(context, request) {
      const page = await vaults.list(context, { pageSize: request.pageSize, pageToken: request.pageToken });
      return { vaults: page.items.map(toVault), nextPageToken: page.nextPageToken };
    },
    async getVault(context, request) {
      return { vault: toVault(await vaults.get(context, request.vaultId)) };
    },
    async deleteVault(context, request) {
      await vaults.delete(context, request.vaultId);
      return {};
    },
  });
}

function toVault(v: VaultRecord): Vault {
  return {
    id: v.id,
    name: v.name,
    description: v.description,
    createdBy: v.createdBy,
    createdByType: v.createdByType,
    createdAt: v.createdAt,
  };
}
