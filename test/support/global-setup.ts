// Vitest globalSetup: finds (or starts) a MariaDB/MySQL server for the integration tests and hands
// its URL to the test workers as `inject('databaseServerUrl')`.
//
// Order of preference:
//   1. VAULT_TEST_DATABASE_URL (mysql://user[:password]@host[:port]/[db]); the db part is ignored,
//      every test creates its own database on that server.
//   2. A throwaway server: a `mariadbd`/`mysqld` binary started on a fresh temporary datadir and a
//      free port, removed again in teardown.
//   3. Nothing: fails the run when CI=true, otherwise warns loudly and database suites skip.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Server-level URL (no database part), or null when no server is available outside CI. */
    databaseServerUrl: string | null;
  }
}

const execFileAsync = promisify(execFile);
const isCI = process.env.CI === 'true';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const fromEnv = process.env.VAULT_TEST_DATABASE_URL?.trim();
  if (fromEnv) {
    const url = serverUrlOf(fromEnv);
    // The server was asked for explicitly: an unreachable one is an error, never a skip.
    await waitUntilReady(url, 10_000);
    log(`using VAULT_TEST_DATABASE_URL server ${redact(url)}`);
    project.provide('databaseServerUrl', url);
    return async () => {};
  }

  const binaries = findServerBinaries();
  if (binaries) {
    const server = await startThrowawayServer(binaries);
    log(`started throwaway ${binaries.server} on ${redact(server.url)} (datadir ${server.dir})`);
    project.provide('databaseServerUrl', server.url);
    return () => server.stop();
  }

  const why =
    'no database server for integration tests: VAULT_TEST_DATABASE_URL is unset and no ' +
    'mariadbd/mysqld binary was found on PATH, /usr/sbin or /usr/bin';
  if (isCI) throw new Error(`[vault-test-db] ${why} (CI=true, refusing to skip database tests)`);
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! [vault-test-db] WARNING: ${why}.\n!!! DATABASE TEST SUITES WILL BE SKIPPED.` +
    ` Install mariadb-server or set VAULT_TEST_DATABASE_URL.\n${bar}\n`);
  project.provide('databaseServerUrl', null);
  return async () => {};
}

/** Normalises a user-given URL to a server-level one: the database path is dropped. */
function serverUrlOf(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error('[vault-test-db] VAULT_TEST_DATABASE_URL is not a URL (want mysql://user[:password]@host[:port]/)');
  }
  if (url.protocol !== 'mysql:') {
    throw new Error(`[vault-test-db] VAULT_TEST_DATABASE_URL must use mysql://, got ${url.protocol}//`);
  }
  url.pathname = '/';
  return url.toString();
}

interface ServerBinaries {
  server: string;
  /** mariadb-install-db / mysql_install_db; absent for Oracle MySQL, which has `--initialize-insecure`. */
  installDb: string | undefined;
}

function findServerBinaries(): ServerBinaries | undefined {
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

interface ThrowawayServer {
  url: string;
  dir: string;
  stop(): Promise<void>;
}

async function startThrowawayServer(bin: ServerBinaries): Promise<ThrowawayServer> {
  const dir = await mkdtemp(join(tmpdir(), 'vault-test-db-'));
  const datadir = join(dir, 'data');
  // mariadbd refuses to run as root unless told to; as anyone else --user would be an error.
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  // Small InnoDB files keep install and start well under a second; binlogs are useless here.
  const tuning = ['--innodb-buffer-pool-size=64M', '--innodb-log-file-size=16M', '--skip-log-bin'];

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

  // The free port is found by binding port 0 and releasing it, so another process may grab it
  // before mariadbd binds it: retry a few times on a fresh port when the server dies at start-up.
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const errorLog = join(dir, `error-${attempt}.log`);
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
      ],
      { stdio: 'ignore' },
    );
    // `gone` covers both a normal exit and a failed spawn (which emits 'error', maybe no 'exit').
    let gone = false;
    let spawnError: Error | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => ((gone = true), resolve()));
      child.once('error', (error) => ((gone = true), (spawnError = error), resolve()));
    });
    // Safety net: if vitest dies without running teardown, don't leave the server behind.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);

    const url = `mysql://root@127.0.0.1:${port}/`;
    try {
      await waitUntilReady(url, READY_TIMEOUT_MS, () => gone);
    } catch (error) {
      const diedEarly = gone;
      lastError = new Error(`${(error as Error).message}\n--- ${errorLog} ---\n${tail(errorLog)}`, { cause: spawnError ?? error });
      if (!diedEarly) await stopChild(child, exited);
      process.off('exit', killOnExit);
      if (diedEarly) continue; // most likely lost the port race: try another port
      break;
    }

    return {
      url,
      dir,
      async stop() {
        if (!gone) await stopChild(child, exited);
        process.off('exit', killOnExit);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError;
}

/** SIGTERM (a clean InnoDB shutdown), escalating to SIGKILL if it hangs. */
async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
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

/** Polls until a connection succeeds; gives up at the deadline or once `serverGone()` says so. */
async function waitUntilReady(url: string, timeoutMs: number, serverGone = () => false): Promise<void> {
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

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

function log(message: string): void {
  console.log(`[vault-test-db] ${message}`);
}
