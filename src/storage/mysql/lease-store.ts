import type { Lease, LeaseStore } from '../storage.js';
import { checkLeaseRequest } from '../lease-names.js';
import { LeaseLostError } from '../storage-errors.js';
import type { Sql } from './pool.js';
import { utf8 } from './row-mapping.js';
import { withConnection, type Database } from './transaction.js';

/**
 * Leases in the `leases` table, one row per name. Each claim is ONE conditional autocommit
 * statement, so it is atomic on its own and, on a multi-primary cluster (Galera), two nodes
 * claiming at once are ordered by certification: the loser's statement fails with 1213 (or is
 * re-run by the server and no longer matches) and is retried here, never both granted. Expiry is
 * compared with UTC_TIMESTAMP(6), the database's clock, never the instance's.
 *
 * The table is created by `LEASES_TABLE` before any migration runs (migrations take a lease), so
 * it is `CREATE TABLE IF NOT EXISTS`: every instance may run it, at once, on any node.
 * `fenced_writes` counts the writes made under a lease: bumping it is what makes a fenced write
 * touch the lease row, so a takeover and a stale holder's write conflict on every node.
 */
export const LEASES_TABLE = `CREATE TABLE IF NOT EXISTS leases (
  name VARBINARY(64) NOT NULL,
  holder VARBINARY(255) NOT NULL,
  fencing BIGINT NOT NULL,
  expires_at DATETIME(6) NOT NULL,
  fenced_writes BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;

export function createLeaseStore(db: Database): LeaseStore {
  return {
    acquire: async (name, holder, ttlMs) => {
      checkLeaseRequest(name, holder, ttlMs);
      return withConnection(db, (sql) => claim(sql, name, holder, ttlMs));
    },
    release: (lease) =>
      withConnection(db, async (sql) => {
        await sql.change(
          `UPDATE leases SET expires_at = UTC_TIMESTAMP(6)
           WHERE name = ? AND holder = ? AND fencing = CAST(? AS SIGNED) AND expires_at > UTC_TIMESTAMP(6)`,
          [utf8(lease.name), utf8(lease.holder), lease.fencing],
        );
      }),
  };
}

/**
 * Renews the holder's own lease or takes over an expired one (fencing + 1), else creates the row.
 * In the UPDATE, `fencing` is assigned before `holder` on purpose: both servers evaluate SET
 * left to right with the new values, so IF(holder = ?) must see the old holder. LAST_INSERT_ID(x)
 * hands the new fencing number back in the OK packet, saving a SELECT.
 */
async function claim(sql: Sql, name: string, holder: string, ttlMs: number): Promise<Lease | null> {
  const sentAt = Date.now();
  const ttlMicros = ttlMs * 1000;
  const granted = (fencing: number): Lease => ({ name, holder, fencing, validUntil: sentAt + ttlMs });

  const taken = await sql.change(
    `UPDATE leases
     SET fencing = LAST_INSERT_ID(IF(holder = ?, fencing, fencing + 1)),
         holder = ?,
         expires_at = UTC_TIMESTAMP(6) + INTERVAL CAST(? AS SIGNED) MICROSECOND
     WHERE name = ? AND (holder = ? OR expires_at <= UTC_TIMESTAMP(6))`,
    [utf8(holder), utf8(holder), ttlMicros, utf8(name), utf8(holder)],
  );
  if (taken.affectedRows === 1) return granted(taken.insertId);

  // INSERT IGNORE only ignores the duplicate key here: name and holder were checked to fit.
  const created = await sql.change(
    `INSERT IGNORE INTO leases (name, holder, fencing, expires_at)
     VALUES (?, ?, 1, UTC_TIMESTAMP(6) + INTERVAL CAST(? AS SIGNED) MICROSECOND)`,
    [utf8(name), utf8(holder), ttlMicros],
  );
  return created.affectedRows === 1 ? granted(1) : null;
}

/**
 * The first statement of a fenced transaction: succeeds only while `lease` is current (same
 * holder, same fencing number, unexpired by the database's clock), and writes the lease row, so
 * on a multi-primary cluster a concurrent takeover on another node fails one of the two at
 * certification; run again, this refuses. Throws LeaseLostError otherwise.
 */
export async function requireLease(sql: Sql, lease: Lease): Promise<void> {
  const { affectedRows } = await sql.change(
    `UPDATE leases SET fenced_writes = fenced_writes + 1
     WHERE name = ? AND holder = ? AND fencing = CAST(? AS SIGNED) AND expires_at > UTC_TIMESTAMP(6)`,
    [utf8(lease.name), utf8(lease.holder), lease.fencing],
  );
  if (affectedRows !== 1) throw new LeaseLostError(lease.name);
}
