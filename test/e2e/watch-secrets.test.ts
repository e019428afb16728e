import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SecretEvent, WatchSecretsRequest, WatchSecretsResponse } from '../../src/gen/vault/v1/secret_service.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { decodeCursor, encodeCursor } from '../../src/domain/secret-watch.js';
import { createTestClock, startTestApp, unary, type TestApp, type TestClock } from '../support/test-app.js';

/** Polls `condition` until it holds, failing after `ms`: arrival is awaited, never timed. */
async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A WatchSecrets call over gRPC, collecting what it receives. */
function watchGrpc(t: TestApp, request: Partial<WatchSecretsRequest> & { vaultId: string }, token?: string) {
  const call = t.clients.secrets.watchSecrets({ path: '', prefix: '', after: '', ...request }, t.auth(token));
  const messages: WatchSecretsResponse[] = [];
  let error: ServiceError | undefined;
  let ended = false;
  call.on('data', (message: WatchSecretsResponse) => messages.push(message));
  call.on('error', (e: ServiceError) => {
    error = e;
    ended = true;
  });
  call.on('end', () => (ended = true));
  const events = () => messages.flatMap((m) => (m.message?.$case === 'event' ? [m.message.value] : []));
  const heartbeats = () => messages.flatMap((m) => (m.message?.$case === 'heartbeat' ? [m.message.value] : []));
  return {
    messages,
    events,
    heartbeats,
    /** Resolves once the stream is open (its first message, a heartbeat, arrived). */
    opened: () => until(() => messages.length > 0 || ended, 'the stream to open').then(() => {
      if (error) throw error;
    }),
    /** The status it ended with, once it has ended. */
    ended: async () => {
      await until(() => ended, 'the stream to end');
      return error?.code ?? status.OK;
    },
    cancel: () => call.cancel(),
  };
}

interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A WatchSecrets call as Server-Sent Events, collecting parsed frames. */
async function watchSse(t: TestApp, query: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(`${t.httpBaseUrl}/v1/vaults/${query}`, {
    headers: { authorization: `Bearer ${t.app.rootToken}`, accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const frames: SseFrame[] = [];
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame: SseFrame = {};
            for (const line of buffer.slice(0, end).split('\n')) {
              if (line.startsWith(':')) frame.comment = line.slice(1).trim();
              else {
                const at = line.indexOf(': ');
                (frame as Record<string, string>)[line.slice(0, at)] = line.slice(at + 2);
              }
            }
            frames.push(frame);
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        // aborted by the test
      }
    })();
  }
  return {
    response,
    frames,
    events: () => frames.filter((f) => f.event !== undefined && f.event !== 'error').map((f) => ({ id: f.id!, type: f.event!, data: JSON.parse(f.data!) })),
    close: () => controller.abort(),
  };
}

