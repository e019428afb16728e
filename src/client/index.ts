// The vault's TypeScript SDK: `import { createVaultClient } from 'vault/client'`.
export { createVaultClient, StatusCode } from './vault-client.js';
export type { CallOptions, RetryOptions, TlsOptions, VaultClient, VaultClientOptions } from './vault-client.js';
export type { Credentials } from './credentials.js';
export type { WatchOptions } from './watch.js';
export * from './errors.js';
export { allPages } from './pages.js';
export type * from '../gen/vault/v1/secret_service.js';
