// The MySQL store against a real server: what the shared contract cannot see (several pools on
// one database, the raw rows, migrations, killed connections).
import { randomBytes, randomUUID } from 'node:crypto';
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listAuditEvents } from '../../src/storage/mysql/audit-log.js';
import { parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';
import { migrate, MIGRATIONS } from '../../src/storage/mysql/migrations.js';
import { createMysqlStorage } from '../../src/storage/mysql/mysql-store.js';
import { acquire, openPool, sqlOn } from '../../src/storage/mysql/pool.js';
import type { AuditRecord, NewSecretVersion, Storage, VaultRecord } from '../../src/storage/storage.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { StorageUnavailableError } from '../../src/storage/storage-errors.js';
import { CallCancelledError, CallDeadlineExceededError, runWithCallLimits } from '../../src/storage/call-deadline.js';

describeWithDatabase('mysql storage', () => {
  let database: TestDatabase;
  const extraDatabases: TestDatabase[] = [];
  const opened: Storage[] = [];

  beforeAll(async () => {
    database = (await createTestDatabase())!;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
    await Promise.all(extraDatabases.splice(0).map((db) => db.drop()));
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function open(options: { poolSize?: number; url?: string; warnings?: string[] } = {}): Promise<Storage> {
    const storage = await createMysqlStorage({
      url: options.url ?? database.url,
      poolSize: options.poolSize,
      logger: { warn: (_obj, msg) => options.warnings?.push(msg) },
    });
    opened.push(storage);
    return storage;
  }

  async function freshDatabase(): Promise<TestDatabase> {
    const db = (await createTestDatabase())!;
    extraDatabases.push(db);
    return db;
  }

  async function raw<T>(work: (sql: Connection) => Promise<T>, url = database.url): Promise<T> {
    const connection = await createConnection(url);
    try {
      return await work(connection);
    } finally {
      await connection.end();
    }
  }

  async function newVault(storage: Storage): Promise<VaultRecord> {
    const vault: VaultRecord = {
      id: randomUUID(),
      name: 'v',
      description: '',
      createdBy: 'root',
      createdByType: 'root',
      createdAt: new Date(),
    };
    await storage.vaults.create(vault, []);
    return vault;
  }

  const fields = (ciphertext: Uint8Array = Buffer.from('c'), extra: Partial<NewSecretVersion> = {}): NewSecretVersion => ({
    id: randomUUID(),
    type: 'generic',
    metadata: null,
    ciphertext,
    createdBy: 'root',
    createdAt: new Date(),
    expiresAt: null,
    maxAccessCount: 0,
    ...extra,
  });

  const auditEvent = (action: string, vaultId: string, details: AuditRecord['details'] = null): AuditRecord => ({
    id: randomUUID(),
    action,
    actorType: 'agent',
    actorId: 'agent-ü',
    resourceType: 'secret',
    resourceId: 'p/🔑',
    vaultId,
    outcome: 'success',
    details,
    requestId: 'req-1',
    createdAt: new Date('2026-03-04T05:06:07.891Z'),
  });

  async function auditActions(): Promise<string[]> {
    const pool = openPool(parseDatabaseUrl(database.url), 1);
    try {
      const connection = await acquire(pool);
      const events = await listAuditEvents(sqlOn(connection));
      connection.release();
      return events.map((e) => e.action);
    } finally {
      await pool.end();
    }
  }

  describe('migrations', () => {
    it('applies each migration exactly once when four instances start together on a new database', async () => {
      const db = await freshDatabase();
      await Promise.all(Array.from({ length: 4 }, () => open({ url: db.url })));
      const rows = await raw((sql) => sql.query<RowDataPacket[]>('SELECT version, name FROM schema_migrations ORDER BY version'), db.url);
      expect(rows[0].map((r) => [r.version, r.name])).toEqual(MIGRATIONS.map((m) => [m.version, m.name]));

      // The runner itself, four at once: the versions each call applied partition the list.
      const db2 = await freshDatabase();
      const pools = Array.from({ length: 4 }, () => openPool(parseDatabaseUrl(db2.url), 1));
      try {
        const applied = await Promise.all(pools.map((pool) => migrate(pool)));
        expect(applied.flat().sort((a, b) => a - b)).toEqual(MIGRATIONS.map((m) => m.version));
        expect(applied.filter((versions) => versions.length > 0)).toHaveLength(1);
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
      }
    });

    const migrateWith = async (url: string, options: Parameters<typeof migrate>[1] = {}) => {
      const pool = openPool(parseDatabaseUrl(url), 2);
      try {
        return await migrate(pool, options);
      } finally {
        await pool.end();
      }
    };

    it('records a change an earlier start applied but died before recording, and says so once', async () => {
      const db = await freshDatabase();
      await migrateWith(db.url, { migrations: MIGRATIONS.slice(0, 3) });
      // The state a crash between migration 4's DDL and its record leaves.
      await raw((sql) => sql.query(MIGRATIONS[3]!.statements[0]!), db.url);
      const warnings: string[] = [];
      const applied = await migrateWith(db.url, { warn: (_obj, msg) => warnings.push(msg) });
      expect(applied).toEqual(MIGRATIONS.slice(4).map((m) => m.version));
      expect(warnings).toEqual(['migration 4 (create_audit_events) was found applied but not recorded (an earlier start stopped between the change and its record); recording it']);
      const rows = await raw((sql) => sql.query<RowDataPacket[]>('SELECT version FROM schema_migrations ORDER BY version'), db.url);
      expect(rows[0].map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      // And the store works on it.
      await newVault(await open({ url: db.url }));
    });

    it('explains a change found only half there in one message naming what is missing', async () => {
      const db = await freshDatabase();
      await migrateWith(db.url, { migrations: MIGRATIONS.slice(0, 7) });
      await raw((sql) => sql.query('ALTER TABLE audit_events ADD COLUMN chain_index BIGINT NULL'), db.url);
      await expect(migrateWith(db.url)).rejects.toThrow(
        'migration 8 (add_audit_chain_columns) is half-applied: table audit_events has column(s) chain_index but not hash, key_id',
      );
    });

    it('waits while another instance holds the migration lease, then takes it over and applies the rest', async () => {
      const db = await freshDatabase();
      await migrateWith(db.url, { migrations: MIGRATIONS.slice(0, 2) });
      // Another instance holds the lease for 1 s more by the database's clock (and then dies).
      await raw(
        (sql) => sql.query("UPDATE leases SET holder = 'elsewhere', fencing = 7, expires_at = UTC_TIMESTAMP(6) + INTERVAL 1 SECOND WHERE name = 'schema-migrations'"),
        db.url,
      );
      const applied = await migrateWith(db.url);
      expect(applied).toEqual(MIGRATIONS.slice(2).map((m) => m.version));
      const [lease] = (await raw((sql) => sql.query<RowDataPacket[]>("SELECT holder, fencing FROM leases WHERE name = 'schema-migrations'"), db.url))[0];
      // It took over only after the other's lease expired, with a higher fencing number.
      expect(Number(lease?.fencing)).toBe(8);
      expect(String(lease?.holder)).toMatch(/^migrate:/);
    });

    it('moves the stages of a database from before migration 20 onto its path rows, where the store finds them', async () => {
      const db = await freshDatabase();
      await migrateWith(db.url, { migrations: MIGRATIONS.slice(0, 19) });
      await raw(async (sql) => {
        await sql.query("INSERT INTO vaults (id, name, description, created_by, created_by_type, created_at) VALUES ('v1', 'old', '', 'root', 'root', UTC_TIMESTAMP(6))");
        await sql.query("INSERT INTO secrets (vault_id, path, last_version, deleted) VALUES ('v1', 'a', 4, 0), ('v1', 'b', 1, 0), ('v1', 'gone', 1, 1)");
        const version = (path: string, n: number, stage: string | null) =>
          sql.query(
            `INSERT INTO secret_versions (vault_id, path, version, id, type, ciphertext, created_by, created_at, max_access_count, deleted, stage)
             VALUES ('v1', ?, ?, ?, 'generic', X'00', 'root', UTC_TIMESTAMP(6), 0, ?, ?)`,
            [path, n, `${path}-${n}`, path === 'gone' ? 1 : 0, stage],
          );
        for (const [path, n, stage] of [['a', 1, null], ['a', 2, 'previous'], ['a', 3, 'current'], ['a', 4, 'pending'], ['b', 1, 'current'], ['gone', 1, null]] as const) {
          await version(path, n, stage);
        }
      }, db.url);
      expect(await migrateWith(db.url)).toEqual(MIGRATIONS.slice(19).map((m) => m.version));

      const store = await open({ url: db.url });
      const holder = async (path: string, stage: 'current' | 'previous' | 'pending') => (await store.secrets.lookup('v1', path, { kind: 'stage', stage })).version?.version ?? null;
      expect([await holder('a', 'current'), await holder('a', 'previous'), await holder('a', 'pending')]).toEqual([3, 2, 4]);
      expect([await holder('b', 'current'), await holder('b', 'previous'), await holder('gone', 'current')]).toEqual([1, null, null]);
      expect((await store.secrets.listVersions('v1', 'a')).map((v) => [v.version, v.stage])).toEqual([[4, 'pending'], [3, 'current'], [2, 'previous'], [1, null]]);
      // Latest skips the pending version, as before.
      expect((await store.secrets.lookup('v1', 'a', { kind: 'latest' })).version?.version).toBe(3);
    });

    it('is idempotent: a restart applies nothing and keeps the data', async () => {
      const first = await open();
      const vault = await newVault(first);
      await first.close();

      const pool = openPool(parseDatabaseUrl(database.url), 1);
      try {
        expect(await migrate(pool)).toEqual([]);
      } finally {
        await pool.end();
      }
      const again = await open();
      expect(await again.vaults.get(vault.id)).toEqual(vault);
    });
  });

  describe('concurrency across instances', () => {
    it('gives gapless, unique numbers to appends to one path from two pools', async () => {
      const [a, b] = [await open({ poolSize: 4 }), await open({ poolSize: 4 })];
      const vault = await newVault(a);
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).secrets.append(vault.id, 'race', () => fields(), () => [])),
      );
      expect(results.map((r) => r.version).sort((x, y) => x - y)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      expect((await a.secrets.listVersions(vault.id, 'race')).map((v) => v.version)).toEqual(
        Array.from({ length: 60 }, (_, i) => 60 - i),
      );
    });

    it('redoes a plain write whose guessed number another instance took: gapless, and each version holds what was built for it', async () => {
      const [a, b] = [await open({ poolSize: 2 }), await open({ poolSize: 2 })];
      const vault = await newVault(a);
      const plain = { withPrevious: false };
      const put = (store: Storage) => store.secrets.append(vault.id, 'p', ({ version }) => fields(Buffer.from(`built for ${version}`)), () => [], plain);
      // Each instance guesses one past the last number it wrote, so with writes taking turns every
      // guess after the first two is wrong; a row of mixed turns and runs covers hits and misses.
      const writers = [a, b, a, b, b, a, a, a, b, a, b, b, b, a];
      const versions: number[] = [];
      for (const store of writers) versions.push((await put(store)).version);
      expect(versions).toEqual(writers.map((_, i) => i + 1));
      for (const version of versions) {
        const found = await b.secrets.lookup(vault.id, 'p', { kind: 'number', version });
        expect(Buffer.from(found.version!.ciphertext!).toString()).toBe(`built for ${version}`);
      }
      // Concurrent too: the per-instance queue orders a's writes, b's race them.
      const raced = await Promise.all(Array.from({ length: 30 }, (_, i) => put(i % 3 ? a : b)));
      expect(raced.map((r) => r.version).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => writers.length + i + 1));
    });

    it('does not take a compare-and-set refusal of a guessed number as the answer', async () => {
      const [a, b] = [await open({ poolSize: 2 }), await open({ poolSize: 2 })];
      const vault = await newVault(a);
      const plain = { withPrevious: false };
      await a.secrets.append(vault.id, 'p', () => fields(), () => [], plain);
      await b.secrets.append(vault.id, 'p', () => fields(), () => [], plain);
      // a guesses 2 (it last wrote 1); the caller expects version 2 to be the newest, as it is.
      const built: number[] = [];
      const created = await a.secrets.append(vault.id, 'p', ({ version }) => {
        built.push(version);
        if (version - 1 !== 2) throw new Error(`newest is not 2`);
        return fields();
      }, () => [], plain);
      expect(created.version).toBe(3);
      expect(built).toEqual([2, 3]);
    });

    it('lets exactly N of many concurrent readers on two pools spend a budget of N', async () => {
      const [a, b] = [await open({ poolSize: 4 }), await open({ poolSize: 4 })];
      const vault = await newVault(a);
      await a.secrets.append(vault.id, 'once', () => fields(undefined, { maxAccessCount: 7 }), () => []);
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).secrets.consumeRead(vault.id, 'once', 1, [auditEvent('secret.read', vault.id)])),
      );
      expect(results.filter(Boolean)).toHaveLength(7);
      const [[row]] = await raw((sql) => sql.query<RowDataPacket[]>('SELECT access_count FROM secret_versions WHERE vault_id = ? AND path = ?', [Buffer.from(vault.id), Buffer.from('once')]));
      expect(row?.access_count).toBe(7);
      // A refused spend leaves no record: exactly one per read that was granted.
      const [records] = await raw((sql) => sql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM audit_events WHERE vault_id = ? AND action = 'secret.read'", [Buffer.from(vault.id)]));
      expect(Number(records[0]!.n)).toBe(7);
    });

    it('numbers a new path 1 even when the connection holds an older LAST_INSERT_ID', async () => {
      // One connection, so the session's LAST_INSERT_ID from the first path is still set.
      const storage = await open({ poolSize: 1 });
      const vault = await newVault(storage);
      for (let i = 0; i < 3; i++) await storage.secrets.append(vault.id, 'first', () => fields(), () => []);
      expect((await storage.secrets.append(vault.id, 'second', () => fields(), () => [])).version).toBe(1);
      expect((await storage.secrets.append(vault.id, 'second', () => fields(), () => [])).version).toBe(2);
      expect((await storage.secrets.append(vault.id, 'first', () => fields(), () => [])).version).toBe(4);
    });
  });

  describe('what the database holds', () => {
    /** Every (table.column) of this database whose bytes contain `needle`, with the row count. */
    async function whereBytesOccur(needle: Buffer): Promise<string[]> {
      return raw(async (sql) => {
        const [columns] = await sql.query<RowDataPacket[]>(
          'SELECT table_name AS t, column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE()',
        );
        const found: string[] = [];
        for (const { t, c } of columns) {
          const [[hit]] = await sql.query<RowDataPacket[]>(
            `SELECT COUNT(*) AS n FROM \`${t}\` WHERE INSTR(CAST(\`${c}\` AS BINARY), ?) > 0`,
            [needle],
          );
          if (Number(hit?.n) > 0) found.push(`${t}.${c} x${hit?.n}`);
        }
        return found;
      });
    }

    it('keeps the ciphertext bytes exactly as given, in one place only, until the secret is deleted', async () => {
      const storage = await open();
      const vault = await newVault(storage);
      // Zero bytes, high bytes and invalid UTF-8 must all survive.
      const ciphertext = Buffer.concat([Buffer.from([0, 0xff, 0xc3, 0x28, 0x00]), randomBytes(4096)]);
      await storage.secrets.append(vault.id, 'db/password', () => fields(ciphertext), (v) => [
        auditEvent('secret.write', vault.id, { version: v.version }),
      ]);

      const [[row]] = await raw((sql) =>
        sql.query<RowDataPacket[]>('SELECT ciphertext FROM secret_versions WHERE vault_id = ? AND path = ?', [Buffer.from(vault.id), Buffer.from('db/password')]),
      );
      expect(Buffer.compare(row?.ciphertext, ciphertext)).toBe(0);
      expect(await whereBytesOccur(ciphertext.subarray(100, 164))).toEqual(['secret_versions.ciphertext x1']);

      await storage.secrets.delete(vault.id, 'db/password', []);
      expect(await whereBytesOccur(ciphertext.subarray(100, 164))).toEqual([]);
    });

    it('keeps paths apart that a case-insensitive collation would merge, in byte order', async () => {
      const [[merged]] = await raw((sql) =>
        sql.query<RowDataPacket[]>("SELECT _utf8mb4'🔑' = _utf8mb4'🔒' COLLATE utf8mb4_general_ci AS emoji, 'Key' = 'key' COLLATE utf8mb4_general_ci AS kase"),
      );
      expect([Number(merged?.emoji), Number(merged?.kase)]).toEqual([1, 1]); // the trap is real

      const storage = await open();
      const vault = await newVault(storage);
      const paths = ['Key', 'key', 'emoji/🔑', 'emoji/🔒', 'trailing', 'trailing '];
      for (const path of paths) await storage.secrets.append(vault.id, path, () => fields(Buffer.from(path)), () => []);

      for (const path of paths) {
        const { version } = await storage.secrets.lookup(vault.id, path, { kind: 'latest' });
        expect(version?.version).toBe(1);
        expect(Buffer.from(version!.ciphertext!).toString()).toBe(path);
        expect(version?.path).toBe(path);
      }
      const listed = await storage.secrets.listLatest(vault.id, '');
      expect(listed.map((v) => v.path)).toEqual([...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect((await storage.secrets.listLatest(vault.id, 'emoji/🔑')).map((v) => v.path)).toEqual(['emoji/🔑']);
      expect(await storage.vaults.get(`${vault.id} `)).toBeNull();
      expect(await storage.vaults.get(vault.id.toUpperCase())).toBeNull();
    });

    it('refuses a path longer than the column instead of truncating it', async () => {
      const storage = await open();
      const vault = await newVault(storage);
      await expect(storage.secrets.append(vault.id, 'x'.repeat(513), () => fields(), () => [])).rejects.toThrow(/at most 512 bytes/);
      await storage.secrets.append(vault.id, 'x'.repeat(512), () => fields(), () => []);
    });

    it('removes a deleted vault\'s secrets and versions but keeps its audit trail', async () => {
      const storage = await open();
      const vault = await newVault(storage);
      await storage.secrets.append(vault.id, 'a', () => fields(), () => []);
      await storage.secrets.append(vault.id, 'a', () => fields(), () => []);
      expect(await storage.vaults.delete(vault.id, [auditEvent('vault.delete', vault.id)])).toBe(true);
      const counts = await raw(async (sql) => {
        const [[s]] = await sql.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM secrets WHERE vault_id = ?', [Buffer.from(vault.id)]);
        const [[v]] = await sql.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM secret_versions WHERE vault_id = ?', [Buffer.from(vault.id)]);
        const [[e]] = await sql.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM audit_events WHERE vault_id = ?', [Buffer.from(vault.id)]);
        return [Number(s?.n), Number(v?.n), Number(e?.n)];
      });
      expect(counts).toEqual([0, 0, 1]);
    });
  });

  describe('audit events', () => {
    it('round-trips every field and commits events only with their change', async () => {
      const storage = await open();
      const vault = await newVault(storage);
      const before = (await auditActions()).length;

      const written = auditEvent('secret.write', vault.id, { version: 1, nested: { list: [1, 'ü', null] } });
      await storage.secrets.append(vault.id, 'p', () => fields(undefined, { maxAccessCount: 1 }), () => [written]);
      await expect(
        storage.secrets.append(vault.id, 'p', () => { throw new Error('refused'); }, () => [auditEvent('never.build', vault.id)]),
      ).rejects.toThrow('refused');
      await expect(
        storage.secrets.append(vault.id, 'p', () => fields(), () => { throw new Error('audit refused'); }),
      ).rejects.toThrow('audit refused');
      expect(await storage.secrets.consumeRead(vault.id, 'p', 1, [auditEvent('read.1', vault.id)])).toBe(true);
      expect(await storage.secrets.consumeRead(vault.id, 'p', 1, [auditEvent('never.read', vault.id)])).toBe(false);
      expect(await storage.secrets.setDisabled(vault.id, 'p', 9, true, [auditEvent('never.disable', vault.id)])).toBe(false);
      expect(await storage.secrets.delete(vault.id, 'nope', [auditEvent('never.delete', vault.id)])).toBe(false);
      await storage.appendAudit([auditEvent('alone.1', vault.id), auditEvent('alone.2', vault.id)]);

      const pool = openPool(parseDatabaseUrl(database.url), 1);
      try {
        const connection = await acquire(pool);
        const events = (await listAuditEvents(sqlOn(connection))).slice(before);
        connection.release();
        expect(events.map((e) => e.action)).toEqual(['secret.write', 'read.1', 'alone.1', 'alone.2']);
        expect(events[0]).toEqual(written);
      } finally {
        await pool.end();
      }
      // Neither failed append used up a number.
      expect((await storage.secrets.append(vault.id, 'p', () => fields(), () => [])).version).toBe(2);
    });
  });

  describe('audit records written alone (group commit)', () => {
    it('writes every record of many concurrent calls exactly once', async () => {
      const storage = await open({ poolSize: 4 });
      const vault = await newVault(storage);
      const events = Array.from({ length: 120 }, () => auditEvent('secret.read', vault.id));
      await Promise.all(events.map((e) => storage.appendAudit([e])));
      const rows = await raw(async (sql) => {
        const [found] = await sql.query<RowDataPacket[]>('SELECT id FROM audit_events WHERE vault_id = ?', [Buffer.from(vault.id)]);
        return found.map((r) => Buffer.from(r.id as Buffer).toString('utf8'));
      });
      expect(rows.sort()).toEqual(events.map((e) => e.id).sort());
    });

    it('fails every call of a failed batch as unavailable and writes none of it', async () => {
      const storage = await open();
      const vault = await newVault(storage);
      const lone = storage.appendAudit([auditEvent('secret.read', vault.id)]);
      // Both arrive while the first flush runs, so they share the next batch, which the
      // oversized resource id makes the server refuse.
      const good = auditEvent('secret.read', vault.id);
      const batch = [storage.appendAudit([good]), storage.appendAudit([{ ...auditEvent('secret.read', vault.id), resourceId: 'x'.repeat(700) }])];
      await lone;
      for (const call of batch) await expect(call).rejects.toBeInstanceOf(StorageUnavailableError);
      const [written] = await raw((sql) => sql.query<RowDataPacket[]>('SELECT id FROM audit_events WHERE id = ?', [Buffer.from(good.id)]));
      expect(written).toEqual([]);
      await storage.appendAudit([auditEvent('secret.read', vault.id)]);
    });
  });

  describe('latest-version reads of concurrent calls (one statement for many)', () => {
    it('answers each of many concurrent reads with its own path, whatever state that path is in', async () => {
      const storage = await open({ poolSize: 2 });
      const vault = await newVault(storage);
      const append = (path: string, value: string) => storage.secrets.append(vault.id, path, () => fields(Buffer.from(value)), () => []);
      const expected = new Map<string, { exists: boolean; deleted: boolean; version: number | null; value?: string }>();
      for (let i = 0; i < 12; i++) {
        const path = `live/${i}`;
        for (let v = 1; v <= (i % 3) + 1; v++) await append(path, `${path}@${v}`);
        expected.set(path, { exists: true, deleted: false, version: (i % 3) + 1, value: `${path}@${(i % 3) + 1}` });
      }
      // The current version disabled: the batched statement does not settle it, the fallback finds version 1.
      await append('fallback', 'fallback@1');
      await append('fallback', 'fallback@2');
      await storage.secrets.setDisabled(vault.id, 'fallback', 2, true, []);
      expected.set('fallback', { exists: true, deleted: false, version: 1, value: 'fallback@1' });
      await append('gone', 'gone@1');
      await storage.secrets.delete(vault.id, 'gone', []);
      expected.set('gone', { exists: true, deleted: true, version: null });
      await append('all-disabled', 'x');
      await storage.secrets.setDisabled(vault.id, 'all-disabled', 1, true, []);
      expected.set('all-disabled', { exists: true, deleted: false, version: null });
      for (let i = 0; i < 4; i++) expected.set(`missing/${i}`, { exists: false, deleted: false, version: null });

      // Every path three times over, all at once: far more reads than one batch takes.
      const paths = [...expected.keys(), ...expected.keys(), ...expected.keys()];
      const found = await Promise.all(paths.map((path) => storage.secrets.lookup(vault.id, path, { kind: 'latest' })));
      found.forEach((lookup, i) => {
        const want = expected.get(paths[i]!)!;
        expect({ path: paths[i], exists: lookup.exists, deleted: lookup.deleted, version: lookup.version?.version ?? null }).toEqual({
          path: paths[i],
          exists: want.exists,
          deleted: want.deleted,
          version: want.version,
        });
        if (want.value) {
          expect(lookup.version?.path).toBe(paths[i]);
          expect(Buffer.from(lookup.version!.ciphertext!).toString()).toBe(want.value);
        }
      });
    });

    it('refuses only the read whose caller stopped waiting, and sends the others', async () => {
      const storage = await open({ poolSize: 1 });
      const vault = await newVault(storage);
      await storage.secrets.append(vault.id, 'p', () => fields(Buffer.from('v')), () => []);
      const read = () => storage.secrets.lookup(vault.id, 'p', { kind: 'latest' });
      const reads = [read(), runWithCallLimits({ deadline: Date.now() - 1 }, read), runWithCallLimits({ cancelled: () => true }, read), read()];
      const [first, late, cancelled, last] = await Promise.allSettled(reads);
      expect(first).toMatchObject({ status: 'fulfilled', value: { exists: true } });
      expect(last).toMatchObject({ status: 'fulfilled', value: { exists: true } });
      expect(late).toMatchObject({ status: 'rejected', reason: expect.any(CallDeadlineExceededError) });
      expect(cancelled).toMatchObject({ status: 'rejected', reason: expect.any(CallCancelledError) });
    });
  });

  describe('key canaries', () => {
    it('keeps the first canary of a key, also when instances add it at once', async () => {
      const [a, b] = [await open(), await open()];
      const first = randomBytes(80);
      await Promise.all([a.keyCanaries.add('k1', first), b.keyCanaries.add('k1', first)]);
      await a.keyCanaries.add('k1', randomBytes(80));
      await b.keyCanaries.add('k2', Uint8Array.from([0, 1, 2]));
      const listed = await a.keyCanaries.list();
      expect(listed.map((c) => [c.keyId, Buffer.from(c.canary).toString('hex')])).toEqual([
        ['k1', first.toString('hex')],
        ['k2', '000102'],
      ]);
    });
  });

  describe('resilience', () => {
    it('keeps working after its connections are killed', async () => {
      const warnings: string[] = [];
      const storage = await open({ poolSize: 2, warnings });
      const vault = await newVault(storage);
      await storage.secrets.append(vault.id, 'p', () => fields(undefined, { maxAccessCount: 10 }), () => []);

      for (let round = 0; round < 3; round++) {
        const killed = await raw(async (sql) => {
          const [rows] = await sql.query<RowDataPacket[]>(
            'SELECT id AS id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()',
          );
          for (const { id } of rows) await sql.query(`KILL ${Number(id)}`);
          return rows.length;
        });
        expect(killed).toBeGreaterThan(0);
        // No pause: the next calls may get a connection the pool has not yet noticed is dead.
        await storage.ping();
        expect((await storage.secrets.lookup(vault.id, 'p', { kind: 'latest' })).version?.version).toBe(1 + round);
        expect(await storage.secrets.consumeRead(vault.id, 'p', 1, [])).toBe(true);
        await storage.secrets.append(vault.id, 'p', () => fields(), () => []);
      }
      expect(warnings.every((w) => w === 'database connection lost; retrying')).toBe(true);
    });

    it('fails to start with a clear error, and no password, when the server is unreachable', async () => {
      const error = await createMysqlStorage({ url: 'mysql://vault:hunter2-Pa55@127.0.0.1:1/db' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      const everything = JSON.stringify(error, Object.getOwnPropertyNames(error)) + String((error as Error).stack);
      expect(everything).not.toContain('hunter2');
      // Retried briefly like any outage, then the store's own error with the driver's as cause.
      expect(error).toBeInstanceOf(StorageUnavailableError);
      expect(((error as Error).cause as { code?: string }).code).toBe('ECONNREFUSED');
    });
  });
});
