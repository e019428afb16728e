// A throwaway MariaDB Galera cluster for tests: N mariadbd nodes from Debian's galera-4 on
// loopback, each on its own free ports and temporary datadir, root without a password over TCP.
// The first node bootstraps the cluster; the others join it one at a time by rsync SST.
// Every process runs in its own process group, so stop() (and the exit safety net) also ends the
// SST helpers (rsync, wsrep_sst_rsync) a node may have running.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants as fsConstants, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { findServerBinaries, freePort, tail } from './throwaway-mariadb.js';

const execFileAsync = promisify(execFile);
const PROVIDER = process.env.VAULT_TEST_GALERA_PROVIDER ?? '/usr/lib/galera/libgalera_smm.so';
/** A joiner copies the donor's datadir by rsync: generous, the machine may be busy. */
const SYNCED_TIMEOUT_MS = 150_000;
const STOP_TIMEOUT_MS = 30_000;

export interface GaleraNode {
  /** 1-based. */
  index: number;
  /** Server-level URL, `mysql://root@127.0.0.1:<port>/`; stays valid across kill() and start(). */
  url: string;
  port: number;
  /** SIGKILL the node (and its SST helpers); resolves once it has exited. */
  kill(): Promise<void>;
  /** Starts a stopped node again; it rejoins (by SST) and this resolves once it is Synced. */
  start(): Promise<void>;
  /** Spawns the node without waiting; `waitSynced` then waits. For watching a rejoin. */
  spawn(): void;
  waitSynced(timeoutMs?: number): Promise<void>;
  /** `wsrep_local_state_comment` (e.g. Synced, Joining, Donor/Desynced), or null if unreachable. */
  state(): Promise<string | null>;
  running(): boolean;
}

export interface GaleraCluster {
  nodes: GaleraNode[];
  dir: string;
  /** Stops every node (SIGTERM, then SIGKILL) and removes the datadirs. Idempotent. */
  stop(): Promise<void>;
}

/** Why a cluster cannot be started here, or null when galera-4 and mariadbd are installed. */
export function galeraUnavailableReason(): string | null {
  const bin = findServerBinaries();
  if (!bin || !bin.installDb || !bin.server.endsWith('mariadbd')) return 'no mariadbd / mariadb-install-db on PATH';
  try {
    accessSync(PROVIDER, fsConstants.R_OK);
  } catch {
    return `no Galera provider at ${PROVIDER} (apt-get install galera-4)`;
  }
  for (const tool of ['rsync']) {
    const found = (process.env.PATH ?? '').split(':').some((dir) => {
      try {
        accessSync(join(dir, tool), fsConstants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (!found) return `no ${tool} on PATH (Galera's rsync SST needs it)`;
  }
  return null;
}

export async function startGaleraCluster(size = 3): Promise<GaleraCluster> {
  const reason = galeraUnavailableReason();
  if (reason) throw new Error(`[vault-test-galera] ${reason}`);
  const bin = findServerBinaries()!;
  const dir = await mkdtemp(join(tmpdir(), 'vault-test-galera-'));
  // mariadbd drops to the mysql user when started as root; it must be able to reach its datadir.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chmodSync(dir, 0o755);
  const userArgs = asRoot ? ['--user=mysql'] : [];
  const owner = asRoot ? await mysqlUser() : undefined;

  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), gcomm: await freePort(), ist: await freePort(), sst: await freePort() })));
  const clusterAddress = `gcomm://${ports.map((p) => `127.0.0.1:${p.gcomm}`).join(',')}`;
  const nodes: Array<ReturnType<typeof makeNode>> = [];
  const cleanup = () => {
    for (const node of nodes) node.kill().catch(() => {});
  };

  try {
    await Promise.all(
      ports.map(async (_, i) => {
        const home = join(dir, `node${i + 1}`);
        const datadir = join(home, 'data');
        // Its own tmpdir: servers sharing /tmp can trip over each other's temporary tables.
        await mkdir(join(home, 'tmp'), { recursive: true });
        if (owner) {
          await chown(home, owner.uid, owner.gid);
          await chown(join(home, 'tmp'), owner.uid, owner.gid);
        }
        await execFileAsync(bin.installDb!, [
          '--no-defaults',
          `--datadir=${datadir}`,
          `--tmpdir=${join(home, 'tmp')}`,
          '--auth-root-authentication-method=normal',
          '--skip-test-db',
          '--skip-name-resolve',
          ...userArgs,
        ]);
      }),
    );

    for (let i = 0; i < size; i++) {
      nodes.push(makeNode(i + 1, join(dir, `node${i + 1}`), ports[i]!, clusterAddress, bin.server, userArgs));
    }
    process.once('exit', cleanup);
    // The first bootstraps; each other joins once the cluster before it is Synced (one SST at a time).
    nodes[0]!.spawnBootstrap();
    await nodes[0]!.waitSynced();
    for (const node of nodes.slice(1)) await node.start();
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stopNode().catch(() => {})));
    process.off('exit', cleanup);
    const logs = nodes.map((n) => `--- node ${n.index} ---\n${tail(join(dir, `node${n.index}`, 'error.log'))}`).join('\n');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`[vault-test-galera] starting a ${size}-node cluster failed: ${(error as Error).message}\n${logs}`, { cause: error });
  }

  let stopped = false;
  return {
    nodes,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((n) => n.stopNode()));
      process.off('exit', cleanup);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type Ports = { client: number; gcomm: number; ist: number; sst: number };

