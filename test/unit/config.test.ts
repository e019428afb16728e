import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, isLoopback, loadConfig } from '../../src/config.js';
import { createTestPki, type Issued, type TestCa, type TestPki } from '../support/test-pki.js';

const KEY = Buffer.alloc(32, 1).toString('base64');

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('configuration', () => {
  it('defaults to dev mode on 127.0.0.1:50051 and :8080', () => {
    expect(loadConfig({})).toMatchObject({
      host: '127.0.0.1',
      grpcPort: 50051,
      httpPort: 8080,
      databaseUrl: undefined,
      masterKey: undefined,
      rootToken: undefined,
      maxValueBytes: 65536,
    });
  });

  it('reads every documented variable', () => {
    const config = loadConfig({
      VAULT_HOST: '0.0.0.0',
      VAULT_TLS_DISABLE: 'true',
      VAULT_GRPC_PORT: '6000',
      VAULT_HTTP_PORT: '6001',
      VAULT_DATABASE_URL: 'mysql://vault:pw@db:3306/vault',
      VAULT_MASTER_KEY: KEY,
      VAULT_OLD_MASTER_KEYS: `${Buffer.alloc(32, 2).toString('base64')}, ${Buffer.alloc(32, 3).toString('base64')}`,
      VAULT_ROOT_TOKEN: 'a-root-token-of-some-length',
    });
    expect(config).toMatchObject({ host: '0.0.0.0', tlsDisabled: true, tls: undefined, grpcPort: 6000, httpPort: 6001, rootToken: 'a-root-token-of-some-length' });
    expect(Buffer.from(config.masterKey!).equals(Buffer.alloc(32, 1))).toBe(true);
    expect(config.oldMasterKeys).toHaveLength(2);
  });

  it('reads trusted proxies (addresses and CIDR blocks) and failed-authentication limits, and names bad entries', () => {
    expect(loadConfig({})).toMatchObject({ trustedProxies: [], authFailuresPerAddress: 100, authFailuresPerAgent: 300 });
    expect(
      loadConfig({ VAULT_TRUSTED_PROXIES: '10.0.0.5, 10.1.0.0/16,fd00::/8', VAULT_AUTH_FAILURES_PER_ADDRESS: '5', VAULT_AUTH_FAILURES_PER_AGENT: '7' }),
    ).toMatchObject({ trustedProxies: ['10.0.0.5', '10.1.0.0/16', 'fd00::/8'], authFailuresPerAddress: 5, authFailuresPerAgent: 7 });
    const problems = problemsOf({ VAULT_TRUSTED_PROXIES: 'lb.internal,10.0.0.0/33', VAULT_AUTH_FAILURES_PER_ADDRESS: '0' });
    expect(problems).toEqual([
      expect.stringMatching(/^VAULT_TRUSTED_PROXIES: "lb.internal" is not an IP address or CIDR block/),
      expect.stringMatching(/^VAULT_TRUSTED_PROXIES: "10.0.0.0\/33" has an invalid prefix length/),
      expect.stringMatching(/^VAULT_AUTH_FAILURES_PER_ADDRESS must be a whole number/),
    ]);
  });

  it('reports every bad variable at once, by name', () => {
    const problems = problemsOf({ VAULT_GRPC_PORT: 'http', VAULT_HTTP_PORT: '70000', VAULT_MASTER_KEY: 'c2hvcnQ=', VAULT_LOG_LEVEL: 'loud' });
    expect(problems.join('\n')).toMatch(/VAULT_GRPC_PORT/);
    expect(problems.join('\n')).toMatch(/VAULT_HTTP_PORT/);
    expect(problems.join('\n')).toMatch(/VAULT_MASTER_KEY must be the base64 encoding of exactly 32/);
    expect(problems.join('\n')).toMatch(/VAULT_LOG_LEVEL/);
    expect(problems).toHaveLength(4);
  });

  it('requires a master key and a root token on MySQL, and never echoes secrets', () => {
    const problems = problemsOf({ VAULT_DATABASE_URL: 'mysql://u:hunter2@h/db' });
    expect(problems.join('\n')).toMatch(/VAULT_MASTER_KEY is required/);
    expect(problems.join('\n')).toMatch(/VAULT_ROOT_TOKEN is required/);
    const short = problemsOf({ VAULT_ROOT_TOKEN: 'short-secret' });
    expect(short.join('\n')).toMatch(/at least 16/);
    expect([...problems, ...short].join('\n')).not.toMatch(/hunter2|short-secret/);
  });

  it('rejects a database URL of another scheme', () => {
    expect(problemsOf({ VAULT_DATABASE_URL: 'postgres://h/db', VAULT_MASTER_KEY: KEY, VAULT_ROOT_TOKEN: 'x'.repeat(16) })).toEqual([
      'VAULT_DATABASE_URL must look like mysql://user[:password]@host[:port]/database',
    ]);
  });

  it('serves metrics on the HTTP port behind the root token unless told otherwise', () => {
    expect(loadConfig({})).toMatchObject({ metricsPort: undefined, metricsUnauthenticated: false });
    expect(loadConfig({ VAULT_METRICS_PORT: '9102', VAULT_METRICS_UNAUTHENTICATED: 'true' })).toMatchObject({ metricsPort: 9102, metricsUnauthenticated: true });
    expect(problemsOf({ VAULT_METRICS_PORT: 'x', VAULT_METRICS_UNAUTHENTICATED: 'yes' }).sort()).toEqual([
      'VAULT_METRICS_PORT must be a whole number from 0 to 65535, got "x"',
      'VAULT_METRICS_UNAUTHENTICATED must be true or false, got "yes"',
    ]);
  });
});

