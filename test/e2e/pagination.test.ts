import type { JsonObject } from '@bufbuild/protobuf';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRouteTable, descriptorRegistry } from '../../src/gateway/route-table.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';
import { grpcDriver, httpDriver } from '../scenarios/drivers.js';
import type { Driver, Outcome } from '../scenarios/scenario.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { startTestApp, unary, type TestApp } from '../support/test-app.js';

/**
 * AIP-158 pages on every list, over gRPC and HTTP, on memory and MySQL: keyset pages stay exact
 * while writers add rows between and during page fetches, and an agent's pages hold exactly the
 * paths it may read however sparse they are.
 */
const registry = descriptorRegistry(loadDescriptorSetBytes());

/** Runs `count` calls of `work`, at most `width` at a time. */
async function inParallel(count: number, width: number, work: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

const hex = (i: number) => `${(i * 2654435761) % 4294967296}`.padStart(10, '0');

/** Each id once, all of `expected` there, in (created_at, id) order. */
function expectCreatedOrder(listed: Array<{ id: string; created_at: string }>, expected: string[]) {
  const ids = listed.map((r) => r.id);
  expect(new Set(ids).size).toBe(ids.length);
  for (const id of expected) expect(ids).toContain(id);
  const key = (r: { id: string; created_at: string }) => `${new Date(r.created_at).toISOString()} ${r.id}`;
  expect(listed.map(key)).toEqual(listed.map(key).sort());
}

interface Started {
  t: TestApp;
  stop(): Promise<void>;
  /**
   * Gives a path `count` versions quickly. Writes to one path queue on its counter row by design
   * (that keeps numbers gapless), so on MySQL thousands of them through the API take minutes on
   * a loaded machine; the listing, not the writing, is under test here.
   */
  seedVersions?(vaultId: string, path: string, count: number): Promise<void>;
}

function pagingSuite(storageName: string, start: () => Promise<Started>) {
  let seedVersions: Started['seedVersions'];
  let t: TestApp;
  let stop: () => Promise<void>;
  let drivers: Driver[];
  let vaultId: string;
  const call = async (driver: Driver, rpc: string, request: JsonObject, token?: string | null): Promise<Outcome> =>
    driver.call({ name: rpc, rpc: `vault.v1.${rpc}`, request: () => request, token }, request);
  const ok = async (driver: Driver, rpc: string, request: JsonObject, token?: string | null): Promise<any> => {
    const outcome = await call(driver, rpc, request, token);
    expect(status[outcome.code], `${rpc} over ${driver.name}: ${outcome.reason}`).toBe('OK');
    return outcome.response;
  };
  // Writes go straight through the gRPC client: they are the load, not what is under test.
  const put = (path: string, vault = vaultId) =>
    unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId: vault, path, value: 'v', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, t.auth());

  /** Every page of a list, with `between` run beside each page fetch (so writes race the reads). */
  async function allPages(driver: Driver, rpc: string, request: JsonObject, field: string, between: () => Promise<unknown> = async () => {}, token?: string) {
    const pages: any[][] = [];
    let pageToken = '';
    do {
      const [response] = await Promise.all([ok(driver, rpc, { ...request, page_token: pageToken }, token), between()]);
      pages.push(response[field]);
      pageToken = response.next_page_token;
      expect(pages.length).toBeLessThan(1000);
    } while (pageToken !== '');
    return pages;
  }

  describe(`pages on ${storageName}`, () => {
    beforeAll(async () => {
      ({ t, stop, seedVersions } = await start());
      const routes = createRouteTable({ methods: t.app.methods, registry });
      drivers = [grpcDriver(t, registry), httpDriver(t, routes, { encodeSlashes: false })];
      vaultId = (await ok(drivers[0]!, 'VaultService.CreateVault', { name: 'paging' })).vault.id;
      await inParallel(2500, 16, (i) => put(`s/${hex(i)}`));
    }, 240_000);
    afterAll(() => stop?.());

    it('lists 2,500 secrets in pages of 100 while 200 more are written: old ones exactly once, new ones at most once', async () => {
      const existing = new Set(Array.from({ length: 2500 }, (_, i) => `s/${hex(i)}`));
      for (const [n, driver] of drivers.entries()) {
        let written = 0;
        // 8 new paths beside each page fetch, spread over the key space (before and after the cursor).
        const writeSome = () => inParallel(8, 8, () => (written < 200 ? put(`s/${hex(100_000 * (n + 1) + written++)}`) : Promise.resolve()));
        const pages = await allPages(driver, 'SecretService.ListSecrets', { vault_id: vaultId, prefix: 's/', page_size: 100 }, 'secrets', writeSome);
        while (written < 200) await put(`s/${hex(100_000 * (n + 1) + written++)}`);
        const paths: string[] = pages.flat().map((s) => s.path);
        for (const page of pages) expect(page.length).toBeLessThanOrEqual(100);
        expect(new Set(paths).size, `no path twice over ${driver.name}`).toBe(paths.length);
        const seen = new Set(paths);
        expect([...existing].filter((p) => !seen.has(p)), `paths missing over ${driver.name}`).toEqual([]);
        const sorted = [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        expect(paths).toEqual(sorted);
        expect(paths.length).toBeGreaterThanOrEqual(existing.size);
        expect(paths.length).toBeLessThanOrEqual(existing.size + 200);
        // What this round wrote exists before the next round starts.
        for (let i = 0; i < 200; i++) existing.add(`s/${hex(100_000 * (n + 1) + i)}`);
      }
    }, 240_000);

    it('lists 3,000 versions of one path newest first while 200 more are written, each old one exactly once', async () => {
      const path = 'many/versions';
      if (seedVersions) await seedVersions(vaultId, path, 3000);
      else await inParallel(3000, 32, () => put(path));
      for (const driver of drivers) {
        const before = (await ok(driver, 'SecretService.ListSecretVersions', { vault_id: vaultId, path, page_size: 1 })).versions[0].version as number;
        const writeSome = () => Promise.all(Array.from({ length: 7 }, () => put(path)));
        const pages = await allPages(driver, 'SecretService.ListSecretVersions', { vault_id: vaultId, path, page_size: 100 }, 'versions', writeSome);
        const versions: number[] = pages.flat().map((v) => v.version);
        expect(new Set(versions).size).toBe(versions.length);
        const seen = new Set(versions);
        expect(Array.from({ length: before }, (_, i) => i + 1).filter((v) => !seen.has(v)), `versions missing over ${driver.name}`).toEqual([]);
        expect(versions).toEqual([...versions].sort((a, b) => b - a));
        expect(before).toBeGreaterThanOrEqual(3000);
      }
    }, 240_000);

    it('clamps page_size to 1,000, defaults to 100, refuses a negative one', async () => {
      for (const driver of drivers) {
        expect((await ok(driver, 'SecretService.ListSecrets', { vault_id: vaultId, page_size: 5000 })).secrets).toHaveLength(1000);
        expect((await ok(driver, 'SecretService.ListSecrets', { vault_id: vaultId })).secrets).toHaveLength(100);
        expect(status[(await call(driver, 'SecretService.ListSecrets', { vault_id: vaultId, page_size: -1 })).code]).toBe('INVALID_ARGUMENT');
      }
    });

    it('refuses a page token that was altered, made up, or sent with other filters', async () => {
      const first = await ok(drivers[0]!, 'SecretService.ListSecrets', { vault_id: vaultId, prefix: 's/', page_size: 10 });
      const token: string = first.next_page_token;
      expect(token).not.toBe('');
      const flipped = `${token.slice(0, 3)}${token[3] === 'A' ? 'B' : 'A'}${token.slice(4)}`;
      const forged = `${Buffer.from(JSON.stringify('s/zzz')).toString('base64url')}.${token.split('.')[1]}`;
      for (const driver of drivers) {
        for (const bad of [flipped, forged, 'nonsense', `${token}.x`]) {
          expect(status[(await call(driver, 'SecretService.ListSecrets', { vault_id: vaultId, prefix: 's/', page_token: bad })).code], bad).toBe('INVALID_ARGUMENT');
        }
        expect(status[(await call(driver, 'SecretService.ListSecrets', { vault_id: vaultId, prefix: 's/0', page_token: token })).code]).toBe('INVALID_ARGUMENT');
        const second = await ok(driver, 'SecretService.ListSecrets', { vault_id: vaultId, prefix: 's/', page_size: 10, page_token: token });
        expect(second.secrets[0].path > first.secrets[9].path).toBe(true);
      }
    });

    it("pages an agent's listing to exactly the paths it may read, also across long unreadable stretches", async () => {
      const vault = (await ok(drivers[0]!, 'VaultService.CreateVault', { name: 'agent-paging' })).vault.id as string;
      const readable = new Set<string>();
      // 40 groups: readable and unreadable paths interleaved, then a run of 250 unreadable ones
      // (more than the 100 rows one page of 10 may scan), then readable ones again.
      const paths: string[] = [];
      for (let i = 0; i < 40; i++) paths.push(`g/${String(i).padStart(3, '0')}/ok`, `g/${String(i).padStart(3, '0')}/no`);
      for (let i = 0; i < 250; i++) paths.push(`h/${String(i).padStart(3, '0')}/no`);
      for (let i = 0; i < 15; i++) paths.push(`i/${String(i).padStart(3, '0')}/ok`);
      await inParallel(paths.length, 16, (i) => put(paths[i]!, vault));
      for (const p of paths) if (p.endsWith('/ok')) readable.add(p);
      const agent = await ok(drivers[0]!, 'AgentService.CreateAgent', { name: 'pager' });
      await ok(drivers[0]!, 'PolicyService.CreatePolicy', {
        vault_id: vault,
        secret_path_pattern: '*/*/ok',
        principal_type: 'agent',
        principal_id: agent.agent.id,
        permissions: ['read'],
      });
      const token = (await ok(drivers[0]!, 'AuthService.CreateAgentToken', { api_key: agent.api_key }, null)).access_token as string;
      for (const driver of drivers) {
        const pages = await allPages(driver, 'SecretService.ListSecrets', { vault_id: vault, page_size: 10 }, 'secrets', undefined, token);
        const listed: string[] = pages.flat().map((s) => s.path);
        expect(listed.filter((p) => !readable.has(p))).toEqual([]);
        expect(new Set(listed).size).toBe(listed.length);
        expect(new Set(listed)).toEqual(readable);
        // The unreadable run made at least one page short without ending the listing.
        expect(pages.slice(0, -1).some((page) => page.length < 10)).toBe(true);
      }
    });

    it('pages vaults, agents, policies and audit events, and keeps limit/offset for the audit trail', async () => {
      const driver = drivers[1]!;
      const vaults: string[] = [(await ok(driver, 'VaultService.CreateVault', { name: 'p-0' })).vault.id];
      for (let i = 1; i < 7; i++) vaults.push((await ok(driver, 'VaultService.CreateVault', { name: `p-${i}` })).vault.id);
      for (const d of drivers) {
        const listed = (await allPages(d, 'VaultService.ListVaults', { page_size: 3 }, 'vaults')).flat();
        expectCreatedOrder(listed, vaults);
      }
      const agents: string[] = [];
      for (let i = 0; i < 5; i++) agents.push((await ok(driver, 'AgentService.CreateAgent', { name: `a-${i}` })).agent.id);
      for (const d of drivers) {
        expectCreatedOrder((await allPages(d, 'AgentService.ListAgents', { page_size: 2 }, 'agents')).flat(), agents);
      }
      const policies: string[] = [];
      for (let i = 0; i < 5; i++) {
        policies.push(
          (await ok(driver, 'PolicyService.CreatePolicy', { vault_id: vaults[0]!, secret_path_pattern: `x${i}/*`, principal_type: 'agent', principal_id: agents[0]!, permissions: ['read'] })).policy.id,
        );
      }
      for (const d of drivers) {
        expectCreatedOrder((await allPages(d, 'PolicyService.ListPolicies', { vault_id: vaults[0]!, page_size: 2 }, 'policies')).flat(), policies);
        const events = (await allPages(d, 'AuditService.ListAuditEvents', { action: 'policy.create', page_size: 2 }, 'events')).flat();
        expect(events.map((e) => e.resource_id).slice(0, 5)).toEqual([...policies].reverse());
        const byOffset = await ok(d, 'AuditService.ListAuditEvents', { action: 'policy.create', limit: 2, offset: 1 });
        expect(byOffset.events.map((e: any) => e.resource_id)).toEqual([policies[3], policies[2]]);
        expect(byOffset.next_page_token).not.toBe('');
        const rest = await ok(d, 'AuditService.ListAuditEvents', { action: 'policy.create', limit: 2, page_token: byOffset.next_page_token });
        expect(rest.events.map((e: any) => e.resource_id)).toEqual([policies[1], policies[0]]);
        expect(status[(await call(d, 'AuditService.ListAuditEvents', { action: 'policy.create', offset: 1, page_token: byOffset.next_page_token })).code]).toBe('INVALID_ARGUMENT');
        expect(status[(await call(d, 'AuditService.ListAuditEvents', { action: 'secret.read', page_token: byOffset.next_page_token })).code]).toBe('INVALID_ARGUMENT');
      }
    });
  });
}

pagingSuite('memory', async () => {
  const t = await startTestApp();
  return { t, stop: () => t.close() };
});

describeWithDatabase('pages on MySQL', () => {
  let db: TestDatabase;
  pagingSuite('MySQL', async () => {
    db = (await createTestDatabase())!;
    const t = await startTestApp({ VAULT_DATABASE_URL: db.url });
    return {
      t,
      async seedVersions(vaultId, path, count) {
        const sql = await createConnection(db.url);
        try {
          const key = [Buffer.from(vaultId), Buffer.from(path)];
          await sql.query('INSERT INTO secrets (vault_id, path, last_version, deleted) VALUES (?, ?, ?, 0)', [...key, count]);
          for (let from = 1; from <= count; from += 500) {
            const rows = Array.from({ length: Math.min(500, count - from + 1) }, (_, i) => [
              ...key, from + i, Buffer.from(randomUUID()), 'generic', null, Buffer.from('not a real ciphertext'), 'root', new Date(), null, 0,
            ]);
            await sql.query(
              'INSERT INTO secret_versions (vault_id, path, version, id, type, metadata, ciphertext, created_by, created_at, expires_at, max_access_count) VALUES ?',
              [rows],
            );
          }
        } finally {
          await sql.end();
        }
      },
      async stop() {
        await t.close();
        await db.drop();
      },
    };
  });
});
