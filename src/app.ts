import { randomBytes } from 'node:crypto';
import { createRootOnlyAccessControl } from './auth/access-control.js';
import { createRootTokenAuthenticator } from './auth/authenticator.js';
import type { Config } from './config.js';
import { createBarrier } from './crypto/barrier.js';
import { checkKeysAgainstStorage } from './crypto/key-check.js';
import { createKeyring } from './crypto/keyring.js';
import { createSecretService } from './domain/secret-service.js';
import { createVaultService } from './domain/vault-service.js';
import type { Logger } from './logger.js';
import type { ApiMethod } from './rpc/api-method.js';
import { loadDescriptorSetBytes } from './rpc/descriptors.js';
import { createGrpcServer } from './rpc/grpc-server.js';
import { createInvoker } from './rpc/invoker.js';
import { secretServiceMethods } from './rpc/services/secret-handlers.js';
import { systemServiceMethods } from './rpc/services/system-handlers.js';
import { vaultServiceMethods } from './rpc/services/vault-handlers.js';
import { createMemoryStorage } from './storage/memory/memory-store.js';
import type { Storage } from './storage/storage.js';
import { VERSION } from './version.js';

export interface App {
  readonly grpcPort: number;
  /** The root token in force (generated in dev mode when none was configured). */
  readonly rootToken: string;
  /** True when running on in-memory storage. */
  readonly devMode: boolean;
  readonly methods: readonly ApiMethod[];
  /** Stops accepting calls, finishes in-flight ones, closes storage. */
  stop(): Promise<void>;
}

/** The composition root: the only place concrete implementations are chosen and wired. */
export async function startApp(config: Config, logger: Logger): Promise<App> {
  const devMode = config.databaseUrl === undefined;
  const storage = await openStorage(config, logger);
  try {
    const keyring = createKeyring(config.masterKey ?? randomBytes(32), config.oldMasterKeys);
    const barrier = createBarrier(keyring);
    await checkKeysAgainstStorage(keyring, barrier, storage.keyCanaries);

    const rootToken = config.rootToken ?? randomBytes(24).toString('base64url');
    const now = () => new Date();
    const access = createRootOnlyAccessControl();
    const vaults = createVaultService({ storage, access, now });
    const secrets = createSecretService({ storage, barrier, access, vaults, now, maxValueBytes: config.maxValueBytes });

    const methods = [
      ...vaultServiceMethods(vaults),
      ...secretServiceMethods(secrets),
      ...systemServiceMethods({ storage, version: VERSION }),
    ];
    const invoke = createInvoker({ authenticator: createRootTokenAuthenticator(rootToken), logger });
    const grpc = createGrpcServer({ methods, invoke, descriptorSet: loadDescriptorSetBytes() });
    const grpcPort = await grpc.listen(config.host, config.grpcPort);

    return {
      grpcPort,
      rootToken,
      devMode,
      methods,
      async stop() {
        grpc.health.setStatus('', 'NOT_SERVING');
        await grpc.shutdown(config.shutdownGraceMs);
        await storage.close();
      },
    };
  } catch (error) {
    await storage.close();
    throw error;
  }
}

async function openStorage(config: Config, logger: Logger): Promise<Storage> {
  if (config.databaseUrl === undefined) return createMemoryStorage();
  // Loaded only when configured, so dev mode does not need the MySQL driver to initialise.
  const { createMysqlStorage } = await import('./storage/mysql/mysql-store.js');
  return createMysqlStorage({ url: config.databaseUrl, poolSize: config.databasePoolSize, logger });
}
