import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { parsePrometheusText, type Exposition } from '../support/prometheus-text.js';
import { request as httpsRequest } from 'node:https';
import { startTestApp, TEST_ROOT_TOKEN, unary, type TestApp } from '../support/test-app.js';
import { createTestPki } from '../support/test-pki.js';

const SECRET_PATH = 'metrics-probe/db-password';
const SECRET_VALUE = 'hunter2-metrics-value';

async function scrape(t: TestApp, base = t.httpBaseUrl, token: string | null = TEST_ROOT_TOKEN): Promise<{ status: number; contentType: string | null; text: string }> {
  const response = await fetch(`${base}/metrics`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

async function metrics(t: TestApp): Promise<Exposition> {
  const result = await scrape(t);
  expect(result.status).toBe(200);
  return parsePrometheusText(result.text);
}

const call = (method: string, code: string, transport: 'grpc' | 'http') => ({ service: 'vault.v1.SecretService', method, code, transport });

describe('/metrics', () => {
  let t: TestApp;
  let vaultId: string;

  beforeAll(async () => {
    t = await startTestApp();
    const { vault } = await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'metrics', description: '' }, t.auth());
    vaultId = vault!.id;
  });
  afterAll(() => t.close());

  it('serves the Prometheus text format, every line readable, with process and vault metrics', async () => {
    const result = await scrape(t);
    expect(result.status).toBe(200);
    expect(result.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const exposition = parsePrometheusText(result.text);
    expect(exposition.types.get('vault_rpc_requests_total')).toBe('counter');
    expect(exposition.types.get('vault_rpc_duration_seconds')).toBe('histogram');
    expect(exposition.types.get('vault_auth_failures_total')).toBe('counter');
    expect(exposition.types.get('vault_db_transaction_retries_total')).toBe('counter');
    expect(exposition.types.get('vault_db_pool_connections_in_use')).toBe('gauge');
    expect(exposition.types.get('vault_db_pool_waiting_requests')).toBe('gauge');
    expect(exposition.types.get('vault_audit_unsealed_oldest_age_seconds')).toBe('gauge');
    expect(exposition.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(exposition.samples.some((s) => s.name === 'nodejs_heap_size_used_bytes' && s.value > 0)).toBe(true);
    // Memory storage has no pool.
    expect(exposition.value('vault_db_pool_connections')).toBe(0);
  });

  it('counts calls and their latency per method, code and transport, on gRPC and HTTP alike', async () => {
    const before = await metrics(t);
    await unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path: SECRET_PATH, value: SECRET_VALUE, type: 'password', maxAccessCount: 0 }, t.auth());
    await unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path: SECRET_PATH, value: SECRET_VALUE, type: 'password', maxAccessCount: 0 }, t.auth());
    const missing = await unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path: 'metrics-probe/none' }, t.auth()).catch((e: ServiceError) => e);
    expect((missing as ServiceError).code).toBe(status.NOT_FOUND);
    for (let i = 0; i < 3; i++) expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/${SECRET_PATH}`)).status).toBe(200);
    expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/metrics-probe/none`)).status).toBe(404);
    const after = await metrics(t);

    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    expect(delta('vault_rpc_requests_total', call('PutSecret', 'OK', 'grpc'))).toBe(2);
    expect(delta('vault_rpc_requests_total', call('GetSecret', 'NOT_FOUND', 'grpc'))).toBe(1);
    expect(delta('vault_rpc_requests_total', call('GetSecret', 'OK', 'http'))).toBe(3);
    expect(delta('vault_rpc_requests_total', call('GetSecret', 'NOT_FOUND', 'http'))).toBe(1);
    expect(delta('vault_rpc_requests_total', call('GetSecret', 'OK', 'grpc'))).toBe(0);
    expect(delta('vault_rpc_duration_seconds_count', call('GetSecret', 'OK', 'http'))).toBe(3);
    expect(delta('vault_rpc_duration_seconds_bucket', { ...call('GetSecret', 'OK', 'http'), le: '+Inf' })).toBe(3);
    expect(delta('vault_rpc_duration_seconds_sum', call('PutSecret', 'OK', 'grpc'))).toBeGreaterThan(0);
  });

  it('counts refused credentials by kind, never by who', async () => {
    const before = await metrics(t);
    const fakeToken = 'not-the-root-token-at-all-0123456789';
    const fakeKey = `ocv_${'A'.repeat(43)}`;
    expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/${SECRET_PATH}`, { token: null })).status).toBe(401);
    expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/${SECRET_PATH}`, { token: fakeToken })).status).toBe(401);
    const refused = await unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path: SECRET_PATH }, t.auth(fakeKey)).catch((e: ServiceError) => e);
    expect((refused as ServiceError).code).toBe(status.UNAUTHENTICATED);
    const after = await metrics(t);
    const delta = (reason: string) => after.value('vault_auth_failures_total', { reason }) - before.value('vault_auth_failures_total', { reason });
    expect([delta('missing_credentials'), delta('invalid_credentials'), delta('invalid_api_key')]).toEqual([1, 1, 1]);
    expect(after.value('vault_rpc_requests_total', call('GetSecret', 'UNAUTHENTICATED', 'grpc'))).toBeGreaterThan(0);
    const labelValues = after.samples.flatMap((s) => Object.values(s.labels));
    for (const secret of [fakeToken, fakeKey, TEST_ROOT_TOKEN, SECRET_PATH, SECRET_VALUE, vaultId, 'metrics-probe']) {
      expect(labelValues.filter((v) => v.includes(secret))).toEqual([]);
    }
  });

  it('refuses a scrape without the root token, or with another token', async () => {
    const bare = await fetch(`${t.httpBaseUrl}/metrics`);
    expect(bare.status).toBe(401);
    expect(bare.headers.get('www-authenticate')).toBe('Bearer');
    expect((await bare.json()).code).toBe(status.UNAUTHENTICATED);
    expect((await scrape(t, t.httpBaseUrl, 'some-other-token-0123456789')).status).toBe(401);
    expect((await fetch(`${t.httpBaseUrl}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}` } })).status).toBe(405);
  });
});

