/**
 * `npm run bench`: the vault against a bare reference server (bench/reference-server.ts) on the
 * same MariaDB, in one run, as ratios so the machine's noise mostly cancels.
 *
 * Both servers run as their own processes on 127.0.0.1; this process only generates load
 * (BENCH_IN_FLIGHT calls in flight, default 32, for BENCH_SECONDS per case, default 8, in
 * one-second slices taken in turn across the cases after a warm-up round). The database is
 * VAULT_BENCH_DATABASE_URL (a server URL; two databases are created in it) or else a throwaway
 * MariaDB started for the run (test/support/throwaway-mariadb.ts).
 * Prints a table and the issue's ratios, and writes them to bench/results/latest.json.
 */
import { ChannelCredentials, Metadata } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { AgentServiceClient } from '../src/gen/vault/v1/agent_service.js';
import { AuthServiceClient } from '../src/gen/vault/v1/auth_service.js';
import { PolicyServiceClient } from '../src/gen/vault/v1/policy_service.js';
import { SecretServiceClient } from '../src/gen/vault/v1/secret_service.js';
import { VaultServiceClient } from '../src/gen/vault/v1/vault_service.js';
import { freePort, startThrowawayMariadb } from '../test/support/throwaway-mariadb.js';
import { unary } from '../test/support/test-app.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const POOL_SIZE = String(process.env.BENCH_POOL_SIZE ?? 16);
const LARGE_VAULT = Number(process.env.BENCH_LARGE_VAULT ?? 20_000);
const SMALL_VAULT = Number(process.env.BENCH_SMALL_VAULT ?? 1_000);
const LONG_HISTORY = Number(process.env.BENCH_LONG_HISTORY ?? 3_000);
const ROOT_TOKEN = `bench-root-${randomBytes(12).toString('hex')}`;
const VALUE = 'v'.repeat(64);

interface Result {
  case: string;
  server: 'reference' | 'vault';
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** The server process's CPU time (user + system) per successful call. */
  serverCpuMsPerCall: number;
  /** The database server's CPU time per successful call (when it runs on this machine). */
  databaseCpuMsPerCall: number;
  errors: number;
  firstError?: string;
}

const throwaway = process.env.VAULT_BENCH_DATABASE_URL ? undefined : await startThrowawayMariadb();
const serverUrl = process.env.VAULT_BENCH_DATABASE_URL ?? throwaway!.url;
const children: ChildProcess[] = [];
const rss = { maxMiB: 0, sampling: false };
const suffix = randomBytes(4).toString('hex');
const databases = ['ref', 'vault'].map((name) => `bench_${name}_${suffix}`);
try {
  await main();
} finally {
  for (const child of children) child.kill('SIGKILL');
  if (throwaway) await throwaway.stop();
  else await dropDatabases();
}

/** On a server that outlives the run, leave nothing behind. */
async function dropDatabases() {
  const admin = await createConnection(serverUrl);
  for (const database of databases) await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.end();
}

