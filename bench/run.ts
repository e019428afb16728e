/**
 * Measures the service end to end through a real gRPC client: put, get (unlimited), get with a
 * read budget, rotate; and, on MySQL, one bare `SELECT 1` round trip for comparison.
 *
 *   npm run bench                                        # in-memory storage
 *   VAULT_BENCH_DATABASE_URL=mysql://u:p@127.0.0.1:3306/vault_bench npm run bench
 *
 * Bounded: each case runs for BENCH_SECONDS (default 3) at BENCH_CONCURRENCY (default 16)
 * against 127.0.0.1 only. Prints one line per case: throughput and latency percentiles.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { Writable } from 'node:stream';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { SecretServiceClient } from '../src/gen/vault/v1/secret_service.js';
import { VaultServiceClient } from '../src/gen/vault/v1/vault_service.js';
import { createLogger } from '../src/logger.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const databaseUrl = process.env.VAULT_BENCH_DATABASE_URL;
const token = 'bench-root-token-0123456789';

function call<Req, Res>(client: object, method: (...args: never[]) => unknown, request: Req, metadata: Metadata): Promise<Res> {
  return new Promise((resolve, reject) =>
    (method as unknown as (r: Req, m: Metadata, o: object, cb: (e: Error | null, r: Res) => void) => void).call(client, request, metadata, {}, (e, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
}

async function measure(name: string, operation: (i: number) => Promise<unknown>) {
  const latencies: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  let errors = 0;
  let counter = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const started = performance.now();
        try {
          await operation(counter++);
          latencies.push(performance.now() - started);
        } catch {
          errors++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2);
  console.log(
    `${name.padEnd(28)} ${(latencies.length / seconds).toFixed(0).padStart(7)} ops/s  p50 ${at(0.5)} ms  p99 ${at(0.99)} ms  errors ${errors}`,
  );
}

async function main() {
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const config = loadConfig({
    VAULT_GRPC_PORT: '0',
    VAULT_HTTP_PORT: '0',
    VAULT_ROOT_TOKEN: token,
    VAULT_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'),
    VAULT_DATABASE_POOL_SIZE: String(concurrency),
    ...(databaseUrl ? { VAULT_DATABASE_URL: databaseUrl } : {}),
  });
  const app = await startApp(config, createLogger('silent', sink));
  const address = `127.0.0.1:${app.grpcPort}`;
  const secrets = new SecretServiceClient(address, credentials.createInsecure());
  const vaults = new VaultServiceClient(address, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  console.log(`storage: ${databaseUrl ? 'mysql' : 'memory'}, concurrency ${concurrency}, ${seconds} s per case`);

  const { vault } = await call<object, { vault: { id: string } }>(vaults, vaults.createVault, { name: 'bench', description: '' }, metadata);
  const put = (path: string, maxAccessCount = 0) =>
    call(secrets, secrets.putSecret, { vaultId: vault.id, path, value: 'x'.repeat(1024), type: '', metadata: undefined, expiresAt: undefined, maxAccessCount }, metadata);
  await put('bench/read');
  await put('bench/budget', 1_000_000_000);

  if (databaseUrl) {
    const connection = await createConnection(databaseUrl);
    await measure('mysql SELECT 1 (1 conn)', () => connection.query('SELECT 1'));
    await connection.end();
  }
  await measure('GetSecret (unlimited)', () => call(secrets, secrets.getSecret, { vaultId: vault.id, path: 'bench/read' }, metadata));
  await measure('GetSecret (read budget)', () => call(secrets, secrets.getSecret, { vaultId: vault.id, path: 'bench/budget' }, metadata));
  const http = `http://127.0.0.1:${app.httpPort}/v1/vaults/${vault.id}/secrets/bench/read`;
  await measure('GET secret over HTTP', async () => {
    const response = await fetch(http, { headers: { authorization: `Bearer ${token}` } });
    if (response.status !== 200) throw new Error(String(response.status));
    await response.arrayBuffer();
  });
  await measure('PutSecret (1 KiB, one path)', () => put('bench/hot'));
  await measure('PutSecret (1 KiB, many paths)', (i) => put(`bench/many/${i}`));
  await measure('RotateSecret', () =>
    call(secrets, secrets.rotateSecret, { vaultId: vault.id, path: 'bench/read', length: 32, charset: 'hex', type: '', metadata: undefined }, metadata),
  );

  secrets.close();
  vaults.close();
  await app.stop();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
