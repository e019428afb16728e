import type { MasterKeyService, MasterKeyUsage } from '../../domain/master-keys.js';
import { SystemServiceService, type MasterKeyUsage as MasterKeyUsageMessage } from '../../gen/vault/v1/system_service.js';
import type { Storage } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.SystemService: health is public, so load balancers can probe it without a token. */
export function systemServiceMethods({ storage, masterKeys, version }: { storage: Storage; masterKeys: MasterKeyService; version: string }) {
  return defineService(
    SystemServiceService,
    {
      async getHealth() {
        const healthy = await storage.ping().then(
          () => true,
          () => false,
        );
        return { status: healthy ? 'healthy' : 'degraded', version };
      },
      async rewrapSecrets(context, request) {
        const progress = await masterKeys.rewrap(context, { batchSize: request.batchSize, maxBatches: request.maxBatches });
        return { ...progress, keys: progress.keys.map(toUsage) };
      },
      async listMasterKeys(context) {
        const { currentKeyId, keys } = await masterKeys.listKeys(context);
        return { currentKeyId, keys: keys.map(toUsage) };
      },
    },
    { public: ['getHealth'] },
  );
}

function toUsage(usage: MasterKeyUsage): MasterKeyUsageMessage {
  return { ...usage };
}
