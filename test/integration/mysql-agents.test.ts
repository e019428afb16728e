// Agents and policies in MySQL across instances: what one instance changes, another sees at once,
// and credential generations move exactly as often as they should under concurrency.
import { randomBytes, randomUUID } from 'node:crypto';
import { createConnection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import type { AgentRecord, PolicyRecord, Storage, VaultRecord } from '../../src/storage/storage.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

describeWithDatabase('mysql agents and policies', () => {
  let database: TestDatabase;
  const opened: Storage[] = [];

  beforeAll(async () => {
    database = (await createTestDatabase())!;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function open(): Promise<Storage> {
    const storage = await createMysqlStorage({ url: database.url, poolSize: 4 });
    opened.push(storage);
    return storage;
  }

  const agent = (extra: Partial<AgentRecord> = {}): AgentRecord => ({
    id: randomUUID(),
    name: 'ci-bot',
    description: 'builds',
    scopes: ['ci'],
    isActive: true,
    tokenTtlSeconds: 900,
    createdBy: 'root',
    createdAt: new Date('2026-01-01T00:00:00.123Z'),
    expiresAt: null,
    lastActiveAt: null,
    keyHash: Uint8Array.from(randomBytes(32)),
    credentialGeneration: 1,
    ...extra,
  });

  const policy = (vaultId: string, principalId: string, extra: Partial<PolicyRecord> = {}): PolicyRecord => ({
    id: randomUUID(),
    vaultId,
    secretPathPattern: 'db/**',
    principalType: 'agent',
    principalId,
    permissions: ['read'],
    conditions: null,
    expiresAt: null,
    createdBy: 'root',
    createdByType: 'root',
    createdAt: new Date('2026-01-01T00:00:00Z'),
    effect: 'allow',
    priority: 0,
    ...extra,
  });

  async function newVault(storage: Storage): Promise<VaultRecord> {
    const vault = { id: randomUUID(), name: 'v', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date() };
    await storage.vaults.create(vault, []);
    return vault;
  }

  const generation = async (storage: Storage, id: string) => (await storage.agents.get(id))?.credentialGeneration;

  it('rotating a key on one instance makes the old hash find nothing on another at once', async () => {
    const [a, b] = [await open(), await open()];
    const original = agent();
    await a.agents.create(original, []);
    expect((await b.agents.getByKeyHash(original.keyHash))?.id).toBe(original.id); // b has looked it up before

    const newHash = Uint8Array.from(randomBytes(32));
    await a.agents.rotateKey(original.id, newHash, []);
    expect(await b.agents.getByKeyHash(original.keyHash)).toBeNull();
    expect(await b.agents.getByKeyHash(newHash)).toMatchObject({ id: original.id, credentialGeneration: 2 });
  });

  it('never puts a key hash in an error', async () => {
    const storage = await open();
    const first = agent();
    await storage.agents.create(first, []);
    const other = agent();
    await storage.agents.create(other, []);

    const errors = [
      await storage.agents.create(agent({ keyHash: first.keyHash }), []).catch((e: unknown) => e),
      await storage.agents.rotateKey(other.id, first.keyHash, []).catch((e: unknown) => e),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toBe('another agent already has this key');
      expect((error as Error).cause).toBeUndefined();
      const everything = JSON.stringify(error, Object.getOwnPropertyNames(error)) + String((error as Error).stack);
      expect(everything).not.toContain(Buffer.from(first.keyHash).toString('hex').slice(0, 16));
      expect(everything).not.toContain(Buffer.from(first.keyHash).toString('latin1').slice(0, 8));
    }
    await expect(storage.agents.create({ ...agent(), id: first.id }, [])).rejects.toThrow(`agent ${first.id} already exists`);
    // Nothing changed: the failed rotation left the other agent's key and generation alone.
    expect(await storage.agents.get(other.id)).toEqual(other);
  });

  it('refuses a key hash that is not 32 bytes and never finds one', async () => {
    const storage = await open();
    const short = agent({ keyHash: new Uint8Array(31) });
    await expect(storage.agents.create(short, [])).rejects.toThrow('an agent key hash must be 32 bytes');
    const a = agent({ keyHash: new Uint8Array(32) }); // all zeros: a 31-byte zero key would match it if padded
    await storage.agents.create(a, []);
    expect(await storage.agents.getByKeyHash(new Uint8Array(31))).toBeNull();
    expect((await storage.agents.getByKeyHash(new Uint8Array(32)))?.id).toBe(a.id);
    await storage.agents.delete(a.id, []);
  });

  it('bumps the generation once for one deactivation, however many instances send it', async () => {
    const [a, b] = [await open(), await open()];
    const x = agent();
    await a.agents.create(x, []);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).agents.update(x.id, { isActive: false }, [])));
    expect(await b.agents.get(x.id)).toMatchObject({ isActive: false, credentialGeneration: 2 });
    // Other fields change nothing, and undefined leaves a field alone.
    expect(await a.agents.update(x.id, { name: 'renamed', description: undefined, expiresAt: new Date('2030-01-01T00:00:00.5Z') }, [])).toEqual({
      ...x,
      name: 'renamed',
      isActive: false,
      expiresAt: new Date('2030-01-01T00:00:00.5Z'),
      credentialGeneration: 2,
    });
  });

  it('bumps the named agent once per policy change, under concurrency from two instances', async () => {
    const [a, b] = [await open(), await open()];
    const vault = await newVault(a);
    const x = agent();
    await a.agents.create(x, []);
    const policies = Array.from({ length: 12 }, () => policy(vault.id, x.id));
    await Promise.all(policies.map((p, i) => (i % 2 ? a : b).policies.create(p, [])));
    await Promise.all(policies.map((p, i) => (i % 2 ? b : a).policies.update(vault.id, p.id, { priority: i }, [])));
    await Promise.all(policies.slice(0, 4).map((p, i) => (i % 2 ? a : b).policies.delete(vault.id, p.id, [])));
    expect(await generation(a, x.id)).toBe(1 + 12 + 12 + 4);
    expect(await b.policies.listFor(vault.id, x.id)).toHaveLength(8);
    // A policy naming no agent is fine and bumps nothing.
    await a.policies.create(policy(vault.id, 'not-an-agent', { principalType: 'user' }), []);
    expect(await generation(a, x.id)).toBe(29);
  });

  it('deleting a vault removes its policies and bumps the agents they named; other vaults keep theirs', async () => {
    const storage = await open();
    const [doomed, kept] = [await newVault(storage), await newVault(storage)];
    const [x, y] = [agent(), agent()];
    await storage.agents.create(x, []);
    await storage.agents.create(y, []);
    await storage.policies.create(policy(doomed.id, x.id), []);
    await storage.policies.create(policy(doomed.id, x.id, { secretPathPattern: 'other/*' }), []);
    await storage.policies.create(policy(kept.id, y.id), []);
    const [gx, gy] = [await generation(storage, x.id), await generation(storage, y.id)];

    expect(await storage.vaults.delete(doomed.id, [])).toBe(true);
    expect(await storage.policies.list(doomed.id)).toEqual([]);
    expect(await storage.policies.list(kept.id)).toHaveLength(1);
    expect(await generation(storage, x.id)).toBeGreaterThan(gx!);
    expect(await generation(storage, y.id)).toBe(gy);
    await expect(storage.policies.create(policy(doomed.id, x.id), [])).rejects.toThrow(`vault ${doomed.id} does not exist`);
  });

  it('deleting an agent removes its policies in every vault, with the audit events, and nothing else', async () => {
    const storage = await open();
    const [v1, v2] = [await newVault(storage), await newVault(storage)];
    const [x, y] = [agent(), agent()];
    await storage.agents.create(x, []);
    await storage.agents.create(y, []);
    for (const v of [v1, v2]) {
      await storage.policies.create(policy(v.id, x.id), []);
      await storage.policies.create(policy(v.id, y.id), []);
    }
    const audit = { id: randomUUID(), action: 'agent.delete', actorType: 'root', actorId: 'root', resourceType: 'agent', resourceId: x.id, vaultId: '', outcome: 'success', details: null, requestId: 'r', createdAt: new Date() };
    expect(await storage.agents.delete(x.id, [audit])).toBe(true);
    expect((await storage.policies.list(v1.id)).map((p) => p.principalId)).toEqual([y.id]);
    expect((await storage.policies.list(v2.id)).map((p) => p.principalId)).toEqual([y.id]);
    expect((await storage.audit.list({ resourceId: x.id, limit: 10, offset: 0 })).map((e) => e.id)).toEqual([audit.id]);
  });

  it('records the last activity outside any transaction; touching a missing agent is no error', async () => {
    const [a, b] = [await open(), await open()];
    const x = agent();
    await a.agents.create(x, []);
    await a.agents.touch(x.id, new Date('2026-05-05T05:05:05.555Z'));
    expect((await b.agents.get(x.id))?.lastActiveAt).toEqual(new Date('2026-05-05T05:05:05.555Z'));
    await a.agents.touch(randomUUID(), new Date());
    // Touching writes no audit event and does not change the generation.
    expect(await generation(b, x.id)).toBe(1);
  });

  it('keeps only the key hash: the stored row holds exactly the 32 bytes', async () => {
    const storage = await open();
    const x = agent();
    await storage.agents.create(x, []);
    const connection = await createConnection(database.url);
    try {
      const [[row]] = await connection.query<RowDataPacket[]>('SELECT key_hash, scopes FROM agents WHERE id = ?', [Buffer.from(x.id)]);
      expect(Buffer.compare(row?.key_hash, Buffer.from(x.keyHash))).toBe(0);
      expect(row?.scopes).toBe('["ci"]');
    } finally {
      await connection.end();
    }
  });
});
