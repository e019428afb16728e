import { status, type ServiceError } from '@grpc/grpc-js';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_FAILED_AUTH_LIMITS } from '../../src/auth/failed-auth-limiter.js';
import { parsePrometheusText } from '../support/prometheus-text.js';
import { createTestClock, startTestApp, unary, type TestApp } from '../support/test-app.js';

/**
 * Failed authentications are limited per client address over both transports. The service's
 * clock stands just after the start of a limiter window, so no flood straddles two windows
 * whatever the wall clock says.
 */
const WINDOW_MS = DEFAULT_FAILED_AUTH_LIMITS.windowSeconds * 1000;
const LIMIT = 20;
const ENV = { VAULT_AUTH_FAILURES_PER_ADDRESS: String(LIMIT) };

const windowAlignedClock = () => createTestClock(Math.ceil(Date.now() / WINDOW_MS) * WINDOW_MS + 1000);

/** One HTTP request from a chosen local address (fetch cannot bind one). */
function httpFrom(t: TestApp, localAddress: string, path: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request(`${t.httpBaseUrl}${path}`, { localAddress, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('failed authentication limits over both transports', () => {
  it('answers a flooding address RESOURCE_EXHAUSTED / 429 with Retry-After, while a caller from another address is served', async () => {
    t = await startTestApp(ENV, { clock: windowAlignedClock() });
    const { secrets } = t.clients;
    const vaultId = (await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'limits', description: '' }, t.auth())).vault!.id;
    const codes: number[] = [];
    for (let i = 0; i < LIMIT + 5; i++) {
      const code = await unary(secrets, secrets.listSecrets, { vaultId, prefix: '', pageSize: 0, pageToken: '' }, t.auth('not-a-valid-token-at-all')).then(
        () => status.OK,
        (e: ServiceError) => e.code,
      );
      codes.push(code);
    }
    expect(codes.slice(0, LIMIT).every((c) => c === status.UNAUTHENTICATED)).toBe(true);
    expect(codes.slice(LIMIT).every((c) => c === status.RESOURCE_EXHAUSTED)).toBe(true);
    const refused = await unary(secrets, secrets.listSecrets, { vaultId, prefix: '', pageSize: 0, pageToken: '' }, t.auth()).catch((e: ServiceError) => e);
    expect((refused as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(Number((refused as ServiceError).metadata.get('retry-after')[0])).toBeGreaterThan(0);

    // Over HTTP, the same address (127.0.0.1) is refused too, even with the root token.
    const fromFlooder = await httpFrom(t, '127.0.0.1', `/v1/vaults/${vaultId}/secrets`, { authorization: `Bearer ${t.app.rootToken}` });
    expect(fromFlooder.status).toBe(429);
    expect(Number(fromFlooder.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(fromFlooder.headers['retry-after'])).toBeLessThanOrEqual(DEFAULT_FAILED_AUTH_LIMITS.windowSeconds);
    // A legitimate caller from another address is unaffected.
    const fromElsewhere = await httpFrom(t, '127.0.0.2', `/v1/vaults/${vaultId}/secrets`, { authorization: `Bearer ${t.app.rootToken}` });
    expect(fromElsewhere.status).toBe(200);

    // Every refused credential is counted: the LIMIT checked ones by their shape, the 7 refused
    // with 429 unchecked as rate_limited (not as more failures).
    const scraped = await httpFrom(t, '127.0.0.2', '/metrics', { authorization: `Bearer ${t.app.rootToken}` });
    const exposition = parsePrometheusText(scraped.body);
    expect(exposition.value('vault_auth_failures_total', { reason: 'invalid_credentials' })).toBe(LIMIT);
    expect(exposition.value('vault_auth_failures_total', { reason: 'rate_limited' })).toBe(7);

    // The flood of LIMIT + 7 attempts left one audit row so far (the window's first failure);
    // the rest are counted into one more row when the window ends.
    const audit = await httpFrom(t, '127.0.0.2', '/v1/audit/events?action=auth.failed&limit=1000', { authorization: `Bearer ${t.app.rootToken}` });
    const rows = (JSON.parse(audit.body) as { events: Array<{ details: { client_address: string; count: number } }> }).events;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.details).toMatchObject({ client_address: '127.0.0.1', count: 1 });
  });

  it('honours X-Forwarded-For only from a configured trusted proxy', async () => {
    t = await startTestApp({ ...ENV, VAULT_TRUSTED_PROXIES: '127.0.0.1' }, { clock: windowAlignedClock() });
    const bad = { authorization: 'Bearer not-a-valid-token-at-all' };
    for (let i = 0; i < LIMIT; i++) expect((await httpFrom(t, '127.0.0.1', '/v1/agents', { ...bad, 'x-forwarded-for': '203.0.113.9' })).status).toBe(401);
    expect((await httpFrom(t, '127.0.0.1', '/v1/agents', { ...bad, 'x-forwarded-for': '203.0.113.9' })).status).toBe(429);
    // Another client behind the same proxy, and a direct caller that is not a proxy, are served.
    const root = { authorization: `Bearer ${t.app.rootToken}` };
    expect((await httpFrom(t, '127.0.0.1', '/v1/agents', { ...root, 'x-forwarded-for': '203.0.113.10' })).status).toBe(200);
    // 127.0.0.2 is not a trusted proxy: its X-Forwarded-For is ignored, so it cannot pose as the flooder...
    expect((await httpFrom(t, '127.0.0.2', '/v1/agents', { ...root, 'x-forwarded-for': '203.0.113.9' })).status).toBe(200);
    // ...nor escape its own limit by naming other addresses.
    for (let i = 0; i < LIMIT; i++) await httpFrom(t, '127.0.0.2', '/v1/agents', { ...bad, 'x-forwarded-for': `198.51.100.${i}` });
    expect((await httpFrom(t, '127.0.0.2', '/v1/agents', { ...root, 'x-forwarded-for': '198.51.100.200' })).status).toBe(429);

    const audit = await t.http('GET', '/v1/audit/events?action=auth.failed&limit=1000', { headers: { 'x-forwarded-for': '192.0.2.1' } });
    expect(audit.status).toBe(200);
    const rows = audit.json.events as Array<{ details: { client_address: string; count: number } }>;
    // 2 x LIMIT failures and 2 refusals so far: the first failure of each address is written at once,
    // the rest wait for the end of the window.
    expect(rows.map((r) => r.details.client_address).sort()).toEqual(['127.0.0.2', '203.0.113.9']);
  });
});