/** The guarantees every backend gives; `a` writes, `b` serves the watchers (one instance on memory). */
function watchSuite(instances: () => { a: TestApp; b: TestApp }) {
  let a: TestApp;
  let b: TestApp;
  beforeAll(() => ({ a, b } = instances()));

  const newVault = async (name: string) => (await unary(a.clients.vaults, a.clients.vaults.createVault, { name, description: '' }, a.auth())).vault!.id;
  const put = (vaultId: string, path: string, value: string) =>
    unary(a.clients.secrets, a.clients.secrets.putSecret, { vaultId, path, value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, a.auth());
  const rotate = (vaultId: string, path: string) =>
    unary(a.clients.secrets, a.clients.secrets.rotateSecret, { vaultId, path, length: undefined, charset: '', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: undefined }, a.auth());
  const disable = (vaultId: string, path: string, version: number) =>
    unary(a.clients.secrets, a.clients.secrets.disableSecretVersion, { vaultId, path, version }, a.auth());

  it('shows a watcher on one instance a PUT made through another, over gRPC, without its value', async () => {
    const vaultId = await newVault('watch-grpc');
    const watcher = watchGrpc(b, { vaultId, prefix: 'app/' });
    await watcher.opened();
    await put(vaultId, 'other/ignored', 'not-followed-value');
    await put(vaultId, 'app/db-password', 'hunter2-canary-value');
    await until(() => watcher.events().length > 0, 'the PUT to arrive');
    const [event] = watcher.events();
    expect(event).toMatchObject({ type: 'version_created', how: 'put', vaultId, path: 'app/db-password', version: 1, actor: 'root', stage: '' });
    expect(event!.cursor).not.toBe('');
    expect(JSON.stringify(watcher.messages)).not.toContain('canary-value');
    watcher.cancel();
  });

  it('shows the same over Server-Sent Events, with the cursor as the event id', async () => {
    const vaultId = await newVault('watch-sse');
    const sse = await watchSse(b, `${vaultId}/secret-events?prefix=app/`);
    expect(sse.response.status).toBe(200);
    expect(sse.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await until(() => sse.frames.length > 0, 'the opening heartbeat');
    expect(sse.frames[0]!.comment).toMatch(/^heartbeat/);
    await put(vaultId, 'app/api-key', 'sse-canary-value');
    await until(() => sse.events().length > 0, 'the PUT to arrive');
    const [event] = sse.events();
    expect(event).toMatchObject({ type: 'version_created', data: { type: 'version_created', how: 'put', path: 'app/api-key', version: 1, vault_id: vaultId } });
    expect(event!.id).toBe(event!.data.cursor);
    expect(JSON.stringify(sse.frames)).not.toContain('canary-value');
    sse.close();
  });

  it('resumes from the last cursor with exactly the changes missed, in commit order', async () => {
    const vaultId = await newVault('watch-resume');
    const first = watchGrpc(b, { vaultId });
    await first.opened();
    await put(vaultId, 'svc/token', 'one');
    await until(() => first.events().length === 1, 'the first event');
    const cursor = first.events()[0]!.cursor;
    first.cancel();
    await first.ended();

    await rotate(vaultId, 'svc/token');
    await put(vaultId, 'svc/other', 'two');
    await disable(vaultId, 'svc/token', 1);

    const resumed = watchGrpc(b, { vaultId, after: cursor });
    await resumed.opened();
    await until(() => resumed.events().length >= 3, 'the three missed events');
    // A change after the three, so anything extra (a duplicate) would have arrived before it.
    await put(vaultId, 'svc/sentinel', 'three');
    await until(() => resumed.events().some((e) => e.path === 'svc/sentinel'), 'the sentinel');
    const seen = resumed.events().map((e: SecretEvent) => [e.type, e.path, e.version, e.how]);
    expect(seen).toEqual([
      ['version_created', 'svc/token', 2, 'rotate'],
      ['version_created', 'svc/other', 1, 'put'],
      ['version_disabled', 'svc/token', 1, ''],
      ['version_created', 'svc/sentinel', 1, 'put'],
    ]);
    resumed.cancel();

    // EventSource's reconnect: Last-Event-ID resumes the same way.
    const sse = await watchSse(b, `${vaultId}/secret-events`, { 'last-event-id': cursor });
    await until(() => sse.events().length >= 4, 'the missed events over SSE');
    expect(sse.events().map((e) => [e.type, e.data.path])).toEqual([
      ['version_created', 'svc/token'],
      ['version_created', 'svc/other'],
      ['version_disabled', 'svc/token'],
      ['version_created', 'svc/sentinel'],
    ]);
    sse.close();
  });

  it('refuses a malformed cursor (INVALID_ARGUMENT, 400) and one past the newest event (OUT_OF_RANGE)', async () => {
    const vaultId = await newVault('watch-cursors');
    expect(await watchGrpc(b, { vaultId, after: 'not-a-cursor' }).ended()).toBe(status.INVALID_ARGUMENT);
    expect(await watchGrpc(b, { vaultId, after: Buffer.from('c:999999999999').toString('base64url') }).ended()).toBe(status.OUT_OF_RANGE);
    expect(await watchGrpc(b, { vaultId, path: 'a', prefix: 'b' }).ended()).toBe(status.INVALID_ARGUMENT);
    const bad = await b.http('GET', `/v1/vaults/${vaultId}/secret-events?after=bogus`);
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/after .* is not a cursor/);
    const ahead = await b.http('GET', `/v1/vaults/${vaultId}/secret-events`, { headers: { 'last-event-id': Buffer.from('c:999999999999').toString('base64url') } });
    expect(ahead.status).toBe(400);
    expect(ahead.json.code).toBe(status.OUT_OF_RANGE);
  });

  it("shows an agent only the paths it may read, and ends its stream when its key is rotated", async () => {
    const vaultId = await newVault('watch-agent');
    const { agent, apiKey } = await unary(a.clients.agents, a.clients.agents.createAgent, { name: 'watcher', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, a.auth());
    await unary(a.clients.policies, a.clients.policies.createPolicy, {
      vaultId, secretPathPattern: 'team/**', principalType: 'agent', principalId: agent!.id, permissions: ['read'], conditions: undefined, expiresAt: undefined, effect: 'allow', priority: 0,
    }, a.auth());
    const other = await newVault('watch-agent-other');
    expect(await watchGrpc(b, { vaultId: other }, apiKey).ended()).toBe(status.PERMISSION_DENIED);
    expect(await watchGrpc(b, { vaultId, path: 'secret/ops' }, apiKey).ended()).toBe(status.PERMISSION_DENIED);

    const watcher = watchGrpc(b, { vaultId }, apiKey);
    await watcher.opened();
    await put(vaultId, 'secret/ops', 'hidden');
    await put(vaultId, 'team/config', 'shown');
    await until(() => watcher.events().length > 0, 'the readable change');
    await put(vaultId, 'team/sentinel', 'shown');
    await until(() => watcher.events().some((e) => e.path === 'team/sentinel'), 'the sentinel');
    expect(watcher.events().map((e) => e.path)).toEqual(['team/config', 'team/sentinel']);

    await unary(a.clients.agents, a.clients.agents.rotateAgentKey, { agentId: agent!.id }, a.auth());
    expect(await watcher.ended()).toBe(status.UNAUTHENTICATED);
  });

  it("ends an agent's stream with PERMISSION_DENIED once its last policy in the vault is deleted", async () => {
    const vaultId = await newVault('watch-policy');
    const { agent, apiKey } = await unary(a.clients.agents, a.clients.agents.createAgent, { name: 'policy-watcher', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, a.auth());
    const { policy } = await unary(a.clients.policies, a.clients.policies.createPolicy, {
      vaultId, secretPathPattern: '**', principalType: 'agent', principalId: agent!.id, permissions: ['read'], conditions: undefined, expiresAt: undefined, effect: 'allow', priority: 0,
    }, a.auth());
    const watcher = watchGrpc(b, { vaultId, path: 'app/key' }, apiKey);
    await watcher.opened();
    await unary(a.clients.policies, a.clients.policies.deletePolicy, { vaultId, policyId: policy!.id }, a.auth());
    expect(await watcher.ended()).toBe(status.PERMISSION_DENIED);
  });

  it('shows version_budget_spent after the read that takes the last of a budget of 2, and not after the first', async () => {
    const vaultId = await newVault('watch-budget');
    const watcher = watchGrpc(b, { vaultId, prefix: 'budget/' });
    await watcher.opened();
    await unary(a.clients.secrets, a.clients.secrets.putSecret, { vaultId, path: 'budget/once', value: 'budget-canary-value', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 2 }, a.auth());
    const read = () => unary(a.clients.secrets, a.clients.secrets.getSecret, { vaultId, path: 'budget/once' }, a.auth());
    expect((await read()).secret!.value).toBe('budget-canary-value');
    // A change after the first read, so an event that read caused would have arrived before it.
    await put(vaultId, 'budget/sentinel-1', 'x');
    await until(() => watcher.events().some((e) => e.path === 'budget/sentinel-1'), 'the first sentinel');
    expect(watcher.events().map((e) => e.type)).toEqual(['version_created', 'version_created']);

    await read();
    await expect(read()).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
    await put(vaultId, 'budget/sentinel-2', 'x');
    await until(() => watcher.events().some((e) => e.path === 'budget/sentinel-2'), 'the second sentinel');
    expect(watcher.events().map((e) => [e.type, e.path, e.version, e.actor])).toEqual([
      ['version_created', 'budget/once', 1, 'root'],
      ['version_created', 'budget/sentinel-1', 1, 'root'],
      ['version_budget_spent', 'budget/once', 1, 'root'],
      ['version_created', 'budget/sentinel-2', 1, 'root'],
    ]);
    expect(JSON.stringify(watcher.messages)).not.toContain('canary-value');
    watcher.cancel();

    // Audited with the read that spent it (newest first), and the chain still verifies.
    const audit = await unary(a.clients.audit, a.clients.audit.listAuditEvents, { action: '', actorId: '', resourceId: 'budget/once', from: undefined, to: undefined, limit: 10, offset: 0, pageSize: 0, pageToken: '' }, a.auth());
    expect(audit.events.map((e) => [e.action, e.actorType])).toEqual([
      ['secret.budget_spent', 'root'],
      ['secret.read', 'root'],
      ['secret.read', 'root'],
      ['secret.write', 'root'],
    ]);
    const verified = await unary(b.clients.audit, b.clients.audit.verifyAuditChain, {}, b.auth());
    expect(verified).toMatchObject({ chainValid: true });
  });

  it('reports staging, promotion, enabling and deletion, and ends when the vault is deleted', async () => {
    const vaultId = await newVault('watch-kinds');
    const watcher = watchGrpc(b, { vaultId, path: 'svc/key' });
    await watcher.opened();
    await put(vaultId, 'svc/key', 'one');
    await unary(a.clients.secrets, a.clients.secrets.putSecret, { vaultId, path: 'svc/key', value: 'two', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0, stage: 'pending' }, a.auth());
    await unary(a.clients.secrets, a.clients.secrets.promoteSecretVersion, { vaultId, path: 'svc/key', version: 2 }, a.auth());
    await disable(vaultId, 'svc/key', 1);
    await unary(a.clients.secrets, a.clients.secrets.enableSecretVersion, { vaultId, path: 'svc/key', version: 1 }, a.auth());
    await unary(a.clients.secrets, a.clients.secrets.deleteSecret, { vaultId, path: 'svc/key' }, a.auth());
    await until(() => watcher.events().length >= 6, 'six events');
    expect(watcher.events().map((e) => [e.type, e.version, e.how, e.stage, e.replacedVersion])).toEqual([
      ['version_created', 1, 'put', '', 0],
      ['version_created', 2, 'put', 'pending', 0],
      ['version_promoted', 2, '', '', 1],
      ['version_disabled', 1, '', '', 0],
      ['version_enabled', 1, '', '', 0],
      ['secret_deleted', 0, '', '', 0],
    ]);
    await unary(a.clients.vaults, a.clients.vaults.deleteVault, { vaultId }, a.auth());
    expect(await watcher.ended()).toBe(status.NOT_FOUND);
  });
}

describe('WatchSecrets on memory storage', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app?.close());
  watchSuite(() => ({ a: app, b: app }));
});

describeWithDatabase('WatchSecrets across two instances on one MySQL database', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    db = (await createTestDatabase())!;
    [a, b] = await Promise.all([startTestApp({ VAULT_DATABASE_URL: db.url }), startTestApp({ VAULT_DATABASE_URL: db.url })]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await db?.drop();
  });
  watchSuite(() => ({ a, b }));
});

