// The MySQL audit chain against a real server: several instances sealing at once, events whose
// transaction commits late, and rows changed behind the store's back.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createAuditChain } from '../../src/domain/audit-chain.js';
import { insertAuditEvents } from '../../src/storage/mysql/audit-log.js';
import { parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';
import { migrate, MIGRATIONS } from '../../src/storage/mysql/migrations.js';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import { acquire, openPool, sqlOn } from '../../src/storage/mysql/pool.js';
import type { AuditRecord, ChainLinker, Storage, StoredAuditEvent } from '../../src/storage/storage.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

describeWithDatabase('mysql audit chain', () => {
  let database: TestDatabase;
  const opened: Storage[] = [];

  // The chain is one per database, so every test gets its own.
  beforeEach(async () => {
    database = (await createTestDatabase())!;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await database.drop();
  });

  async function open(poolSize = 4): Promise<Storage> {
    const storage = await createMysqlStorage({ url: database.url, poolSize });
    opened.push(storage);
    return storage;
  }

  async function raw<T>(work: (sql: Connection) => Promise<T>): Promise<T> {
    const connection = await createConnection(database.url);
    try {
      return await work(connection);
    } finally {
      await connection.end();
    }
  }

  let counter = 0;
  const event = (action = `e${++counter}`, extra: Partial<AuditRecord> = {}): AuditRecord => ({
    id: randomUUID(),
    action,
    actorType: 'agent',
    actorId: 'agent-ü-🔑',
    resourceType: 'secret',
    resourceId: 'path/with trailing space ',
    vaultId: randomUUID(),
    outcome: 'success',
    // Key order, integer-like keys, nesting and non-ASCII all have to come back as they were.
    details: { z: 1, a: [1, 'ü', null, { y: true }], '10': 'ten', '2': 'two', nested: { b: 2.5, a: -0 } },
    requestId: 'req-😀',
    createdAt: new Date(Date.UTC(2026, 2, 4, 5, 6, 7, counter % 1000)),
    ...extra,
  });

  /** The record a link covers: a stored event without its chain fields, in its field order. */
  const recordOf = ({ seq: _s, chainIndex: _i, hash: _h, keyId: _k, ...record }: StoredAuditEvent): AuditRecord => record;

  /** Hashes everything the event carries, in the order its fields are given. */
  const jsonLink: ChainLinker = (previousHash, e, chainIndex) => ({
    hash: createHash('sha256').update(`${previousHash}\n${chainIndex}\n${JSON.stringify(e)}`).digest('hex'),
    keyId: 'k1',
  });

  /** The index of the first event whose link does not verify (chain index or hash), or null. */
  function firstBreak(chain: StoredAuditEvent[]): number | null {
    let previousHash = '';
    for (const [i, e] of chain.entries()) {
      if (e.chainIndex !== i + 1 || e.hash !== jsonLink(previousHash, recordOf(e), i + 1).hash) return i + 1;
      previousHash = e.hash;
    }
    return null;
  }

  async function sealAll(storage: Storage, link: ChainLinker = jsonLink): Promise<number> {
    let total = 0;
    for (let sealed = -1; sealed !== 0; total += sealed) sealed = await storage.audit.seal(link, 50);
    return total;
  }

  it('hands link each event exactly as readChain later returns it, so a recomputation matches', async () => {
    const storage = await open();
    const written = [
      event(),
      event('with.null.details', { details: null }),
      event('empty', { actorId: '', resourceId: '', requestId: '', details: {} }),
      event('last.ms', { createdAt: new Date('2026-12-31T23:59:59.999Z') }),
    ];
    await storage.appendAudit(written);
    const seen = new Map<string, string>();
    const recordingLink: ChainLinker = (previousHash, e, chainIndex) => {
      seen.set(e.id, JSON.stringify(e));
      return jsonLink(previousHash, e, chainIndex);
    };
    expect(await storage.audit.seal(recordingLink, 100)).toBe(written.length);

    const chain = await storage.audit.readChain(0, 100);
    expect(chain.map((e) => e.id)).toEqual(written.map((e) => e.id));
    for (const [i, stored] of chain.entries()) {
      expect(JSON.stringify(recordOf(stored))).toBe(seen.get(stored.id));
      // ... and both are what was written (details as JSON gives them back).
      expect(recordOf(stored)).toEqual({ ...written[i], details: JSON.parse(JSON.stringify(written[i]!.details)) });
    }
    expect(Object.keys(chain[0]!.details!)).toEqual(['2', '10', 'z', 'a', 'nested']);
    expect(firstBreak(chain)).toBeNull();
    // A second instance reads the same rows.
    const other = await open();
    expect(firstBreak(await other.audit.readChain(0, 100))).toBeNull();
  });

  it('verifies with the service\'s HMAC chain over what readChain returns', async () => {
    const storage = await open();
    const chain = createAuditChain(createKeyring(randomBytes(32)));
    await storage.appendAudit(Array.from({ length: 5 }, () => event()));
    expect(await storage.audit.seal(chain.link, 500)).toBe(5);
    let previousHash = '';
    for (const e of await storage.audit.readChain(0, 1000)) {
      expect(chain.verifies(previousHash, e, e.chainIndex!, e.keyId!, e.hash!)).toBe(true);
      previousHash = e.hash!;
    }
    expect((await storage.audit.head())?.hash).toBe(previousHash);
  });

  it('gives many writers and sealers on two instances one gapless chain that verifies', async () => {
    const [a, b] = [await open(4), await open(4)];
    const appended: string[] = [];
    const sealedCounts: number[] = [];
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < 120; i++) {
      const storage = i % 2 ? a : b;
      const batch = Array.from({ length: 1 + (i % 3) }, () => event());
      appended.push(...batch.map((e) => e.id));
      work.push(storage.appendAudit(batch));
      // Small batches, so sealers overlap many times.
      if (i % 4 === 0) work.push(storage.audit.seal(jsonLink, 7).then((n) => sealedCounts.push(n)));
    }
    await Promise.all(work);
    sealedCounts.push(await sealAll(a), await sealAll(b));

    const chain = await b.audit.readChain(0, 10_000);
    expect(chain.map((e) => e.chainIndex)).toEqual(appended.map((_, i) => i + 1));
    expect(new Set(chain.map((e) => e.id))).toEqual(new Set(appended));
    expect(sealedCounts.reduce((x, y) => x + y, 0)).toBe(appended.length);
    expect(firstBreak(chain)).toBeNull();
    expect(await a.audit.head()).toEqual({ chainIndex: appended.length, hash: chain.at(-1)!.hash, eventId: chain.at(-1)!.id });
    expect(await a.audit.list({ limit: 10_000, offset: 0 })).toHaveLength(appended.length);
  });

  it('seals an event whose transaction commits after a later event was sealed, exactly once, without waiting for it', async () => {
    const storage = await open();
    const pool = openPool(parseDatabaseUrl(database.url), 1);
    try {
      const connection = await acquire(pool);
      const early = event('early');
      await connection.beginTransaction();
      await insertAuditEvents(sqlOn(connection), [early]);

      const later = event('later');
      await storage.appendAudit([later]);
      // The open transaction's row is invisible and not locked by the sealer: this returns at once.
      expect(await storage.audit.seal(jsonLink, 100)).toBe(1);
      expect((await storage.audit.head())?.eventId).toBe(later.id);

      await connection.commit();
      connection.release();
      const [seqs] = await raw((sql) => sql.query<RowDataPacket[]>('SELECT id, seq FROM audit_events ORDER BY seq'));
      expect(seqs.map((r) => Buffer.from(r.id).toString())).toEqual([early.id, later.id]); // early really is earlier

      expect(await storage.audit.seal(jsonLink, 100)).toBe(1);
      expect(await storage.audit.seal(jsonLink, 100)).toBe(0);
      const chain = await storage.audit.readChain(0, 100);
      expect(chain.map((e) => [e.action, e.chainIndex])).toEqual([['later', 1], ['early', 2]]);
      expect(firstBreak(chain)).toBeNull();
      // Newest first in the listing is write order (seq), not chain order.
      expect((await storage.audit.list({ limit: 10, offset: 0 })).map((e) => e.action)).toEqual(['later', 'early']);
    } finally {
      await pool.end();
    }
  });

  it('lets writers proceed while a sealer holds the head; sealers queue behind it', async () => {
    const storage = await open();
    await storage.appendAudit([event('first')]);
    const holder = await createConnection(database.url);
    try {
      await holder.beginTransaction();
      await holder.query('SELECT chain_index FROM audit_chain_head WHERE id = 1 FOR UPDATE');
      let sealDone = false;
      const sealing = storage.audit.seal(jsonLink, 100).then((n) => ((sealDone = true), n));
      await storage.appendAudit([event('second')]); // does not wait for the head lock
      // The sealer is seen waiting for the head's row lock (not merely not finished yet).
      await waitForLockWait(holder);
      expect(sealDone).toBe(false);
      await holder.commit();
      expect(await sealing).toBeGreaterThanOrEqual(1);
    } finally {
      await holder.end();
    }
    await sealAll(storage);
    expect(firstBreak(await storage.audit.readChain(0, 100))).toBeNull();
  });

  it('shows edited and deleted sealed rows in readChain as they now are', async () => {
    const [a, b] = [await open(), await open()];
    await a.appendAudit(Array.from({ length: 8 }, () => event()));
    await sealAll(a);
    const before = await b.audit.readChain(0, 100); // read once, so a cache would have something to hold
    expect(firstBreak(before)).toBeNull();

    await raw((sql) => sql.query("UPDATE audit_events SET action = 'x' WHERE chain_index = 3"));
    for (const storage of [a, b]) {
      const chain = await storage.audit.readChain(0, 100);
      expect(chain[2]).toMatchObject({ chainIndex: 3, action: 'x', hash: before[2]!.hash });
      expect(firstBreak(chain)).toBe(3);
    }

    await raw((sql) => sql.query('DELETE FROM audit_events WHERE chain_index = 5'));
    for (const storage of [a, b]) {
      expect((await storage.audit.readChain(0, 100)).map((e) => e.chainIndex)).toEqual([1, 2, 3, 4, 6, 7, 8]);
      expect((await storage.audit.readChain(4, 1)).map((e) => e.chainIndex)).toEqual([6]);
      // The head still names the last link, so cutting rows off the end shows too.
      expect((await storage.audit.head())?.chainIndex).toBe(8);
    }
    // Tampering does not stop new events from being sealed after the head.
    await a.appendAudit([event('after')]);
    expect(await b.audit.seal(jsonLink, 10)).toBe(1);
    expect((await a.audit.readChain(8, 10)).map((e) => [e.action, e.chainIndex])).toEqual([['after', 9]]);
  });

  it('seals events written before the chain migrations existed', async () => {
    const pool = openPool(parseDatabaseUrl(database.url), 1);
    const old = [event('old.1'), event('old.2')];
    try {
      await migrate(pool, { migrations: MIGRATIONS.slice(0, 5) });
      const connection = await acquire(pool);
      await insertAuditEvents(sqlOn(connection), old);
      connection.release();
    } finally {
      await pool.end();
    }
    const storage = await open();
    expect(await storage.audit.head()).toBeNull();
    expect(await storage.audit.seal(jsonLink, 10)).toBe(2);
    const chain = await storage.audit.readChain(0, 10);
    expect(chain.map((e) => e.action)).toEqual(['old.1', 'old.2']);
    expect(firstBreak(chain)).toBeNull();
  });

  it('refuses LIMIT and OFFSET values that are not non-negative integers, before any SQL', async () => {
    const storage = await open();
    await expect(storage.audit.list({ limit: 1.5, offset: 0 })).rejects.toThrow(/limit must be a non-negative integer/);
    await expect(storage.audit.list({ limit: 10, offset: -1 })).rejects.toThrow(/offset must be a non-negative integer/);
    await expect(storage.audit.readChain(0, Number.NaN)).rejects.toThrow(/non-negative integer/);
    await expect(storage.audit.seal(jsonLink, Infinity)).rejects.toThrow(/non-negative integer/);
    expect(await storage.audit.seal(jsonLink, 0)).toBe(0);
  });
});

/** Polls (bounded) until some transaction on the server is waiting for a row lock. */
async function waitForLockWait(connection: import('mysql2/promise').Connection): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const [rows] = await connection.query<import('mysql2').RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'");
    if (Number(rows[0]!.n) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('no transaction started waiting for a lock');
}
