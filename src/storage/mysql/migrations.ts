import { randomUUID } from 'node:crypto';
import type { Lease } from '../storage.js';
import { LeaseLostError } from '../storage-errors.js';
import { createLeaseStore, LEASES_TABLE, requireLease } from './lease-store.js';
import { DEFAULT_POOL_LIMITS, sqlOn, type Pool, type Sql } from './pool.js';
import { failureKind } from './retryable-errors.js';
import { createSchemaProbe, type SchemaProbe } from './schema-probe.js';
import { DEFAULT_RETRY, inTransaction, withPooledConnection, type Database } from './transaction.js';

/**
 * The schema, as an ordered list of migrations applied once each. To change the schema, append
 * one entry with the next number; never edit or reorder an applied one.
 *
 * Rules for entries (the SQL must run on MariaDB 10.11 and MySQL 8):
 * - InnoDB, utf8mb4 with utf8mb4_bin; no syntax only one of the two servers has.
 * - One DDL statement per migration: DDL commits implicitly (and is atomic on MariaDB 10.6+ and
 *   MySQL 8), so a migration is either in the database or not, never half-way.
 * - `applied` tells whether the change is already there, from information_schema: an instance may
 *   die between a migration's DDL and its record, and the next start must record it, not fail on
 *   "table already exists" forever. Not IF NOT EXISTS in the DDL: MySQL 8 has none for columns
 *   and indexes, and the probe can say what a half-done state looks like.
 *
 * Column type choices:
 * - Identifiers that are compared (ids, paths, audit filter fields) are VARBINARY: comparison is
 *   byte-exact on both servers. A text collation would merge `Key`/`key` and distinct emoji
 *   (utf8mb4_general_ci), or ignore trailing spaces (utf8mb4_bin is PAD SPACE on both servers, so
 *   `get('<id> ')` would find vault `<id>`). Ids are VARBINARY(64), not CHAR(36), for that reason
 *   and so a non-UUID id format fits. Row mapping decodes them to strings.
 * - Text that is only stored and shown (names, types, JSON) is utf8mb4.
 * - JSON is LONGTEXT holding JSON.stringify output, not the JSON type: MariaDB's JSON is a
 *   LONGTEXT alias anyway, and MySQL's reorders keys and rewrites numbers.
 * - Timestamps are DATETIME(6) holding UTC (see the session setup in pool.ts).
 */
export interface Migration {
  version: number;
  /** snake_case summary, recorded in schema_migrations for people reading the database. */
  name: string;
  statements: readonly string[];
  /** True when the change is already in the database; throws if it is there only in part. */
  applied(probe: SchemaProbe): Promise<boolean>;
}

