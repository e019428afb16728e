// Vitest globalSetup: finds (or starts) a MariaDB/MySQL server for the integration tests and hands
// its URL to the test workers as `inject('databaseServerUrl')`.
//
// Order of preference:
//   1. VAULT_TEST_DATABASE_URL (mysql://user[:password]@host[:port]/[db]); the db part is ignored,
//      every test creates its own database on that server.
//   2. A throwaway server (test/support/throwaway-mariadb.ts): a `mariadbd`/`mysqld` binary started
//      on a fresh temporary datadir and a free port, removed again in teardown.
//   3. Nothing: fails the run when CI=true, otherwise warns loudly and database suites skip.
import type { TestProject } from 'vitest/node';
import { findServerBinaries, redact, startThrowawayMariadb, waitUntilReady } from './throwaway-mariadb.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Server-level URL (no database part), or null when no server is available outside CI. */
    databaseServerUrl: string | null;
  }
}

const isCI = process.env.CI === 'true';

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
    const server = await startThrowawayMariadb(binaries);
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

function log(message: string): void {
  console.log(`[vault-test-db] ${message}`);
}
