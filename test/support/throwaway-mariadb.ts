// A throwaway MariaDB (or MySQL) server for tests: a fresh temporary datadir, a free port on
// 127.0.0.1, root without a password over TCP. Used by global-setup.ts for the shared server, and
// directly by tests that crash and restart their own server (never the shared one).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';

const execFileAsync = promisify(execFile);
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

export interface ServerBinaries {
  server: string;
  /** mariadb-install-db / mysql_install_db; absent for Oracle MySQL, which has `--initialize-insecure`. */
  installDb: string | undefined;
}

export interface ThrowawayMariadb {
  /** Server-level URL, `mysql://root@127.0.0.1:<port>/`; stays valid across kill() and restart(). */
  url: string;
  port: number;
  /** Temporary directory holding the datadir, socket, pid file and error logs. */
  dir: string;
  /** Clean shutdown (SIGTERM, escalating to SIGKILL) and removal of the datadir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL: a crash, no InnoDB shutdown. Resolves once the process has exited. */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port and datadir (InnoDB crash recovery runs if it was
   * killed) and resolves once it accepts connections. A running server is stopped cleanly first.
   */
  restart(): Promise<void>;
}

export interface ThrowawayOptions {
  /** PEM files for the server's TLS (`--ssl-ca`, `--ssl-cert`, `--ssl-key`); unset: no TLS, as the system server. */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

export function findServerBinaries(): ServerBinaries | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin'];
  const find = (names: string[], extraDirs: string[] = []): string | undefined => {
    for (const name of names) {
      for (const dir of [...extraDirs, ...dirs]) {
        const candidate = join(dir, name);
        try {
          accessSync(candidate, fsConstants.X_OK);
          return candidate;
        } catch {
          // not here
        }
      }
    }
    return undefined;
  };
  const server = find(['mariadbd', 'mysqld']);
  if (!server) return undefined;
  // Prefer the install script that sits beside the server's installation (e.g. /usr/sbin -> /usr/bin).
  const installDb = find(['mariadb-install-db', 'mysql_install_db'], [dirname(server), join(dirname(server), '../bin')]);
  return { server, installDb };
}

/** One mariadbd process. `gone` covers a normal exit, a kill and a failed spawn alike. */
interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  gone(): boolean;
  /** Safety net: if the test process dies without cleaning up, don't leave the server behind. */
  killOnExit(): void;
}