const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'create_vaults',
    statements: [
      `CREATE TABLE vaults (
        id VARBINARY(64) NOT NULL,
        name VARCHAR(255) NOT NULL,
        description TEXT NOT NULL,
        created_by VARCHAR(255) NOT NULL,
        created_by_type VARCHAR(32) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        PRIMARY KEY (id),
        KEY vaults_by_created_at (created_at, id)
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('vaults'),
  },
  {
    version: 2,
    // One row per path: the version counter (kept across deletes so numbers are never reused) and
    // whether the path is deleted. Appends lock this row, which serialises them per path.
    name: 'create_secrets',
    statements: [
      `CREATE TABLE secrets (
        vault_id VARBINARY(64) NOT NULL,
        path VARBINARY(512) NOT NULL,
        last_version INT NOT NULL,
        deleted TINYINT NOT NULL DEFAULT 0,
        PRIMARY KEY (vault_id, path),
        CONSTRAINT secrets_vault FOREIGN KEY (vault_id) REFERENCES vaults (id) ON DELETE CASCADE
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('secrets'),
  },
  {
    version: 3,
    name: 'create_secret_versions',
    statements: [
      `CREATE TABLE secret_versions (
        vault_id VARBINARY(64) NOT NULL,
        path VARBINARY(512) NOT NULL,
        version INT NOT NULL,
        id VARBINARY(64) NOT NULL,
        type VARCHAR(64) NOT NULL,
        metadata LONGTEXT NULL,
        ciphertext MEDIUMBLOB NULL,
        created_by VARCHAR(255) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NULL,
        max_access_count INT NOT NULL,
        access_count INT NOT NULL DEFAULT 0,
        disabled TINYINT NOT NULL DEFAULT 0,
        deleted TINYINT NOT NULL DEFAULT 0,
        PRIMARY KEY (vault_id, path, version),
        UNIQUE KEY secret_versions_id (id),
        CONSTRAINT secret_versions_secret FOREIGN KEY (vault_id, path)
          REFERENCES secrets (vault_id, path) ON DELETE CASCADE
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('secret_versions'),
  },
  {
    version: 4,
    // Clustered on seq, not id: the log is append-only and read in order, so inserts land at the
    // end of the tree and listing is a range scan; random UUID keys would scatter both.
    // No foreign key to vaults: the record of a vault must outlive the vault.
    name: 'create_audit_events',
    statements: [
      `CREATE TABLE audit_events (
        seq BIGINT NOT NULL AUTO_INCREMENT,
        id VARBINARY(64) NOT NULL,
        action VARBINARY(64) NOT NULL,
        actor_type VARBINARY(32) NOT NULL,
        actor_id VARBINARY(255) NOT NULL,
        resource_type VARBINARY(32) NOT NULL,
        resource_id VARBINARY(600) NOT NULL,
        vault_id VARBINARY(64) NOT NULL,
        outcome VARBINARY(32) NOT NULL,
        details LONGTEXT NULL,
        request_id VARBINARY(255) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        PRIMARY KEY (seq),
        UNIQUE KEY audit_events_id (id),
        KEY audit_events_by_action (action, created_at),
        KEY audit_events_by_actor (actor_id, created_at),
        KEY audit_events_by_resource (resource_id, created_at),
        KEY audit_events_by_vault (vault_id, created_at),
        KEY audit_events_by_created_at (created_at)
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('audit_events'),
  },
  {
    version: 5,
    // One sealed canary per master key that ever sealed data here (see src/crypto/key-check.ts).
    name: 'create_key_canaries',
    statements: [
      `CREATE TABLE key_canaries (
        key_id VARBINARY(64) NOT NULL,
        canary BLOB NOT NULL,
        created_at DATETIME(6) NOT NULL,
        PRIMARY KEY (key_id)
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('key_canaries'),
  },
  {
    version: 6,
    // Machine identities. Only the SHA-256 of the API key is kept; it is unique so a key finds at
    // most one agent. scopes is a JSON array of strings.
    name: 'create_agents',
    statements: [
      `CREATE TABLE agents (
        id VARBINARY(64) NOT NULL,
        name VARCHAR(255) NOT NULL,
        description TEXT NOT NULL,
        scopes LONGTEXT NOT NULL,
        is_active TINYINT NOT NULL,
        token_ttl_seconds INT NOT NULL,
        created_by VARCHAR(255) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NULL,
        last_active_at DATETIME(6) NULL,
        key_hash BINARY(32) NOT NULL,
        credential_generation INT NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY agents_key_hash (key_hash),
        KEY agents_by_created_at (created_at, id)
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('agents'),
  },
  {
    version: 7,
    // Policies go with their vault (ON DELETE CASCADE, like secrets). principal_id is not a foreign
    // key: a principal need not be an agent. The principal index serves deleting an agent's
    // policies without scanning (and locking) every row.
    name: 'create_policies',
    statements: [
      `CREATE TABLE policies (
        id VARBINARY(64) NOT NULL,
        vault_id VARBINARY(64) NOT NULL,
        secret_path_pattern VARBINARY(512) NOT NULL,
        principal_type VARCHAR(32) NOT NULL,
        principal_id VARBINARY(64) NOT NULL,
        permissions LONGTEXT NOT NULL,
        conditions LONGTEXT NULL,
        expires_at DATETIME(6) NULL,
        created_by VARCHAR(255) NOT NULL,
        created_by_type VARCHAR(32) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        effect VARCHAR(8) NOT NULL,
        priority INT NOT NULL,
        PRIMARY KEY (id),
        KEY policies_by_vault_principal (vault_id, principal_id),
        KEY policies_by_principal (principal_id),
        CONSTRAINT policies_vault FOREIGN KEY (vault_id) REFERENCES vaults (id) ON DELETE CASCADE
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('policies'),
  },
  {
    version: 8,
    // An event's place in the HMAC chain, set by the audit store's seal(); NULL while pending.
    // Nullable columns only, so both servers add them without rebuilding the table.
    name: 'add_audit_chain_columns',
    statements: [
      `ALTER TABLE audit_events
        ADD COLUMN chain_index BIGINT NULL,
        ADD COLUMN hash VARCHAR(64) NULL,
        ADD COLUMN key_id VARCHAR(32) NULL`,
    ],
    applied: (p) => p.hasColumns('audit_events', ['chain_index', 'hash', 'key_id']),
  },
  {
    version: 9,
    // Unique, so no two events can hold one place; NULLs (pending events) may repeat. Also finds
    // the pending events and serves reading the chain in order.
    name: 'index_audit_chain_index',
    statements: ['ALTER TABLE audit_events ADD UNIQUE KEY audit_events_chain_index (chain_index)'],
    applied: (p) => p.hasIndex('audit_events', 'audit_events_chain_index'),
  },
  {
    version: 10,
    // The chain's last link, one row (id 1). Sealers lock it, which makes them take turns, so the
    // chain stays gapless across instances. chain_index 0 and hash '' mean an empty chain.
    name: 'create_audit_chain_head',
    statements: [
      `CREATE TABLE audit_chain_head (
        id TINYINT NOT NULL,
        chain_index BIGINT NOT NULL,
        hash VARCHAR(64) NOT NULL,
        event_id VARBINARY(64) NOT NULL,
        PRIMARY KEY (id)
      ) ${TABLE_OPTIONS}`,
    ],
    applied: (p) => p.hasTable('audit_chain_head'),
  },
  {
    version: 11,
    // Its own migration so the head row always exists once this is recorded: seal() never has to
    // create it (which would race).
    name: 'seed_audit_chain_head',
    statements: ["INSERT INTO audit_chain_head (id, chain_index, hash, event_id) VALUES (1, 0, '', '')"],
    applied: (p) => p.hasRow('SELECT 1 FROM audit_chain_head WHERE id = 1'),
  },
  {
    version: 12,
    // Staged rotation: `current`, `previous`, `pending` or NULL. The unique key holds each path to
    // one version per stage (NULLs repeat), so a bug in the label shifts fails loudly instead of
    // leaving two current versions.
    name: 'add_secret_version_stage',
    statements: [
      `ALTER TABLE secret_versions ADD COLUMN stage VARBINARY(16) NULL,
        ADD UNIQUE KEY secret_versions_stage (vault_id, path, stage)`,
    ],
    // One ALTER, atomic: the column and the key are there together or not at all.
    applied: async (p) => (await p.hasColumns('secret_versions', ['stage'])) && (await p.hasIndex('secret_versions', 'secret_versions_stage')),
  },
  {
    version: 13,
    // Before stages, latest was the newest version: make each live path's newest version current.
    name: 'backfill_current_stage',
    statements: [
      `UPDATE secret_versions v JOIN secrets s ON s.vault_id = v.vault_id AND s.path = v.path AND s.last_version = v.version
       SET v.stage = 'current' WHERE s.deleted = 0 AND v.deleted = 0`,
    ],
    // Idempotent (sets the same rows again), and nothing serves before every migration is
    // recorded, so a rerun after a crash before the record is safe: never "already applied".
    applied: async () => false,
  },
  {
    version: 14,
    // Keys sealed under the master key, re-wrapped with the secrets: a retired master key's
    // audit-chain key lives on here so links it made keep verifying.
    name: 'create_sealed_keys',
    applied: (p) => p.hasTable('sealed_keys'),
    statements: [
      `CREATE TABLE sealed_keys (
        purpose VARBINARY(64) NOT NULL,
        key_id VARBINARY(64) NOT NULL,
        sealed BLOB NOT NULL,
        created_at DATETIME(6) NOT NULL,
        PRIMARY KEY (purpose, key_id)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 15,
    // Scheduled rotation lives on the path's counter row: claiming a due time is a conditional
    // update of the row an append locks anyway. The key finds due paths without a scan.
    name: 'add_secret_rotation_schedule',
    statements: [
      `ALTER TABLE secrets ADD COLUMN rotation_policy LONGTEXT NULL,
        ADD COLUMN next_rotation_at DATETIME(6) NULL,
        ADD COLUMN last_rotated_at DATETIME(6) NULL,
        ADD KEY secrets_by_next_rotation (next_rotation_at)`,
    ],
    // One ALTER, atomic: the columns and the key are there together or not at all.
    applied: async (p) =>
      (await p.hasColumns('secrets', ['rotation_policy', 'next_rotation_at', 'last_rotated_at'])) && (await p.hasIndex('secrets', 'secrets_by_next_rotation')),
  },
  {
    version: 16,
    // ListPolicies pages by (created_at, id) within a vault: a range on this index, not a sort.
    name: 'index_policies_by_vault_created_at',
    statements: ['ALTER TABLE policies ADD KEY policies_by_vault_created_at (vault_id, created_at, id)'],
    applied: (p) => p.hasIndex('policies', 'policies_by_vault_created_at'),
  },
  {
    version: 17,
    // Idempotency keys: `id` is SHA-256 of (caller, method, key), the unique row a call claims
    // first in its transaction; `fingerprint` a keyed hash of the request; `response` the encoded
    // answer (never a value or key). The expiry sweep deletes by `expires_at` in index order.
    name: 'create_idempotency_keys',
    applied: (p) => p.hasTable('idempotency_keys'),
    statements: [
      `CREATE TABLE idempotency_keys (
        id BINARY(32) NOT NULL PRIMARY KEY,
        fingerprint BINARY(32) NOT NULL,
        response MEDIUMBLOB NOT NULL,
        created_at DATETIME(6) NOT NULL,
        expires_at DATETIME(6) NOT NULL,
        KEY idempotency_keys_by_expiry (expires_at)
      ) ${TABLE_OPTIONS}`,
    ],
  },
  {
    version: 18,
    // Every audit row paid for eight indexes. No query looks an event up by id or filters by
    // vault (the audit filters are action, actor, resource and time; the chain is read by
    // chain_index), so those two go: the id key was also a random UUID, which lands anywhere in
    // its tree. Ids stay unique as UUIDs, and the chain's hashes cover them.
    name: 'drop_unused_audit_indexes',
    statements: ['ALTER TABLE audit_events DROP KEY audit_events_id, DROP KEY audit_events_by_vault'],
    applied: async (p) => !(await p.hasIndex('audit_events', 'audit_events_id')) && !(await p.hasIndex('audit_events', 'audit_events_by_vault')),
  },
  {
    version: 19,
    // The expiry recorder's mark (domain/expiry-recorder.ts): set once, by the conditional update
    // that also decides who writes the secret.expire event. The key leads with the mark, so the
    // scan reads only unrecorded rows, in expires_at order, however many were recorded before.
    name: 'add_secret_version_expiry_recorded_at',
    statements: [
      `ALTER TABLE secret_versions ADD COLUMN expiry_recorded_at DATETIME(6) NULL,
        ADD KEY secret_versions_by_unrecorded_expiry (expiry_recorded_at, expires_at)`,
    ],
    // One ALTER, atomic: the column and the key are there together or not at all.
    applied: async (p) => (await p.hasColumns('secret_versions', ['expiry_recorded_at'])) && (await p.hasIndex('secret_versions', 'secret_versions_by_unrecorded_expiry')),
  },
  {
    version: 20,
    // Stages move from the version rows to the path row (migration 21). Every append shifted
    // current and previous by updating two older version rows and their unique (path, stage)
    // entries: the largest part of a write's database work (without it, the server's CPU per
    // PutSecret fell from 0.45 to 0.28 ms). The path row is locked and updated by every append
    // anyway, so three pointers there cost next to nothing.
    name: 'add_secret_stage_pointers',
    statements: ['ALTER TABLE secrets ADD COLUMN current_version INT NULL, ADD COLUMN previous_version INT NULL, ADD COLUMN pending_version INT NULL'],
    applied: (p) => p.hasColumns('secrets', ['current_version', 'previous_version', 'pending_version']),
  },
  {
    version: 21,
    // The copy is idempotent and the DROP is atomic, so a start that dies between them copies
    // again (from the column still there) and then drops it; no stage can be lost.
    name: 'move_secret_stages_to_path_row',
    statements: [
      `UPDATE secrets s SET
        current_version = (SELECT v.version FROM secret_versions v WHERE v.vault_id = s.vault_id AND v.path = s.path AND v.stage = 'current'),
        previous_version = (SELECT v.version FROM secret_versions v WHERE v.vault_id = s.vault_id AND v.path = s.path AND v.stage = 'previous'),
        pending_version = (SELECT v.version FROM secret_versions v WHERE v.vault_id = s.vault_id AND v.path = s.path AND v.stage = 'pending')`,
      'ALTER TABLE secret_versions DROP KEY secret_versions_stage, DROP COLUMN stage',
    ],
    applied: async (p) => !(await p.hasColumns('secret_versions', ['stage'])),
  },
];

/** The lease migrations run under; its holder is one migrate() call. */
export const MIGRATION_LEASE = 'schema-migrations';
const LEASE_TTL_MS = 15_000;
const RENEW_EVERY_MS = 3_000;
/** How long an instance waits for others to finish migrating before it gives up starting. */
const WAIT_FOR_LEASE_MS = 180_000;

const SCHEMA_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  applied_at DATETIME(6) NOT NULL
) ${TABLE_OPTIONS}`;

export interface MigrateOptions {
  migrations?: readonly Migration[];
  warn?: (obj: object, msg: string) => void;
  /** Test seam: how long to wait for another instance's lease (default 180 s). */
  waitForLeaseMs?: number;
}

/**
 * Applies the migrations the database lacks, in order, and returns the versions this call applied.
 *
 * Safe from any number of instances on any nodes of a multi-primary cluster: the work runs under
 * a cluster-wide lease (a row in `leases`, which replicates; GET_LOCK holds on one node only), and
 * each migration is recorded in a transaction fenced by that lease, so a holder that stalled past
 * its lease cannot record over the next one. Every step is idempotent and retried on deadlocks,
 * certification failures, a node not ready and lost connections: a start that dies half-way
 * leaves a state the next start finishes (a change found applied but unrecorded is recorded, with
 * a warning saying so), never one that fails every later start.
 */
export async function migrate(pool: Pool, { migrations = MIGRATIONS, warn = () => {}, waitForLeaseMs = WAIT_FOR_LEASE_MS }: MigrateOptions = {}): Promise<number[]> {
  checkOrder(migrations);
  const db: Database = { pool, poolLimits: DEFAULT_POOL_LIMITS, logger: { warn }, retry: DEFAULT_RETRY };
  // Bootstrap: both tables must exist before the lease can be taken. IF NOT EXISTS, so every
  // instance may run these at once (DDL is ordered cluster-wide on Galera).
  await withPooledConnection(db, async (connection) => {
    await connection.query(LEASES_TABLE);
    await connection.query(SCHEMA_MIGRATIONS_TABLE);
  });

  const recorded = await recordedVersions(db);
  const unknown = [...recorded].filter((v) => !migrations.some((m) => m.version === v));
  if (unknown.length > 0) warn({ versions: unknown }, 'database has migrations this build does not know; was a newer version deployed?');
  if (migrations.every((m) => recorded.has(m.version))) return [];

  const leases = createLeaseStore(db);
  const holder = `migrate:${randomUUID()}`;
  const waitUntil = Date.now() + waitForLeaseMs;
  for (;;) {
    const lease = await leases.acquire(MIGRATION_LEASE, holder, LEASE_TTL_MS);
    if (lease) {
      const renewal = keepRenewed(lease, () => leases.acquire(MIGRATION_LEASE, holder, LEASE_TTL_MS));
      try {
        return await applyPending(db, migrations, renewal.current, warn);
      } catch (error) {
        // Our lease ran out under us: whoever holds it now finishes the work; wait for it.
        if (!(error instanceof LeaseLostError)) throw error;
        warn({}, 'lost the migration lease to another instance; waiting for it to finish');
      } finally {
        await renewal.stop();
        await leases.release(renewal.current()).catch(() => {
          // It expires on its own within the TTL.
        });
      }
    }
    const now = await recordedVersions(db);
    if (migrations.every((m) => now.has(m.version))) return [];
    if (Date.now() > waitUntil) {
      throw new Error(
        `gave up after ${Math.round(waitForLeaseMs / 1000)} s waiting for another instance to finish migrating the database ` +
          `(lease "${MIGRATION_LEASE}" in table leases); if no instance is migrating, it expires within ${LEASE_TTL_MS / 1000} s`,
      );
    }
    await sleep(150 + Math.random() * 200);
  }
}

async function applyPending(db: Database, migrations: readonly Migration[], lease: () => Lease, warn: (obj: object, msg: string) => void): Promise<number[]> {
  // Read again under the lease: the previous holder may have applied some meanwhile.
  const recorded = await recordedVersions(db);
  const appliedNow: number[] = [];
  for (const migration of migrations) {
    if (recorded.has(migration.version)) continue;
    const label = `migration ${migration.version} (${migration.name})`;
    // Retried as a whole: probe, apply if absent, record. Each part is safe to repeat.
    const ranIt = await withPooledConnection(db, async (connection) => {
      const probe = createSchemaProbe(sqlOn(connection));
      let already: boolean;
      try {
        already = await migration.applied(probe);
      } catch (error) {
        if (failureKind(error) !== 'other') throw error;
        throw new Error(`${label} is half-applied: ${(error as Error).message}`, { cause: error });
      }
      if (already) {
        warn({ version: migration.version }, `${label} was found applied but not recorded (an earlier start stopped between the change and its record); recording it`);
        return false;
      }
      try {
        for (const statement of migration.statements) await connection.query(statement);
        return true;
      } catch (error) {
        if (failureKind(error) !== 'other') throw error;
        // A holder whose lease ran out may have applied it meanwhile; anything else is for a human.
        if (await migration.applied(probe).catch(() => false)) return false;
        throw new Error(`${label} failed: ${(error as Error).message}`, { cause: error });
      }
    });
    await inTransaction(db, async (sql) => {
      await requireLease(sql, lease());
      await recordMigration(sql, migration);
    });
    if (ranIt) appliedNow.push(migration.version);
  }
  return appliedNow;
}

function recordMigration(sql: Sql, migration: Migration) {
  // IGNORE: a record already there (written by a retry whose first COMMIT did land) is fine.
  return sql.change('INSERT IGNORE INTO schema_migrations (version, name, applied_at) VALUES (?, ?, UTC_TIMESTAMP(6))', [migration.version, migration.name]);
}

async function recordedVersions(db: Database): Promise<Set<number>> {
  const rows = await withPooledConnection(db, async (connection) => sqlOn(connection).select('SELECT version FROM schema_migrations'));
  return new Set(rows.map((row) => Number(row.version)));
}


/**
 * Renews the lease in the background so a long DDL does not outlive it. A failed or refused
 * renewal keeps the last lease: the fenced record then fails and says so.
 */
function keepRenewed(lease: Lease, renew: () => Promise<Lease | null>) {
  let current = lease;
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    inFlight = inFlight.then(() =>
      renew().then(
        (renewed) => {
          if (renewed) current = renewed;
        },
        () => {},
      ),
    );
  }, RENEW_EVERY_MS);
  timer.unref();
  return {
    current: () => current,
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Numbers must run 1, 2, 3, ... so "append the next number" is the only way to add one. */
export function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migration "${migration.name}" has version ${migration.version}; expected ${index + 1} (versions run 1, 2, 3, ... in list order)`);
    }
  });
}
