import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DatabaseTlsError } from '../../src/storage/mysql/database-tls.js';
import { parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import { acquire, openPool, sqlOn } from '../../src/storage/mysql/pool.js';
import { createTestDatabase, describeWithDatabase } from '../support/database.js';
import { startTestApp, unary } from '../support/test-app.js';
import { createTestPki, type Issued, type TestCa, type TestPki } from '../support/test-pki.js';
import { findServerBinaries, startThrowawayMariadb, type ThrowawayMariadb } from '../support/throwaway-mariadb.js';

/**
 * The service's database connections over TLS, against a throwaway MariaDB started with
 * certificates this test makes (the system server has TLS disabled), and users created
 * REQUIRE SSL / REQUIRE X509, which the server lets in only over TLS.
 */
const binaries = findServerBinaries();
const skip = !binaries && process.env.CI !== 'true';
if (skip) console.warn('!!! [vault-test-db] SKIPPING "MySQL over TLS": no mariadbd/mysqld binary (needs its own server with TLS)');

const PASSWORD = 'tls-user-Pa55';

describe.skipIf(skip)('MySQL over TLS', () => {
  let pki: TestPki;
  let ca: TestCa;
  let wrongCa: TestCa;
  let clientCert: Issued;
  let server: ThrowawayMariadb;
  let base: string;

  beforeAll(async () => {
    pki = await createTestPki();
    ca = await pki.ca('db');
    wrongCa = await pki.ca('wrong');
    // Names only the address, so connecting by "localhost" fails a host-name check.
    const serverCert = await ca.server('mariadb', ['IP:127.0.0.1']);
    clientCert = await ca.client('vault-db-client');
    server = await startThrowawayMariadb(binaries, { tls: { caFile: ca.certFile, certFile: serverCert.certFile, keyFile: serverCert.keyFile } });
    const admin = await createConnection(server.url);
    for (const statement of [
      'CREATE DATABASE vault_tls',
      `CREATE USER 'vault_tls'@'%' IDENTIFIED BY '${PASSWORD}' REQUIRE SSL`,
      "GRANT ALL ON vault_tls.* TO 'vault_tls'@'%'",
      `CREATE USER 'vault_x509'@'%' IDENTIFIED BY '${PASSWORD}' REQUIRE X509`,
      "GRANT ALL ON vault_tls.* TO 'vault_x509'@'%'",
    ]) {
      await admin.query(statement);
    }
    await admin.end();
    base = `mysql://vault_tls:${PASSWORD}@127.0.0.1:${server.port}/vault_tls`;
  });
  afterAll(async () => {
    await server?.stop();
    await pki?.remove();
  });

  /** Opens the service's storage on `url` and checks one round trip, then closes it. */
  async function connects(url: string): Promise<void> {
    const storage = await createMysqlStorage({ url, poolSize: 1 });
    try {
      await storage.ping();
    } finally {
      await storage.close();
    }
  }

  async function refusal(url: string): Promise<Error> {
    const error = await createMysqlStorage({ url, poolSize: 1 }).then(
      async (storage) => {
        await storage.close();
        throw new Error('expected the connection to be refused');
      },
      (caught: Error) => caught,
    );
    expect(error.message).not.toContain(PASSWORD);
    return error;
  }

  it('serves calls on a user that may only connect over TLS, with ssl-mode=REQUIRED', async () => {
    const t = await startTestApp({ VAULT_DATABASE_URL: `${base}?ssl-mode=REQUIRED&ssl-ca=${encodeURIComponent(ca.certFile)}` });
    try {
      const created = await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'over-tls', description: '' }, t.auth());
      const read = await unary(t.clients.vaults, t.clients.vaults.getVault, { vaultId: created.vault!.id }, t.auth());
      expect(read.vault?.name).toBe('over-tls');
    } finally {
      await t.close();
    }
  });

  it("has a TLS cipher on the service's pool connections", async () => {
    const pool = openPool(parseDatabaseUrl(`${base}?ssl-mode=REQUIRED&ssl-ca=${ca.certFile}`), 1);
    try {
      const connection = await acquire(pool);
      try {
        const rows = await sqlOn(connection).select("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')");
        const status = Object.fromEntries(rows.map((row) => [row.Variable_name, row.Value]));
        expect(status.Ssl_cipher).toMatch(/.+/);
        expect(status.Ssl_version).toMatch(/^TLSv1\.[23]$/);
      } finally {
        connection.release();
      }
    } finally {
      await pool.end();
    }
  });

  it('is refused without TLS for that user, so the test above proves TLS', async () => {
    expect((await refusal(base)).message).toMatch(/Access denied/);
  });

  it('refuses a server certificate from another CA, with a clear error', async () => {
    const error = await refusal(`${base}?ssl-mode=REQUIRED&ssl-ca=${wrongCa.certFile}`);
    expect(error).toBeInstanceOf(DatabaseTlsError);
    expect(error.message).toMatch(
      new RegExp(`^TLS to the database server at 127\\.0\\.0\\.1:${server.port} failed \\(ssl-mode=REQUIRED\\): .*certificate.*; its certificate must chain to ssl-ca "${wrongCa.certFile}"`),
    );
    // Without ssl-ca only public CAs are trusted: a private CA's certificate is refused too.
    expect((await refusal(`${base}?ssl-mode=VERIFY_IDENTITY`)).message).toMatch(/must chain to Node's bundled public CAs/);
  });

  it('checks the host name unless ssl-mode=VERIFY_CA', async () => {
    const byName = `mysql://vault_tls:${PASSWORD}@localhost:${server.port}/vault_tls`;
    const error = await refusal(`${byName}?ssl-ca=${ca.certFile}`); // no mode: VERIFY_IDENTITY
    expect(error).toBeInstanceOf(DatabaseTlsError);
    expect(error.message).toMatch(/ssl-mode=VERIFY_IDENTITY.*localhost/);
    await connects(`${byName}?ssl-mode=VERIFY_CA&ssl-ca=${ca.certFile}`);
    await connects(`${base}?ssl-mode=VERIFY_IDENTITY&ssl-ca=${ca.certFile}`);
  });

  it('presents a client certificate for a user created REQUIRE X509', async () => {
    const x509 = `mysql://vault_x509:${PASSWORD}@127.0.0.1:${server.port}/vault_tls?ssl-mode=REQUIRED&ssl-ca=${ca.certFile}`;
    expect((await refusal(x509)).message).toMatch(/Access denied/);
    await connects(`${x509}&ssl-cert=${clientCert.certFile}&ssl-key=${clientCert.keyFile}`);
  });

  it('names an unreadable TLS file', async () => {
    const error = await refusal(`${base}?ssl-mode=REQUIRED&ssl-ca=/nonexistent/ca.pem`);
    expect(error.message).toBe(`the database URL's ssl-ca names "/nonexistent/ca.pem", which cannot be read (ENOENT)`);
  });
});

describeWithDatabase('MySQL TLS against a server without TLS', () => {
  it('says the server offers no TLS when ssl-mode asks for it', async (context) => {
    const admin = await createConnection(inject('databaseServerUrl')!);
    const [rows] = await admin.query('SELECT @@have_ssl AS have_ssl');
    await admin.end();
    // An operator's VAULT_TEST_DATABASE_URL may point at a server with TLS: nothing to check then.
    if ((rows as { have_ssl: string }[])[0]?.have_ssl === 'YES') context.skip();
    const database = (await createTestDatabase())!;
    try {
      const error = await createMysqlStorage({ url: `${database.url}?ssl-mode=REQUIRED`, poolSize: 1 }).then(
        async (storage) => {
          await storage.close();
          throw new Error('expected the connection to be refused');
        },
        (caught: Error) => caught,
      );
      expect(error).toBeInstanceOf(DatabaseTlsError);
      expect(error.message).toMatch(/^the database server at .* does not offer TLS, and ssl-mode=REQUIRED requires it$/);
    } finally {
      await database.drop();
    }
  });
});
