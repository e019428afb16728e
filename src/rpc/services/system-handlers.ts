import { SystemServiceService } from '../../gen/vault/v1/system_service.js';
import type { Storage } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.SystemService: public, so load balancers can probe it without a token. */
export function systemServiceMethods({ storage, version }: { storage: Storage; version: string }) {
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
    },
    { public: ['getHealth'] },
  );
}