function makeNode(index: number, home: string, ports: Ports, clusterAddress: string, server: string, userArgs: string[]): GaleraNode & { spawnBootstrap(): void; stopNode(): Promise<void> } {
  const url = `mysql://root@127.0.0.1:${ports.client}/`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let alive = false;

  const launch = (bootstrap: boolean) => {
    if (alive) throw new Error(`[vault-test-galera] node ${index} is already running`);
    const args = [
      '--no-defaults',
      ...userArgs,
      `--datadir=${join(home, 'data')}`,
      `--tmpdir=${join(home, 'tmp')}`,
      `--socket=${join(home, 'sock')}`,
      `--pid-file=${join(home, 'mariadbd.pid')}`,
      `--log-error=${join(home, 'error.log')}`,
      `--port=${ports.client}`,
      '--bind-address=127.0.0.1',
      '--port-open-timeout=10',
      '--innodb-buffer-pool-size=64M',
      '--innodb-log-file-size=16M',
      '--binlog_format=ROW',
      '--innodb_autoinc_lock_mode=2',
      '--wsrep_on=ON',
      `--wsrep_provider=${PROVIDER}`,
      `--wsrep_cluster_address=${clusterAddress}`,
      `--wsrep_node_address=127.0.0.1:${ports.gcomm}`,
      `--wsrep_provider_options=gmcast.listen_addr=tcp://127.0.0.1:${ports.gcomm};ist.recv_addr=127.0.0.1:${ports.ist};gcache.size=64M`,
      '--wsrep_sst_method=rsync',
      `--wsrep_sst_receive_address=127.0.0.1:${ports.sst}`,
      ...(bootstrap ? ['--wsrep-new-cluster'] : []),
    ];
    const started = spawn(server, args, { stdio: 'ignore', detached: true });
    child = started;
    alive = true;
    exited = new Promise<void>((resolve) => {
      started.once('exit', () => ((alive = false), resolve()));
      started.once('error', () => ((alive = false), resolve()));
    });
  };

  const killGroup = (signal: NodeJS.Signals) => {
    if (!child?.pid) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };

  const state = async (): Promise<string | null> => {
    try {
      const connection = await createConnection({ uri: url, connectTimeout: 2_000 });
      try {
        const [rows] = await connection.query("SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'");
        return String((rows as Array<{ Value: string }>)[0]?.Value ?? '');
      } finally {
        await connection.end().catch(() => {});
      }
    } catch {
      return null;
    }
  };

  const waitSynced = async (timeoutMs = SYNCED_TIMEOUT_MS) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!alive) throw new Error(`node ${index} exited while starting\n${tail(join(home, 'error.log'))}`);
      if ((await state()) === 'Synced') return;
      if (Date.now() > deadline) throw new Error(`node ${index} not Synced after ${timeoutMs} ms\n${tail(join(home, 'error.log'))}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };

  return {
    index,
    url,
    port: ports.client,
    running: () => alive,
    state,
    waitSynced,
    spawnBootstrap: () => launch(true),
    spawn: () => launch(false),
    async start() {
      launch(false);
      await waitSynced();
    },
    async kill() {
      killGroup('SIGKILL');
      await exited;
    },
    async stopNode() {
      if (!alive) {
        killGroup('SIGKILL'); // SST helpers of a node that died may still run
        return;
      }
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      killGroup('SIGKILL');
    },
  };
}

async function mysqlUser(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await execFileAsync('id', [flag, 'mysql'])).stdout.trim());
  try {
    return { uid: await id('-u'), gid: await id('-g') };
  } catch (error) {
    throw new Error('[vault-test-galera] running as root needs a "mysql" user for mariadbd to run as', { cause: error });
  }
}

