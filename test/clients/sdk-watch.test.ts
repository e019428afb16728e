import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Through the package entry, as a consumer following its secrets would import it.
import { createVaultClient, PermissionDeniedError, type SecretEvent, type VaultClient } from 'vault/client';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

/** Collects what `client.watch` yields in the background, until the test aborts it. */
function follow(client: VaultClient, request: Parameters<VaultClient['watch']>[0]) {
  const controller = new AbortController();
  const events: SecretEvent[] = [];
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const event of client.watch(request, { signal: controller.signal })) events.push(event);
    } catch (error) {
      failure = error;
    }
  })();
  return {
    events,
    failure: () => failure,
    async stop() {
      controller.abort();
      await done;
    },
    done,
  };
}

async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True once the app serves `n` watch streams (its vault_watch_streams gauge). */
const serving = (t: TestApp, n: number) => async () => /^vault_watch_streams (\d+)$/m.exec((await t.http('GET', '/metrics')).text)?.[1] === String(n);

describe('SDK watch', () => {
  let t: TestApp;
  let root: VaultClient;
  let vaultId: string;
  beforeAll(async () => {
    t = await startTestApp();
    root = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    vaultId = (await root.vaults.createVault({ name: 'sdk-watch' })).vault!.id;
  });
  afterAll(async () => {
    root.close();
    await t.close();
  });

  it('yields an agent the changes it may read, ends on abort, and fails on a refusal', async () => {
    const { agent, apiKey } = await root.agents.createAgent({ name: 'sdk-watcher' });
    await root.policies.createPolicy({ vaultId, secretPathPattern: 'app/**', principalType: 'agent', principalId: agent!.id, permissions: ['read'] });
    const client = createVaultClient({ address: t.grpcAddress, credentials: { apiKey } });
    try {
      const watcher = follow(client, { vaultId });
      await until(serving(t, 1), 'the stream to open');
      await root.secrets.putSecret({ vaultId, path: 'ops/hidden', value: 'x' });
      await root.secrets.putSecret({ vaultId, path: 'app/db', value: 'x' });
      await until(() => watcher.events.length > 0, 'app/db');
      expect(watcher.events.map((e) => [e.type, e.path, e.actor])).toEqual([['version_created', 'app/db', 'root']]);
      await watcher.stop();
      expect(watcher.failure()).toBeUndefined();

      const refused = follow(client, { vaultId, path: 'ops/hidden' });
      await refused.done;
      expect(refused.failure()).toBeInstanceOf(PermissionDeniedError);
    } finally {
      client.close();
    }
  });
});

describeWithDatabase('SDK watch across a server restart', () => {
  let db: TestDatabase;
  let other: TestApp;
  beforeAll(async () => {
    db = (await createTestDatabase())!;
    other = await startTestApp({ VAULT_DATABASE_URL: db.url });
  });
  afterAll(async () => {
    await other?.close();
    await db?.drop();
  });

  it('reconnects after its server stops and resumes from its cursor: every change once, in order', async () => {
    let served = await startTestApp({ VAULT_DATABASE_URL: db.url });
    const port = served.app.grpcPort;
    const root = createVaultClient({ address: served.grpcAddress, credentials: { token: TEST_ROOT_TOKEN }, retry: { initialBackoffMs: 50, maxBackoffMs: 200 } });
    const writer = createVaultClient({ address: other.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    try {
      const vaultId = (await writer.vaults.createVault({ name: 'sdk-restart' })).vault!.id;
      const watcher = follow(root, { vaultId, prefix: 'svc/' });
      await until(serving(served, 1), 'the stream to open');
      await writer.secrets.putSecret({ vaultId, path: 'svc/before', value: 'x' });
      await until(() => watcher.events.length === 1, 'the change before the restart');

      await served.close();
      // Written on the other instance while the watcher's server is down.
      for (const i of [1, 2, 3]) await writer.secrets.putSecret({ vaultId, path: `svc/while-down-${i}`, value: 'x' });
      served = await startTestApp({ VAULT_DATABASE_URL: db.url, VAULT_GRPC_PORT: String(port) });
      await writer.secrets.putSecret({ vaultId, path: 'svc/after', value: 'x' });

      await until(() => watcher.events.some((e) => e.path === 'svc/after'), 'the change after the restart');
      expect(watcher.events.map((e) => e.path)).toEqual(['svc/before', 'svc/while-down-1', 'svc/while-down-2', 'svc/while-down-3', 'svc/after']);
      await watcher.stop();
      expect(watcher.failure()).toBeUndefined();
    } finally {
      root.close();
      writer.close();
      await served.close();
    }
  }, 60_000);
});