async function main() {
  const admin = await createConnection(serverUrl);
  for (const database of databases) await admin.query(`CREATE DATABASE ${database}`);
  const [[durability]] = (await admin.query('SELECT @@innodb_flush_log_at_trx_commit AS flush, @@sync_binlog AS sync_binlog, @@version AS version')) as unknown as [[Record<string, unknown>]];
  await admin.end();

  const refPort = await freePort();
  const referenceProcess = await spawnServer('reference', ['bench/reference-server.ts'], { REF_DATABASE_URL: `${serverUrl}${databases[0]}`, REF_PORT: String(refPort), REF_POOL_SIZE: POOL_SIZE }, refPort);
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const vaultProcess = await spawnServer(
    'vault',
    ['src/main.ts'],
    {
      VAULT_DATABASE_URL: `${serverUrl}${databases[1]}`,
      VAULT_DATABASE_POOL_SIZE: POOL_SIZE,
      VAULT_GRPC_PORT: String(grpcPort),
      VAULT_HTTP_PORT: String(httpPort),
      VAULT_ROOT_TOKEN: ROOT_TOKEN,
      VAULT_MASTER_KEY: randomBytes(32).toString('base64'),
      VAULT_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    },
    grpcPort,
  );
  if (!(await accepts(httpPort))) throw new Error('the vault serves gRPC but not HTTP');

  const insecure = ChannelCredentials.createInsecure();
  const reference = new SecretServiceClient(`127.0.0.1:${refPort}`, insecure);
  const address = `127.0.0.1:${grpcPort}`;
  const secrets = new SecretServiceClient(address, insecure);
  const root = bearer(ROOT_TOKEN);

  // --- Seeding, all through the vault's own API -------------------------------------------------
  const vaultsClient = new VaultServiceClient(address, insecure);
  const createVault = async (name: string) => (await unary(vaultsClient, vaultsClient.createVault, { name, description: '' }, root)).vault!.id;
  const [small, large] = [await createVault('small'), await createVault('large')];
  const put = (vaultId: string, path: string, maxAccessCount = 0) =>
    unary(secrets, secrets.putSecret, { vaultId, path, type: 'generic', value: VALUE, metadata: undefined, expiresAt: undefined, maxAccessCount, rotationPolicy: undefined }, root);
  const seeded = performance.now();
  await put(small, 'bench/one');
  await put(small, 'bench/budget', 2_000_000_000);
  await inParallel(LONG_HISTORY, () => put(small, 'bench/history'));
  await inParallel(SMALL_VAULT, (i) => put(small, pathOf(i)));
  await inParallel(LARGE_VAULT, (i) => put(large, pathOf(i)));
  await unary(reference, reference.putSecret, { vaultId: small, path: 'bench/one', type: '', value: VALUE, metadata: undefined, expiresAt: undefined, maxAccessCount: 0, rotationPolicy: undefined }, root);
  const agentToken = await agentFor(address, small, root);
  console.log(`seeded in ${((performance.now() - seeded) / 1000).toFixed(1)} s: ${SMALL_VAULT} + ${LARGE_VAULT} secrets, a path of ${LONG_HISTORY} versions`);

  // --- Cases --------------------------------------------------------------------------------------
  const results: Result[] = [];
  // BENCH_CASES=<regexp>: only the cases whose name matches (e.g. for a profile of one of them).
  const only = process.env.BENCH_CASES ? new RegExp(process.env.BENCH_CASES) : undefined;
  const skipped = (name: string): Result => ({ case: name, server: 'vault', opsPerSecond: Number.NaN, p50Ms: Number.NaN, p99Ms: Number.NaN, serverCpuMsPerCall: Number.NaN, databaseCpuMsPerCall: Number.NaN, errors: 0 });
  // Cases are registered first and then measured in interleaved one-second slices (round robin,
  // BENCH_SECONDS rounds after one warm-up round), so a burst of load elsewhere on the machine
  // falls on every case alike instead of on whichever ran at that moment.
  const cases: Case[] = [];
  const run = (name: string, server: Result['server'], operation: (i: number) => Promise<unknown>): Case => {
    const c: Case = { name, server, operation, latencies: [], errors: 0, counter: 0, cpuMs: 0, databaseCpuMs: 0 };
    if (!only || only.test(name)) cases.push(c);
    return c;
  };
  const get = (client: SecretServiceClient, vaultId: string, path: string, metadata: Metadata) => unary(client, client.getSecret, { vaultId, path }, metadata);
  const rest = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const restGet = (path: string, token: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: httpPort, agent: rest, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  const refRead = run('read: reference', 'reference', () => get(reference, small, 'bench/one', root));
  const read = run('read: GetSecret gRPC, root', 'vault', () => get(secrets, small, 'bench/one', root));
  const history = run(`read: path of ${LONG_HISTORY} versions`, 'vault', () => get(secrets, small, 'bench/history', root));
  const restRead = run('read: GetSecret REST, root', 'vault', () => restGet(`/v1/vaults/${small}/secrets/bench/one`, ROOT_TOKEN));
  const agentRead = run('read: GetSecret gRPC, agent', 'vault', () => get(secrets, small, 'bench/one', bearer(agentToken)));
  const budget = run('read: with a read budget', 'vault', () => get(secrets, small, 'bench/budget', root));
  const smallVault = run(`read: random path, vault of ${SMALL_VAULT}`, 'vault', () => get(secrets, small, pathOf(randomBelow(SMALL_VAULT)), root));
  const largeVault = run(`read: random path, vault of ${LARGE_VAULT}`, 'vault', () => get(secrets, large, pathOf(randomBelow(LARGE_VAULT)), root));
  const refWrite = run('write: reference', 'reference', (i) =>
    unary(reference, reference.putSecret, { vaultId: small, path: `bench/w/${i % IN_FLIGHT}`, type: '', value: VALUE, metadata: undefined, expiresAt: undefined, maxAccessCount: 0, rotationPolicy: undefined }, root),
  );
  const write = run('write: PutSecret gRPC, root', 'vault', (i) => put(small, `bench/w/${i % IN_FLIGHT}`));

  const databasePid = localDatabasePid(serverUrl);
  const sampler = setInterval(() => rss.sampling && sampleRss(vaultProcess.pid!), 200);
  for (let round = 0; round <= SECONDS; round++) {
    for (const c of cases) {
      rss.sampling = c.server === 'vault';
      const pid = (c.server === 'vault' ? vaultProcess : referenceProcess).pid!;
      const cpuBefore = cpuMsOf(pid);
      const databaseCpuBefore = databasePid === undefined ? 0 : cpuMsOf(databasePid);
      await slice(c, round > 0);
      if (round > 0) c.cpuMs += cpuMsOf(pid) - cpuBefore;
      if (round > 0 && databasePid !== undefined) c.databaseCpuMs += cpuMsOf(databasePid) - databaseCpuBefore;
    }
  }
  clearInterval(sampler);
  const summary = new Map(cases.map((c) => [c, summarize(c)]));
  for (const result of summary.values()) {
    console.log(`${result.case.padEnd(40)} ${String(result.opsPerSecond).padStart(6)}/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  cpu ${result.serverCpuMsPerCall} ms/call  db cpu ${result.databaseCpuMsPerCall} ms/call  errors ${result.errors}${result.firstError ? ` (${result.firstError})` : ''}`);
    results.push(result);
  }
  const of = (c: Case): Result => summary.get(c) ?? skipped(c.name);
  const ratio = (a: Case, b: Case) => Number((of(a).opsPerSecond / of(b).opsPerSecond).toFixed(2));
  const p99Ratio = (a: Case, b: Case) => Number((of(a).p99Ms / of(b).p99Ms).toFixed(2));
  const ratios = {
    'GetSecret / reference read (>= 0.6)': ratio(read, refRead),
    'GetSecret p99 / reference p99 (<= 2)': p99Ratio(read, refRead),
    'PutSecret / reference write (>= 0.7)': ratio(write, refWrite),
    'PutSecret p99 / reference p99 (<= 2)': p99Ratio(write, refWrite),
    [`${LONG_HISTORY} versions / 1 version (>= 0.9)`]: ratio(history, read),
    [`vault of ${LARGE_VAULT} / of ${SMALL_VAULT} (>= 0.9)`]: ratio(largeVault, smallVault),
    'REST / gRPC (>= 0.8)': ratio(restRead, read),
    'agent / root (>= 0.85)': ratio(agentRead, read),
    'budgeted / unlimited read': ratio(budget, read),
  };
  console.log('\nratios');
  console.table(ratios);
  console.log(`vault RSS under load: max ${rss.maxMiB} MiB`);
  const report = {
    at: new Date().toISOString(),
    settings: { seconds: SECONDS, inFlight: IN_FLIGHT, poolSize: Number(POOL_SIZE), database: durability, cpus: (await import('node:os')).cpus().length },
    results,
    ratios,
    vaultMaxRssMiB: rss.maxMiB,
  };
  // Only a full run replaces the recorded results (the README's table comes from them).
  if (!only) {
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/latest.json', `${JSON.stringify(report, null, 2)}\n`);
    console.log('written to bench/results/latest.json');
  }
  rest.destroy();
  for (const client of [reference, secrets, vaultsClient]) client.close();
  // A clean stop, so a profiling vault writes its profile.
  await Promise.all([stopGracefully(vaultProcess), stopGracefully(referenceProcess)]);
}

function stopGracefully(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function pathOf(i: number) {
  return `bench/many/${String(i).padStart(6, '0')}`;
}

function randomBelow(n: number) {
  return Math.floor(Math.random() * n);
}

function bearer(token: string) {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

/** An agent allowed to read everything in the vault, and a token for it. */
async function agentFor(address: string, vaultId: string, root: Metadata): Promise<string> {
  const insecure = ChannelCredentials.createInsecure();
  const agents = new AgentServiceClient(address, insecure);
  const policies = new PolicyServiceClient(address, insecure);
  const auth = new AuthServiceClient(address, insecure);
  const created = await unary(agents, agents.createAgent, { name: 'bench-agent', description: '', scopes: [], expiresAt: undefined }, root);
  await unary(policies, policies.createPolicy, { vaultId, secretPathPattern: '**', principalType: 'agent', principalId: created.agent!.id, permissions: ['read'], conditions: undefined, expiresAt: undefined, effect: 'allow', priority: 0 }, root);
  const token = await unary(auth, auth.createAgentToken, { agentId: created.agent!.id, apiKey: created.apiKey });
  for (const client of [agents, policies, auth]) client.close();
  return token.accessToken;
}

async function inParallel(count: number, operation: (i: number) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < count) await operation(next++);
  }));
}

