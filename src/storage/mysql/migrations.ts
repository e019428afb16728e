import { acquire, sqlOn, type Pool } from './pool.js';

/**
 * The schema, as an ordered list of migrations applied once each. To change the schema, append
 * one entry with the next number; never edit or reorder an applied one.
 *
 * Rules for entries (the SQL must run on MariaDB 10.11 and MySQL 8):
 * - InnoDB, utf8mb4 with utf8mb4_bin; no syntax only one of the two servers has.
 * - One DDL statement per migration where possible: DDL commits implicitly, so a migration with
 *   several statements that fails half-way is left half-applied and needs a human.
 * - No IF NOT EXISTS: applying a migration twice should fail loudly, not pass silently over a
 *   table of a different shape.
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
  },
  {
    version: 9,
    // Unique, so no two events can hold one place; NULLs (pending events) may repeat. Also finds
    // the pending events and serves reading the chain in order.
    name: 'index_audit_chain_index',
    statements: ['ALTER TABLE audit_events ADD UNIQUE KEY audit_events_chain_index (chain_index)'],
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
  },
  {
    version: 11,
    // Its own migration so the head row always exists once this is recorded: seal() never has to
    // create it (which would race).
    name: 'seed_audit_chain_head',
    statements: ["INSERT INTO audit_chain_head (id, chain_index, hash, event_id) VALUES (1, 0, '', '')"],
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
  },
  {
    version: 13,
    // Before stages, latest was the newest version: make each live path's newest version current.
    name: 'backfill_current_stage',
    statements: [
      `UPDATE secret_versions v JOIN secrets s ON s.vault_id = v.vault_id AND s.path = v.path AND s.last_version = v.version
       SET v.stage = 'current' WHERE s.deleted = 0 AND v.deleted = 0`,
    ],
  },
];

const LOCK_NAME = 'vault_migrations';
const LOCK_TIMEOUT_SECONDS = 60;

/**
 * Applies the migrations the database lacks, in order, and returns the versions this call applied.
 * Holding the named lock makes instances that start together take turns, so each migration is
 * applied by exactly one of them. (GET_LOCK is per server: on a multi-primary cluster, start the
 * first instance alone or point migrations at one node.) Not retried: a connection lost halfway
 * through DDL leaves a state that needs a look, not a blind second run.
 */
export async function migrate(
  pool: Pool,
  { migrations = MIGRATIONS, warn = () => {} }: { migrations?: readonly Migration[]; warn?: (obj: object, msg: string) => void } = {},
): Promise<number[]> {
  checkOrder(migrations);
  const connection = await acquire(pool);
  const sql = sqlOn(connection);
  let healthy = true;
  try {
    const [lock] = await sql.select('SELECT GET_LOCK(?, ?) AS acquired', [LOCK_NAME, LOCK_TIMEOUT_SECONDS]);
    if (Number(lock?.acquired) !== 1) {
      throw new Error(`gave up after ${LOCK_TIMEOUT_SECONDS} s waiting for another instance to finish migrating the database (lock "${LOCK_NAME}")`);
    }
    try {
      await connection.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
          version INT NOT NULL PRIMARY KEY,
          name VARCHAR(255) NOT NULL,
          applied_at DATETIME(6) NOT NULL
        ) ${TABLE_OPTIONS}`,
      );
      const rows = await sql.select('SELECT version FROM schema_migrations');
      const applied = new Set(rows.map((row) => Number(row.version)));
      const known = new Set(migrations.map((m) => m.version));
      const unknown = [...applied].filter((v) => !known.has(v));
      if (unknown.length > 0) {
        warn({ versions: unknown }, 'database has migrations this build does not know; was a newer version deployed?');
      }

      const appliedNow: number[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        try {
          for (const statement of migration.statements) await connection.query(statement);
        } catch (error) {
          throw new Error(`migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`, { cause: error });
        }
        await sql.change('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
          migration.version,
          migration.name,
          new Date(),
        ]);
        appliedNow.push(migration.version);
      }
      return appliedNow;
    } finally {
      await sql.select('SELECT RELEASE_LOCK(?) AS released', [LOCK_NAME]).catch(() => {
        // The server drops the lock with the connection, which the outer finally destroys.
        healthy = false;
      });
    }
  } catch (error) {
    healthy = false;
    throw error;
  } finally {
    if (healthy) connection.release();
    else connection.destroy();
  }
}

/** Numbers must run 1, 2, 3, ... so "append the next number" is the only way to add one. */
export function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`migration "${migration.name}" has version ${migration.version}; expected ${index + 1} (versions run 1, 2, 3, ... in list order)`);
    }
  });
}