describe('WatchSecrets and a client that stops reading', () => {
  it('holds its stream back instead of buffering, and delivers every event in order once it reads again', async () => {
    const app = await startTestApp();
    try {
      const { vault } = await unary(app.clients.vaults, app.clients.vaults.createVault, { name: 'slow', description: '' }, app.auth());
      const vaultId = vault!.id;
      const call = app.clients.secrets.watchSecrets({ vaultId, path: '', prefix: '', after: '' }, app.auth());
      const versions: number[] = [];
      call.on('data', (m: WatchSecretsResponse) => {
        if (m.message?.$case === 'event') versions.push(Number(m.message.value.path.slice(m.message.value.path.lastIndexOf('/') + 1)));
      });
      call.on('error', () => {});
      await until(() => call.readableLength === 0, 'the stream to open');
      call.pause();
      // Long paths, so the events outgrow the HTTP/2 flow-control window while nobody reads.
      const long = 'x'.repeat(450);
      const count = 600;
      for (let i = 0; i < count; i++) {
        await unary(app.clients.secrets, app.clients.secrets.putSecret, { vaultId, path: `${long}/${i}`, value: 'v', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, app.auth());
      }
      call.resume();
      await until(() => versions.length >= count, `all ${count} events`, 20_000);
      expect(versions).toEqual(Array.from({ length: count }, (_, i) => i));
      call.cancel();
    } finally {
      await app.close();
    }
  }, 30_000);
});

describe('WatchSecrets and scheduled rotation', () => {
  it("shows a scheduled rotation as a version created by the system, how 'scheduled'", async () => {
    const clock = createTestClock();
    const app = await startTestApp({ VAULT_MIN_ROTATION_INTERVAL_SECONDS: '1' }, { clock, rotationTickMs: null });
    try {
      const { vault } = await unary(app.clients.vaults, app.clients.vaults.createVault, { name: 'scheduled', description: '' }, app.auth());
      const vaultId = vault!.id;
      await unary(app.clients.secrets, app.clients.secrets.putSecret, {
        vaultId, path: 'db/password', value: 'initial', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0, rotationPolicy: { intervalSeconds: 1, charset: '', stage: '' },
      }, app.auth());
      const watcher = watchGrpc(app, { vaultId, prefix: 'db/' });
      await watcher.opened();
      clock.advance(1000);
      expect(await app.app.rotationScheduler.tick()).toBe(1);
      // The put may show too: a stream without a cursor starts at the newest sealed event.
      await until(() => watcher.events().some((e) => e.version === 2), 'the scheduled rotation');
      expect(watcher.events().find((e) => e.version === 2)).toMatchObject({ type: 'version_created', how: 'scheduled', actor: 'system', path: 'db/password', version: 2 });
      watcher.cancel();
    } finally {
      await app.close();
    }
  });
});

/**
 * Expiry on `apps` (sharing one store), all on one injected clock, the recorder ticked by hand:
 * each expired live version shows once as version_expired, however many instances tick.
 */
async function expectEachExpiryOnce(apps: TestApp[], clock: TestClock) {
  const [a, b] = [apps[0]!, apps.at(-1)!];
  const { vault } = await unary(a.clients.vaults, a.clients.vaults.createVault, { name: 'expiry', description: '' }, a.auth());
  const vaultId = vault!.id;
  const put = (path: string, expiresAt: Date | undefined) =>
    unary(a.clients.secrets, a.clients.secrets.putSecret, { vaultId, path, value: 'expiry-canary-value', type: '', metadata: undefined, expiresAt, maxAccessCount: 0 }, a.auth());
  const inAMinute = new Date(clock.now().getTime() + 60_000);
  await put('exp/short', inAMinute);
  await put('exp/disabled', inAMinute);
  await unary(a.clients.secrets, a.clients.secrets.disableSecretVersion, { vaultId, path: 'exp/disabled', version: 1 }, a.auth());
  await put('exp/deleted', inAMinute);
  await unary(a.clients.secrets, a.clients.secrets.deleteSecret, { vaultId, path: 'exp/deleted' }, a.auth());
  await put('exp/long', new Date(clock.now().getTime() + 3600_000));
  await put('exp/never', undefined);
  const tickAll = async () => (await Promise.all(apps.map((t) => t.app.expiryRecorder.tick()))).reduce((x, y) => x + y, 0);

  const watcher = watchGrpc(b, { vaultId, prefix: 'exp/' });
  await watcher.opened();
  // Not yet expired: nothing is recorded however often every instance looks.
  clock.advance(59_000);
  expect(await tickAll()).toBe(0);
  clock.advance(2000);
  expect(await tickAll()).toBe(2);
  expect(await tickAll()).toBe(0);
  await expect(unary(a.clients.secrets, a.clients.secrets.getSecret, { vaultId, path: 'exp/short' }, a.auth())).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });

  // A change after the records, so a second record of either would have arrived before it.
  await put('exp/sentinel', undefined);
  await until(() => watcher.events().some((e) => e.path === 'exp/sentinel'), 'the sentinel');
  const expired = watcher.events().filter((e) => e.type === 'version_expired');
  expect(expired.map((e) => [e.path, e.version, e.actor]).sort()).toEqual([
    ['exp/disabled', 1, 'system'],
    ['exp/short', 1, 'system'],
  ]);
  expect(JSON.stringify(watcher.messages)).not.toContain('canary-value');
  watcher.cancel();

  // Over SSE too: the event's name is its type.
  const sse = await watchSse(b, `${vaultId}/secret-events?path=exp/short`, { 'last-event-id': encodeCursor(decodeCursor(expired[0]!.cursor) - 1) });
  await until(() => sse.events().length > 0, 'the expiry over SSE');
  expect(sse.events()[0]).toMatchObject({ type: 'version_expired', data: { path: 'exp/short', version: 1, actor: 'system' } });
  sse.close();

  const audit = await unary(a.clients.audit, a.clients.audit.listAuditEvents, { action: 'secret.expire', actorId: '', resourceId: '', from: undefined, to: undefined, limit: 10, offset: 0, pageSize: 0, pageToken: '' }, a.auth());
  expect(audit.events.map((e) => [e.resourceId, e.actorType]).sort()).toEqual([
    ['exp/disabled', 'system'],
    ['exp/short', 'system'],
  ]);
  const verified = await unary(b.clients.audit, b.clients.audit.verifyAuditChain, {}, b.auth());
  expect(verified).toMatchObject({ chainValid: true });
}

