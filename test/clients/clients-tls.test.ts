import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { runCli } from '../../src/cli/main.js';
import { createVaultClient, UnavailableError } from '../../src/client/index.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';
import { createTestPki, type Issued, type TestCa, type TestPki } from '../support/test-pki.js';

describe('the SDK and the CLI over mTLS', () => {
  let pki: TestPki;
  let ca: TestCa;
  let clientCert: Issued;
  let t: TestApp;

  beforeAll(async () => {
    pki = await createTestPki();
    ca = await pki.ca('clients');
    const server = await ca.server('vault');
    clientCert = await ca.client('sdk');
    t = await startTestApp({ VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile, VAULT_TLS_CLIENT_CA_FILE: ca.certFile });
  });
  afterAll(async () => {
    await t?.close();
    await pki?.remove();
  });

  it('calls the vault with a trusted CA and a client certificate, and is refused without one', async () => {
    const withCert = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN }, tls: { ca: ca.cert, cert: clientCert.cert, key: clientCert.key } });
    const created = await withCert.vaults.createVault({ name: 'over-mtls' });
    expect(created.vault?.name).toBe('over-mtls');
    withCert.close();

    const withoutCert = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN }, tls: { ca: ca.cert }, deadlineMs: 3_000, retry: { maxAttempts: 1 } });
    await expect(withoutCert.vaults.listVaults()).rejects.toBeInstanceOf(UnavailableError);
    withoutCert.close();
    const plaintext = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN }, deadlineMs: 3_000, retry: { maxAttempts: 1 } });
    await expect(plaintext.vaults.listVaults()).rejects.toBeInstanceOf(UnavailableError);
    plaintext.close();
  });

  it('lets the CLI use TLS from --ca-cert, --client-cert and --client-key', async () => {
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c) => chunks.push(c));
    const code = await runCli(['--ca-cert', ca.certFile, '--client-cert', clientCert.certFile, '--client-key', clientCert.keyFile, '--json', 'vault', 'create', 'cli-over-mtls'], {
      stdin: Readable.from([]),
      stdout,
      stderr: new PassThrough(),
      env: { VAULT_ADDR: t.grpcAddress, VAULT_TOKEN: TEST_ROOT_TOKEN },
    });
    expect(code).toBe(EXIT.ok);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toMatchObject({ name: 'cli-over-mtls' });
  });
});