export async function startThrowawayMariadb(bin: ServerBinaries | undefined = findServerBinaries(), options: ThrowawayOptions = {}): Promise<ThrowawayMariadb> {
  if (!bin) throw new Error('[vault-test-db] no mariadbd/mysqld binary on PATH, /usr/sbin or /usr/bin');
  const dir = await mkdtemp(join(tmpdir(), 'vault-test-db-'));
  const datadir = join(dir, 'data');
  // mariadbd refuses to run as root unless told to; as anyone else --user would be an error.
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  // Small InnoDB files keep install and start well under a second; binlogs are useless here.
  const tuning = ['--innodb-buffer-pool-size=64M', '--innodb-log-file-size=16M', '--skip-log-bin'];
  // The files must be readable by the user mariadbd runs as (this process's, or root).
  const tlsArgs = options.tls ? [`--ssl-ca=${options.tls.caFile}`, `--ssl-cert=${options.tls.certFile}`, `--ssl-key=${options.tls.keyFile}`] : [];

  try {
    if (bin.installDb) {
      await execFileAsync(bin.installDb, [
        '--no-defaults', // ignore /etc/mysql/*.cnf: they point at the system server's datadir and socket
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal', // root@localhost with no password, usable over TCP
        '--skip-test-db',
        '--skip-name-resolve',
        ...asRoot,
        ...tuning,
      ]);
    } else {
      await execFileAsync(bin.server, ['--no-defaults', '--initialize-insecure', `--datadir=${datadir}`, ...asRoot]);
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`[vault-test-db] initialising a datadir with ${bin.installDb ?? bin.server} failed`, { cause: error });
  }

  let starts = 0;
  /** Spawns the server and waits until it accepts connections; on failure nothing is left running. */
  const launch = async (port: number, extraArgs: string[] = []): Promise<Running> => {
    const errorLog = join(dir, `error-${++starts}.log`);
    const child = spawn(
      bin.server,
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        `--socket=${join(dir, 'sock')}`,
        `--pid-file=${join(dir, 'mariadbd.pid')}`,
        `--log-error=${errorLog}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        '--skip-networking=0',
        ...asRoot,
        ...tuning,
        ...tlsArgs,
        ...extraArgs,
      ],
      { stdio: 'ignore' },
    );
    let gone = false;
    let spawnError: Error | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => ((gone = true), resolve()));
      child.once('error', (error) => ((gone = true), (spawnError = error), resolve()));
    });
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const running: Running = { child, exited, gone: () => gone, killOnExit };
    try {
      await waitUntilReady(serverUrl(port), READY_TIMEOUT_MS, () => gone);
      return running;
    } catch (error) {
      const diedEarly = gone;
      if (!diedEarly) await stopChild(running);
      process.off('exit', killOnExit);
      throw Object.assign(new Error(`${(error as Error).message}\n--- ${errorLog} ---\n${tail(errorLog)}`, { cause: spawnError ?? error }), { diedEarly });
    }
  };

  // The free port is found by binding port 0 and releasing it, so another process may grab it
  // before mariadbd binds it: retry a few times on a fresh port when the server dies at start-up.
  let current: Running | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3 && !current; attempt++) {
    port = await freePort();
    try {
      current = await launch(port);
    } catch (error) {
      lastError = error;
      if (!(error as { diedEarly?: boolean }).diedEarly) break; // not a port race: don't retry
    }
  }
  if (!current) {
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }

  let removed = false;
  return {
    url: serverUrl(port),
    port,
    dir,
    async stop() {
      if (current) await stopChild(current);
      current = undefined;
      if (!removed) await rm(dir, { recursive: true, force: true });
      removed = true;
    },
    async kill() {
      if (!current) return;
      current.child.kill('SIGKILL');
      await current.exited;
      process.off('exit', current.killOnExit);
      current = undefined;
    },
    async restart() {
      if (removed) throw new Error('[vault-test-db] restart() after stop(): the datadir is gone');
      if (current) await stopChild(current);
      current = undefined;
      // The port must stay the same, so it cannot be swapped on a clash; give a socket still
      // held by the killed process's peers a few seconds to be released instead.
      current = await launch(port, ['--port-open-timeout=10']);
    },
  };
}

/** Polls until a connection succeeds; gives up at the deadline or once `serverGone()` says so. */
export async function waitUntilReady(url: string, timeoutMs: number, serverGone = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await createConnection({ uri: url, connectTimeout: 2_000 });
      await connection.query('SELECT 1');
      await connection.end();
      return;
    } catch (error) {
      if (serverGone()) throw new Error('[vault-test-db] database server exited during start-up');
      // Wrong credentials won't fix themselves by waiting.
      const accessDenied = (error as { code?: string }).code === 'ER_ACCESS_DENIED_ERROR';
      if (accessDenied || Date.now() > deadline) {
        const when = accessDenied ? '' : ` after ${timeoutMs} ms`;
        throw new Error(`[vault-test-db] cannot connect to database server at ${redact(url)}${when}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

function serverUrl(port: number): string {
  return `mysql://root@127.0.0.1:${port}/`;
}

/** SIGTERM (a clean InnoDB shutdown), escalating to SIGKILL if it hangs. */
async function stopChild(running: Running): Promise<void> {
  if (!running.gone()) {
    running.child.kill('SIGTERM');
    const timer = setTimeout(() => running.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await running.exited;
    clearTimeout(timer);
  }
  process.off('exit', running.killOnExit);
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The last lines of a server's log, for an error message. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