describe('WatchSecrets and expiry on memory storage', () => {
  it('shows one version_expired per expired live version, as the system, once the clock passes expires_at', async () => {
    const clock = createTestClock();
    const app = await startTestApp({}, { clock, expiryTickMs: null });
    try {
      await expectEachExpiryOnce([app], clock);
    } finally {
      await app.close();
    }
  });
});

describeWithDatabase('WatchSecrets and expiry across two instances on one MySQL database', () => {
  it('records each expiry exactly once with both instances running the job', async () => {
    const db = (await createTestDatabase())!;
    const clock = createTestClock();
    const apps: TestApp[] = [];
    try {
      for (let i = 0; i < 2; i++) apps.push(await startTestApp({ VAULT_DATABASE_URL: db.url }, { clock, expiryTickMs: null }));
      await expectEachExpiryOnce(apps, clock);
    } finally {
      await Promise.all(apps.map((t) => t.close()));
      await db.drop();
    }
  });
});

describe('WatchSecrets limits', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ VAULT_MAX_WATCHERS: '1', VAULT_WATCH_HEARTBEAT_MS: '200' });
  });

  it('sends heartbeats while nothing changes, refuses watchers past the maximum, frees a slot when its client goes, and ends streams on stop', async () => {
    const { vault } = await unary(app.clients.vaults, app.clients.vaults.createVault, { name: 'limits', description: '' }, app.auth());
    const watcher = watchGrpc(app, { vaultId: vault!.id });
    await until(() => watcher.heartbeats().length >= 3, 'repeated heartbeats');
    expect(watcher.heartbeats().every((h) => h.cursor !== '' && h.time instanceof Date)).toBe(true);

    expect((await app.http('GET', '/metrics')).text).toMatch(/^vault_watch_streams 1$/m);

    const refused = watchGrpc(app, { vaultId: vault!.id });
    expect(await refused.ended()).toBe(status.RESOURCE_EXHAUSTED);
    const overHttp = await app.http('GET', `/v1/vaults/${vault!.id}/secret-events`);
    expect(overHttp.status).toBe(429);

    // A client that goes away frees its slot at once, over either transport.
    const openStreams = async () => Number(/^vault_watch_streams (\d+)$/m.exec((await app.http('GET', '/metrics')).text)![1]);
    const freed = async () => {
      const deadline = Date.now() + 10_000;
      while ((await openStreams()) !== 0) {
        if (Date.now() > deadline) throw new Error('the slot was not freed');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    watcher.cancel();
    await freed();
    const sse = await watchSse(app, `${vault!.id}/secret-events`);
    expect(sse.response.status).toBe(200);
    sse.close();
    await freed();
    const last = watchGrpc(app, { vaultId: vault!.id });
    await last.opened();

    const stopping = app.close();
    expect(await last.ended()).toBe(status.UNAVAILABLE);
    await stopping;
  });
});
