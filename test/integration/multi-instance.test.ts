import { status, type ServiceError } from '@grpc/grpc-js';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { AGENT_CACHE_MS } from '../../src/auth/credential-authenticator.js';
import { createTestClock, startTestApp, TEST_MASTER_KEY, TEST_ROOT_TOKEN, unary, type TestApp, type TestClock } from '../support/test-app.js';

/**
 * Two service instances on one MariaDB database, as an operator scales out: correctness must not
 * depend on which instance serves a call. Each test makes its own vault, paths and agents, and
 * any test that tampers with the database puts it back, so they pass in any order or alone.
 */
describeWithDatabase('several instances on one database', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  /** Instance B's clock, which the revocation test moves past B's agent cache. */
  let clockB: TestClock;
  let vaultId: string;
  const put = (t: TestApp, path: string, value: string, maxAccessCount = 0) =>
    unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path, value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount }, t.auth());
  const get = (t: TestApp, path: string) => unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path }, t.auth());
  /** A vault of the test's own, which put and get then use. */
  async function ownVault(name: string) {
    const { vault } = await unary(a.clients.vaults, a.clients.vaults.createVault, { name, description: '' }, a.auth());
    vaultId = vault!.id;
  }
  const codeOf = (promise: Promise<unknown>) =>
    promise.then(
      () => status.OK,
      (error: ServiceError) => error.code,
    );

  beforeAll(async () => {
    db = (await createTestDatabase())!;
    clockB = createTestClock();
    [a, b] = await Promise.all([startTestApp({ VAULT_DATABASE_URL: db.url }), startTestApp({ VAULT_DATABASE_URL: db.url }, { clock: clockB })]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await db?.drop();
  });

  it('gives unique, gapless versions to concurrent writers on both instances', async () => {
    await ownVault('versions');
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => put(i % 2 ? a : b, 'shared/counter', `v${i}`)));
    expect(results.map((r) => r.secret!.version).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  it('serves exactly N reads of a budget of N across instances', async () => {
    await ownVault('budget');
    await put(a, 'shared/once', 'x', 4);
    const codes = await Promise.all(Array.from({ length: 24 }, (_, i) => codeOf(get(i % 2 ? a : b, 'shared/once'))));
    expect(codes.filter((c) => c === status.OK)).toHaveLength(4);
    expect(codes.filter((c) => c === status.FAILED_PRECONDITION)).toHaveLength(20);
  });

  it('keeps no plaintext in the database, and a ciphertext moved to another row fails with DATA_LOSS', async () => {
    await ownVault('moved');
    const canary = 'plaintext-canary-5d1e0b';
    await put(a, 'shared/moved', canary);
    await put(a, 'shared/moved', 'second');
    const connection = await createConnection(db.url);
    try {
      const [rows] = await connection.query('SELECT * FROM secret_versions');
      const dump = JSON.stringify(rows, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v));
      for (const encoding of [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('hex')]) expect(dump).not.toContain(encoding);
      await connection.execute(
        `UPDATE secret_versions AS target JOIN secret_versions AS source ON source.vault_id = target.vault_id AND source.path = target.path
         SET target.ciphertext = source.ciphertext WHERE target.path = ? AND target.version = 2 AND source.version = 1`,
        [Buffer.from('shared/moved')],
      );
    } finally {
      await connection.end();
    }
    const error = (await unary(b.clients.secrets, b.clients.secrets.getSecretVersion, { vaultId, path: 'shared/moved', version: 2 }, b.auth()).catch((e: ServiceError) => e)) as ServiceError;
    expect(error.code).toBe(status.DATA_LOSS);
    expect(error.details).not.toContain(canary);
    expect((await unary(b.clients.secrets, b.clients.secrets.getSecretVersion, { vaultId, path: 'shared/moved', version: 1 }, b.auth())).secret!.value).toBe(canary);
  });

  it('revokes a rotated agent key on the other instance within a second', async () => {
    await ownVault('revoke');
    await put(a, 'shared/counter', 'readable');
    const created = await unary(a.clients.agents, a.clients.agents.createAgent, { name: 'bot', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, a.auth());
    await unary(a.clients.policies, a.clients.policies.createPolicy,
      { vaultId, secretPathPattern: 'shared/**', principalType: 'agent', principalId: created.agent!.id, permissions: ['read'], conditions: undefined, expiresAt: undefined, effect: '', priority: 0 }, a.auth());
    const oldKey = created.apiKey;
    const { accessToken } = await unary(b.clients.auth, b.clients.auth.createAgentToken, { agentId: '', apiKey: oldKey });
    // Instance B has the agent cached: both credentials work there now.
    expect(await codeOf(unary(b.clients.secrets, b.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, b.auth(oldKey)))).toBe(status.OK);
    expect(await codeOf(unary(b.clients.secrets, b.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, b.auth(accessToken)))).toBe(status.OK);

    const rotated = await unary(a.clients.agents, a.clients.agents.rotateAgentKey, { agentId: created.agent!.id }, a.auth());
    // On the instance that rotated: at once.
    expect(await codeOf(unary(a.clients.secrets, a.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, a.auth(oldKey)))).toBe(status.UNAUTHENTICATED);
    // On the other: once the second it may trust its cached record has passed on its clock.
    clockB.advance(AGENT_CACHE_MS);
    expect(await codeOf(unary(b.clients.secrets, b.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, b.auth(oldKey)))).toBe(status.UNAUTHENTICATED);
    expect(await codeOf(unary(b.clients.secrets, b.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, b.auth(accessToken)))).toBe(status.UNAUTHENTICATED);
    expect(await codeOf(unary(b.clients.auth, b.clients.auth.createAgentToken, { agentId: '', apiKey: oldKey }))).toBe(status.UNAUTHENTICATED);
    expect(await codeOf(unary(b.clients.secrets, b.clients.secrets.getSecret, { vaultId, path: 'shared/counter' }, b.auth(rotated.apiKey)))).toBe(status.OK);
  });

  it('keeps everything across a restart and refuses to start with a key that cannot open the data', async () => {
    await ownVault('durable');
    await put(a, 'shared/durable', 'kept');
    await a.close();
    await expect(startTestApp({ VAULT_DATABASE_URL: db.url, VAULT_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') })).rejects.toThrow(/not configured/);
    a = await startTestApp({ VAULT_DATABASE_URL: db.url, VAULT_MASTER_KEY: TEST_MASTER_KEY });
    expect((await get(a, 'shared/durable')).secret!.value).toBe('kept');
  });

  it('keeps one valid audit chain written by both instances', async () => {
    await ownVault('chain');
    await Promise.all(Array.from({ length: 30 }, (_, i) => put(i % 2 ? a : b, `chain/${i % 3}`, `v${i}`)));
    const verified = await unary(b.clients.audit, b.clients.audit.verifyAuditChain, {}, b.auth());
    expect(verified).toMatchObject({ chainValid: true });
    expect(verified.eventsChecked).toBeGreaterThanOrEqual(31);
    expect(verified.eventsVerified).toBe(verified.eventsChecked);
  });

  it('never writes a value, API key or token to the database outside the ciphertext, nor to the logs', async () => {
    await ownVault('canary');
    const value = 'canary-value-8c2f41e07d';
    const created = await unary(a.clients.agents, a.clients.agents.createAgent, { name: 'canary', description: '', scopes: [], expiresAt: undefined, tokenTtlSeconds: undefined }, a.auth());
    await unary(a.clients.policies, a.clients.policies.createPolicy,
      { vaultId, secretPathPattern: '**', principalType: 'agent', principalId: created.agent!.id, permissions: ['read', 'write'], conditions: undefined, expiresAt: undefined, effect: '', priority: 0 }, a.auth());
    const { accessToken } = await unary(b.clients.auth, b.clients.auth.createAgentToken, { agentId: '', apiKey: created.apiKey });
    await unary(b.clients.secrets, b.clients.secrets.putSecret, { vaultId, path: 'canary/p', value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, b.auth(accessToken));
    await unary(a.clients.secrets, a.clients.secrets.getSecret, { vaultId, path: 'canary/p' }, a.auth(created.apiKey));
    await a.http('GET', `/v1/vaults/${vaultId}/secrets/canary/p`, { token: accessToken });
    await b.http('GET', `/v1/vaults/${vaultId}/secrets/canary/p`, { token: `${created.apiKey}x` }); // a failed authentication
    await unary(a.clients.audit, a.clients.audit.verifyAuditChain, {}, a.auth()); // seal everything

    const connection = await createConnection(db.url);
    let dump = '';
    try {
      const [tables] = await connection.query<Array<{ name: string }> & import('mysql2').RowDataPacket[]>(
        'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()',
      );
      for (const { name } of tables) {
        const [rows] = await connection.query(`SELECT * FROM \`${name}\``);
        dump += JSON.stringify(rows, (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('latin1') : v));
      }
    } finally {
      await connection.end();
    }
    const haystack = `${dump}\n${a.logs.join('\n')}\n${b.logs.join('\n')}`;
    for (const secret of [value, created.apiKey, created.apiKey.slice(4), accessToken, accessToken.split('.')[2]!, TEST_ROOT_TOKEN]) {
      for (const encoded of [secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), Buffer.from(secret).toString('hex'), encodeURIComponent(secret)]) {
        expect(haystack).not.toContain(encoded);
      }
    }
    expect(dump).toContain('canary/p'); // the dump really covers the rows written
  });

  it('reports the first broken event after a row is edited or deleted in the database', async () => {
    await ownVault('tamper');
    for (let i = 0; i < 10; i++) await put(i % 2 ? a : b, 'tamper/p', `v${i}`);
    const before = await unary(a.clients.audit, a.clients.audit.verifyAuditChain, {}, a.auth());
    expect(before.chainValid).toBe(true);
    const connection = await createConnection(db.url);
    try {
      const [[edited]] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT id FROM audit_events WHERE chain_index = 5');
      await connection.query("UPDATE audit_events SET outcome = 'denied' WHERE chain_index = 5");
      const afterEdit = await unary(b.clients.audit, b.clients.audit.verifyAuditChain, {}, b.auth());
      expect(afterEdit).toMatchObject({ chainValid: false, eventsVerified: 4, brokenAtEventId: Buffer.isBuffer(edited!.id) ? edited!.id.toString() : edited!.id });
      await connection.query("UPDATE audit_events SET outcome = 'success' WHERE chain_index = 5");
      expect((await unary(b.clients.audit, b.clients.audit.verifyAuditChain, {}, b.auth())).chainValid).toBe(true);

      const [[next]] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT id FROM audit_events WHERE chain_index = 8');
      // Kept aside exactly as stored, to put back: later tests need an intact chain.
      await connection.query('CREATE TEMPORARY TABLE deleted_event AS SELECT * FROM audit_events WHERE chain_index = 7');
      await connection.query('DELETE FROM audit_events WHERE chain_index = 7');
      const afterDelete = await unary(a.clients.audit, a.clients.audit.verifyAuditChain, {}, a.auth());
      expect(afterDelete).toMatchObject({ chainValid: false, eventsVerified: 6, brokenAtEventId: Buffer.isBuffer(next!.id) ? next!.id.toString() : next!.id });
      const overHttp = await a.http('GET', '/v1/audit/verify');
      expect(overHttp.json).toMatchObject({ chain_valid: false, events_verified: 6, broken_at_event_id: afterDelete.brokenAtEventId });
      await connection.query('INSERT INTO audit_events SELECT * FROM deleted_event');
      expect((await unary(a.clients.audit, a.clients.audit.verifyAuditChain, {}, a.auth())).chainValid).toBe(true);
    } finally {
      await connection.end();
    }
  });
});