describe('TLS configuration', () => {
  let pki: TestPki;
  let ca: TestCa;
  let server: Issued;
  let other: Issued;
  beforeAll(async () => {
    pki = await createTestPki();
    ca = await pki.ca('config');
    server = await ca.server('server');
    other = await ca.server('other');
  });
  afterAll(() => pki?.remove());

  it('reads the certificate, key and client CA, and stays on loopback by default', () => {
    const config = loadConfig({ VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile, VAULT_TLS_CLIENT_CA_FILE: ca.certFile });
    expect(config.tls).toEqual({ certFile: server.certFile, keyFile: server.keyFile, clientCaFile: ca.certFile });
    expect(config.tlsMaterial?.summary.serialNumber).toBe(server.serial);
    expect(config.tlsMaterial?.clientCa?.equals(ca.cert)).toBe(true);
    expect(loadConfig({ VAULT_HOST: '0.0.0.0', VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile }).host).toBe('0.0.0.0');
  });

  it('refuses plaintext on a non-loopback address unless VAULT_TLS_DISABLE=true', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'vault.internal']) {
      expect(problemsOf({ VAULT_HOST: host }).join('\n')).toMatch(/is not a loopback address.*VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE, or VAULT_TLS_DISABLE=true/);
      expect(loadConfig({ VAULT_HOST: host, VAULT_TLS_DISABLE: 'true' }).tlsDisabled).toBe(true);
    }
    for (const host of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '::ffff:127.0.0.1']) {
      expect(isLoopback(host)).toBe(true);
      expect(problemsOf({ VAULT_HOST: host })).toEqual([]);
    }
    expect(isLoopback('128.0.0.1')).toBe(false);
    expect(isLoopback('::ffff:10.0.0.1')).toBe(false);
  });

  it('names each inconsistent or unusable TLS variable', async () => {
    expect(problemsOf({ VAULT_TLS_CERT_FILE: server.certFile })).toEqual(['VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE go together: set both (PEM files) or neither']);
    expect(problemsOf({ VAULT_TLS_CLIENT_CA_FILE: ca.certFile }).join('\n')).toMatch(/VAULT_TLS_CLIENT_CA_FILE needs VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE/);
    expect(problemsOf({ VAULT_TLS_DISABLE: 'yes' }).join('\n')).toMatch(/VAULT_TLS_DISABLE must be true or false/);
    expect(problemsOf({ VAULT_TLS_DISABLE: 'true', VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile }).join('\n')).toMatch(
      /VAULT_TLS_DISABLE=true contradicts/,
    );

    const missing = join(pki.dir, 'missing.pem');
    expect(problemsOf({ VAULT_TLS_CERT_FILE: missing, VAULT_TLS_KEY_FILE: server.keyFile })).toEqual([
      `VAULT_TLS_CERT_FILE names ${JSON.stringify(missing)}, which cannot be read (ENOENT)`,
    ]);
    expect(problemsOf({ VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: other.keyFile })).toEqual([
      'VAULT_TLS_KEY_FILE does not match the certificate in VAULT_TLS_CERT_FILE (the first certificate there must be the server\'s own)',
    ]);
    // A key file given as the certificate and the other way round: each is named, no PEM is echoed.
    const swapped = problemsOf({ VAULT_TLS_CERT_FILE: server.keyFile, VAULT_TLS_KEY_FILE: server.certFile });
    expect(swapped.join('\n')).toMatch(/VAULT_TLS_CERT_FILE .* holds no PEM certificate/);
    expect(swapped.join('\n')).toMatch(/VAULT_TLS_KEY_FILE .* holds no unencrypted PEM private key/);
    expect(swapped.join('\n')).not.toContain(server.key.toString().split('\n')[1]);
    expect(swapped.join('\n')).not.toContain(server.cert.toString().split('\n')[1]);
    const garbage = join(pki.dir, 'garbage-ca.pem');
    await writeFile(garbage, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
    expect(problemsOf({ VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile, VAULT_TLS_CLIENT_CA_FILE: garbage })).toEqual([
      `VAULT_TLS_CLIENT_CA_FILE (${JSON.stringify(garbage)}) holds a PEM certificate that does not parse`,
    ]);
  });
});