describe('/metrics configuration', () => {
  it('serves without a token when VAULT_METRICS_UNAUTHENTICATED=true', async () => {
    const t = await startTestApp({ VAULT_METRICS_UNAUTHENTICATED: 'true' });
    try {
      const result = await scrape(t, t.httpBaseUrl, null);
      expect(result.status).toBe(200);
      expect(parsePrometheusText(result.text).types.get('vault_rpc_requests_total')).toBe('counter');
    } finally {
      await t.close();
    }
  });

  it('moves to its own listener with VAULT_METRICS_PORT, still behind the root token', async () => {
    const t = await startTestApp({ VAULT_METRICS_PORT: '0' });
    try {
      const base = `http://127.0.0.1:${t.app.metricsPort}`;
      expect(t.app.metricsPort).toBeGreaterThan(0);
      expect(t.app.metricsPort).not.toBe(t.app.httpPort);
      await unary(t.clients.vaults, t.clients.vaults.listVaults, { pageSize: 0, pageToken: '' }, t.auth());
      const own = await scrape(t, base);
      expect(own.status).toBe(200);
      expect(parsePrometheusText(own.text).value('vault_rpc_requests_total', { service: 'vault.v1.VaultService', method: 'ListVaults', code: 'OK', transport: 'grpc' })).toBe(1);
      expect((await scrape(t, base, null)).status).toBe(401);
      expect((await fetch(`${base}/v1/health`)).status).toBe(404);
      // The gateway no longer serves it: an unknown route there.
      expect((await scrape(t)).status).toBe(404);
    } finally {
      await t.close();
    }
  });

  it('serves its own listener over TLS, with mTLS, when the service is on TLS', async () => {
    const pki = await createTestPki();
    const ca = await pki.ca('metrics');
    const server = await ca.server('vault');
    const scraper = await ca.client('prometheus');
    const t = await startTestApp({ VAULT_METRICS_PORT: '0', VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile, VAULT_TLS_CLIENT_CA_FILE: ca.certFile });
    const get = (client?: { cert: Buffer; key: Buffer }) =>
      new Promise<{ status: number; serial: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: t.app.metricsPort, path: '/metrics', ca: ca.cert, ...client, headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}` } },
          (res) => {
            const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get({ cert: scraper.cert, key: scraper.key })).toEqual({ status: 200, serial: server.serial });
      await expect(get()).rejects.toThrow();
      await expect(fetch(`http://127.0.0.1:${t.app.metricsPort}/metrics`)).rejects.toThrow();
    } finally {
      await t.close();
      await pki.remove();
    }
  });

  it('keeps each app instance on a registry of its own', async () => {
    const [a, b] = await Promise.all([startTestApp(), startTestApp()]);
    try {
      await unary(a.clients.vaults, a.clients.vaults.listVaults, { pageSize: 0, pageToken: '' }, a.auth());
      const labels = { service: 'vault.v1.VaultService', method: 'ListVaults', code: 'OK', transport: 'grpc' };
      expect((await metrics(a)).value('vault_rpc_requests_total', labels)).toBe(1);
      expect((await metrics(b)).value('vault_rpc_requests_total', labels)).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describeWithDatabase('/metrics on MySQL', () => {
  let database: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    database = (await createTestDatabase())!;
    t = await startTestApp({ VAULT_DATABASE_URL: database.url, VAULT_DATABASE_POOL_SIZE: '4' });
  });
  afterAll(async () => {
    await t?.close();
    await database?.drop();
  });

  it('reports the pool from the live pool at scrape time', async () => {
    await unary(t.clients.vaults, t.clients.vaults.listVaults, { pageSize: 0, pageToken: '' }, t.auth());
    const exposition = await metrics(t);
    expect(exposition.value('vault_db_pool_connections')).toBe(4);
    // Background work (the sealer, the cluster lease) may hold one; exact counts: mysql-transaction.test.ts.
    const inUse = exposition.value('vault_db_pool_connections_in_use');
    expect(inUse).toBeGreaterThanOrEqual(0);
    expect(inUse).toBeLessThanOrEqual(4);
    expect(exposition.value('vault_db_pool_waiting_requests')).toBe(0);
    expect(exposition.value('vault_audit_unsealed_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
  });
});
