/**
 * `npm run bench:galera`: write throughput on a real 3-node MariaDB Galera cluster started on
 * loopback (test/support/throwaway-galera.ts; needs galera-4 and rsync), one vault instance per
 * node, against the same load on one node. 32 writes in flight for BENCH_SECONDS (default 8):
 *  - disjoint paths: every write to a path of its own writer;
 *  - one hot path: every writer on the same path (the worst case for certification).
 * Prints writes/s, p50/p99, failures by code and the instances' conflict retries.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { startGaleraCluster, type GaleraNode } from '../test/support/throwaway-galera.js';
import { startTestApp, unary, type TestApp } from '../test/support/test-app.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const IN_FLIGHT = 32;

const cluster = await startGaleraCluster(3);
try {
  const results = [];
  for (const [label, nodes] of [
    ['1 node, 1 instance', [cluster.nodes[0]!]],
    ['3 nodes, 1 instance each', cluster.nodes],
  ] as const) {
    for (const hot of [false, true]) results.push({ setup: label, paths: hot ? 'one hot path' : 'disjoint', ...(await run(nodes, hot)) });
  }
  console.table(results);
} finally {
  await cluster.stop();
}

async function run(nodes: readonly GaleraNode[], hot: boolean) {
  const database = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await createConnection(nodes[0]!.url);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const apps: TestApp[] = [];
  for (const node of nodes) apps.push(await startTestApp({ VAULT_DATABASE_URL: node.url + database, VAULT_LOG_LEVEL: 'warn', VAULT_DATABASE_POOL_SIZE: '16' }));
  try {
    const first = apps[0]!;
    const { vault } = await unary(first.clients.vaults, first.clients.vaults.createVault, { name: 'bench', description: '' }, first.auth());
    const latencies: number[] = [];
    const failures: Record<string, number> = {};
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, w) => {
        const t = apps[w % apps.length]!;
        for (let i = 0; Date.now() < until; i++) {
          const started = performance.now();
          const path = hot ? 'hot' : `w${w}/s${i % 50}`;
          try {
            await unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId: vault!.id, path, value: `v${i}`, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, t.auth(), { deadline: Date.now() + 30_000 });
            latencies.push(performance.now() - started);
          } catch (error) {
            const code = String((error as { code?: unknown }).code);
            failures[code] = (failures[code] ?? 0) + 1;
          }
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]?.toFixed(1);
    const retries = (await Promise.all(apps.map((t) => conflictRetries(t)))).reduce((a, b) => a + b, 0);
    return { 'writes/s': Math.round(latencies.length / SECONDS), 'p50 ms': at(0.5), 'p99 ms': at(0.99), failures: JSON.stringify(failures), 'conflict retries': retries };
  } finally {
    await Promise.all(apps.map((t) => t.close()));
  }
}

/** The instance's own count of transactions run again after a deadlock / certification failure. */
async function conflictRetries(t: TestApp): Promise<number> {
  const text = (await t.http('GET', '/metrics')).text;
  return [...text.matchAll(/^vault_db_transaction_retries_total\{cause="deadlock"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}