interface Case {
  name: string;
  server: Result['server'];
  operation: (i: number) => Promise<unknown>;
  latencies: number[];
  errors: number;
  firstError?: string;
  counter: number;
  cpuMs: number;
  databaseCpuMs: number;
}

/** One second of a case at IN_FLIGHT calls in flight; `record` false for the warm-up round. */
async function slice(c: Case, record: boolean): Promise<void> {
  const stopAt = performance.now() + 1000;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < stopAt) {
      const started = performance.now();
      try {
        await c.operation(c.counter++);
        if (record) c.latencies.push(performance.now() - started);
      } catch (error) {
        if (!record) continue;
        c.errors++;
        c.firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  }));
}

function summarize(c: Case): Result {
  const latencies = [...c.latencies].sort((a, b) => a - b);
  const at = (q: number) => Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2));
  const perCall = (ms: number) => Number((ms / Math.max(1, latencies.length)).toFixed(3));
  return { case: c.name, server: c.server, opsPerSecond: Math.round(latencies.length / SECONDS), p50Ms: at(0.5), p99Ms: at(0.99), serverCpuMsPerCall: perCall(c.cpuMs), databaseCpuMsPerCall: perCall(c.databaseCpuMs), errors: c.errors, ...(c.firstError ? { firstError: c.firstError } : {}) };
}

