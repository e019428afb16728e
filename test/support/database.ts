// Per-test databases on the server that test/support/global-setup.ts found or started.
import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { describe, inject } from 'vitest';

export interface TestDatabase {
  /** The database's name, `vault_test_<random hex>`. */
  name: string;
  /** Full URL of the database: mysql://user[:password]@host:port/vault_test_xxx */
  url: string;
  /** Drops the database; safe to call more than once. */
  drop(): Promise<void>;
}

const isCI = () => process.env.CI === 'true';

/**
 * Creates a fresh, uniquely named, empty database. Returns null only when there is no server and
 * CI is not 'true' (callers should be inside `describeWithDatabase`, which skips then); under
 * CI=true a missing server throws.
 */
export async function createTestDatabase(): Promise<TestDatabase | null> {
  const serverUrl = inject('databaseServerUrl');
  if (!serverUrl) {
    if (isCI()) throw new Error('[vault-test-db] no database server available, and CI=true: database tests must not skip');
    return null;
  }

  const name = `vault_test_${randomBytes(6).toString('hex')}`;
  await onServer(serverUrl, (sql) => sql.query(`CREATE DATABASE \`${name}\``));

  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => onServer(serverUrl, (sql) => sql.query(`DROP DATABASE IF EXISTS \`${name}\``)).then(() => {}),
  };
}

/**
 * `describe` for suites that need a database: skips (with a loud warning) when there is no server,
 * outside CI only. Under CI=true it never skips, so a missing server fails the run.
 */
export function describeWithDatabase(name: string, fn: () => void): void {
  const skip = !inject('databaseServerUrl') && !isCI();
  if (skip) console.warn(`!!! [vault-test-db] SKIPPING "${name}": no database server (see the warning at start-up)`);
  describe.skipIf(skip)(name, fn);
}

async function onServer<T>(serverUrl: string, work: (sql: Awaited<ReturnType<typeof createConnection>>) => Promise<T>): Promise<T> {
  const connection = await createConnection(serverUrl);
  try {
    return await work(connection);
  } finally {
    await connection.end();
  }
}