/** A process's CPU time so far (utime + stime from /proc), in ms. */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 0, utime 11, stime 12, in clock ticks (100 per second on Linux).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/**
 * The MariaDB server's pid when the bench database runs on this machine (the throwaway one, or a
 * loopback server found by its process name), so its CPU per call can be reported too.
 */
function localDatabasePid(url: string): number | undefined {
  if (throwaway) return Number(readFileSync(join(throwaway.dir, 'mariadbd.pid'), 'utf8').trim());
  if (!/@(127\.0\.0\.1|localhost)[:/]/.test(url)) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (/^(mariadbd|mysqld)$/.test(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

function sampleRss(pid: number) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match) rss.maxMiB = Math.max(rss.maxMiB, Math.round(Number(match[1]) / 1024));
}

/**
 * Starts `node --import tsx <args>` with its output in a log file (the vault logs every call; a
 * pipe to this process would make the load generator pay for reading it) and resolves once it
 * accepts connections on `port`.
 */
async function spawnServer(name: string, args: string[], env: Record<string, string>, port: number): Promise<ChildProcess> {
  const log = openSync(join(tmpdir(), `bench-${name}-${process.pid}.log`), 'w');
  // BENCH_CPU_PROF=<dir>: the vault writes a V8 CPU profile there when it stops (node --cpu-prof).
  const profile = name === (process.env.BENCH_CPU_PROF_SERVER ?? 'vault') && process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', log, 'inherit'] });
  children.push(child);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  for (let tries = 0; ; tries++) {
    if (exited !== undefined) throw new Error(`${name} server exited with ${exited} before it was ready`);
    if (await accepts(port)) return child;
    if (tries > 600) throw new Error(`${name} server did not listen on ${port} within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
