import type { DueRotation, ExpiredVersion, KeysetPage, PathSchedule, RotationSchedule, SecretLookup, SecretStage, SecretVersionRecord, VersionSelector } from '../records.js';
import { limitOf } from './keyset.js';
import type { Row, Sql, SqlParam } from './pool.js';
import { VersionMismatchError } from '../storage-errors.js';
import { date, dateOrNull, integer, json, jsonText, STAGE_POINTERS, text, toSecretVersion, utf8, versionColumns } from './row-mapping.js';

/**
 * The SQL of the secret store, one function per statement. Paths and vault ids are bound as bytes
 * (VARBINARY columns), so comparison and ordering are byte-exact.
 */

/** The `path` column's size. */
export const MAX_PATH_BYTES = 512;

const key = (vaultId: string, path: string) => [utf8(vaultId), utf8(path)];

/**
 * Claims the path's next version number by bumping its counter row, which also locks the row
 * until commit, so appends to one path queue here and get gapless numbers. Clears the deleted mark
 * and gives the new version `stage` in the same row update (SET clauses apply left to right, each
 * seeing the ones before, so previous takes the old current).
 *
 * The number comes from the OK packet: LAST_INSERT_ID(expr) puts it in `insertId` when the row
 * existed (affectedRows 2). A fresh row (affectedRows 1) is number 1 and leaves `insertId` 0, and
 * SELECT LAST_INSERT_ID() would then return a stale value from an earlier statement on this
 * connection, hence the branch.
 */
export async function claimNextVersion(sql: Sql, vaultId: string, path: string, stage: 'current' | 'pending'): Promise<number> {
  const { affectedRows, insertId } = await sql.change(counterBump(path, stage), key(vaultId, path));
  const version = affectedRows === 1 ? 1 : insertId;
  if (affectedRows > 2 || !Number.isSafeInteger(version) || version < 1) {
    throw new Error(`claiming the next version of a secret got an unexpected result (affectedRows ${affectedRows})`);
  }
  return version;
}

/**
 * The same bump, for an append that already knows its number (secret-store.ts, predicted
 * appends): its result is not read, so it waits to go with the rest of the transaction.
 */
export async function bumpCounter(sql: Sql, vaultId: string, path: string, stage: 'current' | 'pending'): Promise<void> {
  await sql.write(counterBump(path, stage), key(vaultId, path));
}

function counterBump(path: string, stage: 'current' | 'pending'): string {
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > MAX_PATH_BYTES) throw new Error(`secret path is ${bytes} bytes long; at most ${MAX_PATH_BYTES} bytes can be stored`);
  const pointer = STAGE_POINTERS[stage];
  const moveStages = stage === 'pending' ? '' : `${STAGE_POINTERS.previous} = ${STAGE_POINTERS.current}, `;
  return `INSERT INTO secrets (vault_id, path, last_version, deleted, ${pointer}) VALUES (?, ?, 1, 0, 1)
     ON DUPLICATE KEY UPDATE ${moveStages}${pointer} = last_version + 1, last_version = LAST_INSERT_ID(last_version + 1), deleted = 0`;
}

/** Live versions form the tail of the numbering (a delete marks them all), so this is the newest of them. */
export async function newestLiveVersion(sql: Sql, vaultId: string, path: string): Promise<SecretVersionRecord | null> {
  const [row] = await sql.select(
    `SELECT ${versionColumns('v', 's')} FROM secret_versions v ${JOIN_PATH_ROW}
     WHERE v.vault_id = ? AND v.path = ? AND v.deleted = 0 ORDER BY v.version DESC LIMIT 1`,
    key(vaultId, path),
  );
  return row ? toSecretVersion(row) : null;
}

export async function insertVersion(sql: Sql, v: SecretVersionRecord): Promise<void> {
  await sql.write(
    `INSERT INTO secret_versions (vault_id, path, version, id, type, metadata, ciphertext, created_by, created_at,
       expires_at, max_access_count, access_count, disabled, deleted)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      ...key(v.vaultId, v.path),
      v.version,
      utf8(v.id),
      v.type,
      jsonText(v.metadata),
      v.ciphertext,
      v.createdBy,
      v.createdAt,
      v.expiresAt,
      v.maxAccessCount,
      v.accessCount,
      v.disabled,
      v.deleted,
    ],
  );
}

/**
 * Makes `version` current (a promotion): the old current becomes previous (the old previous loses
 * its stage) and `version` leaves pending if it was there. One UPDATE of the path row, whose SET
 * clauses MariaDB and MySQL apply left to right, each seeing the ones before; the caller holds
 * the row's lock.
 */
export async function makeCurrent(sql: Sql, vaultId: string, path: string, version: number): Promise<void> {
  await sql.write(
    `UPDATE secrets SET pending_version = IF(pending_version = ?, NULL, pending_version), previous_version = current_version, current_version = ?
     WHERE vault_id = ? AND path = ?`,
    [version, version, ...key(vaultId, path)],
  );
}

/** The path row of the version(s) selected, for versionColumns' stage. */
const JOIN_PATH_ROW = 'JOIN secrets s ON s.vault_id = v.vault_id AND s.path = v.path';

/** Replaces the path's schedule (null removes it); the caller has locked the row by claiming a version. */
export async function updateSchedule(sql: Sql, vaultId: string, path: string, schedule: { policy: RotationSchedule; nextRotationAt: Date } | null): Promise<void> {
  await sql.write('UPDATE secrets SET rotation_policy = ?, next_rotation_at = ? WHERE vault_id = ? AND path = ?', [
    schedule && JSON.stringify(schedule.policy),
    schedule && schedule.nextRotationAt,
    ...key(vaultId, path),
  ]);
}

/**
 * Claims one due time of a schedule: only the transaction that still finds next_rotation_at at
 * the value it read moves it on. Concurrent claimers queue on the row lock and then find the new
 * value (an UPDATE reads the latest committed row), so they get 0 rows; on a multi-primary
 * cluster the loser fails certification, is retried, and gets 0 rows the same way.
 */
export async function claimDueRotation(sql: Sql, due: { vaultId: string; path: string; dueAt: Date; nextAt: Date; at: Date }): Promise<boolean> {
  const { affectedRows } = await sql.change(
    `UPDATE secrets SET next_rotation_at = ?, last_rotated_at = ?
     WHERE vault_id = ? AND path = ? AND deleted = 0 AND next_rotation_at = ?`,
    [due.nextAt, due.at, ...key(due.vaultId, due.path), due.dueAt],
  );
  return affectedRows === 1;
}

export async function selectDueRotations(sql: Sql, at: Date, limit: number): Promise<DueRotation[]> {
  const rows = await sql.select(
    `SELECT vault_id, path, next_rotation_at, rotation_policy FROM secrets
     WHERE next_rotation_at <= ? AND deleted = 0 AND rotation_policy IS NOT NULL
     ORDER BY next_rotation_at LIMIT ${Math.max(1, Math.floor(limit))}`,
    [at],
  );
  return rows.map((row) => ({
    vaultId: text(row, 'vault_id'),
    path: text(row, 'path'),
    dueAt: date(row, 'next_rotation_at'),
    policy: json(row, 'rotation_policy') as unknown as RotationSchedule,
  }));
}

export async function selectSchedule(sql: Sql, vaultId: string, path: string): Promise<PathSchedule | null> {
  const [row] = await sql.select('SELECT rotation_policy, next_rotation_at, last_rotated_at FROM secrets WHERE vault_id = ? AND path = ?', key(vaultId, path));
  if (!row) return null;
  return {
    policy: json(row, 'rotation_policy') as RotationSchedule | null,
    nextRotationAt: dateOrNull(row, 'next_rotation_at'),
    lastRotatedAt: dateOrNull(row, 'last_rotated_at'),
  };
}

/** Locks the path's counter row (as an append does first), so stage changes queue behind appends. */
/**
 * Compare-and-set: locks the path's counter row (as an append does first, so the two never
 * deadlock) and throws unless its newest version number is `expected` (0: none ever).
 */
export async function requireNewestVersion(sql: Sql, vaultId: string, path: string, expected: number | undefined): Promise<void> {
  if (expected === undefined) return;
  const rows = await sql.select('SELECT last_version FROM secrets WHERE vault_id = ? AND path = ? FOR UPDATE', key(vaultId, path));
  const actual = rows.length === 1 ? Number(rows[0]!.last_version) : 0;
  if (actual !== expected) throw new VersionMismatchError(expected, actual);
}

export async function lockLivePath(sql: Sql, vaultId: string, path: string): Promise<boolean> {
  const rows = await sql.select('SELECT deleted FROM secrets WHERE vault_id = ? AND path = ? FOR UPDATE', key(vaultId, path));
  return rows.length === 1 && Number(rows[0]!.deleted) === 0;
}

export async function selectVersion(sql: Sql, vaultId: string, path: string, version: number): Promise<SecretVersionRecord | null> {
  const [row] = await sql.select(
    `SELECT ${versionColumns('v', 's')} FROM secret_versions v ${JOIN_PATH_ROW} WHERE v.vault_id = ? AND v.path = ? AND v.version = ?`,
    [...key(vaultId, path), version],
  );
  return row ? toSecretVersion(row) : null;
}

/**
 * Path state and the selected version, each answer from one statement (one snapshot).
 *
 * Latest is the current version unless it is disabled, else the newest readable non-pending one.
 * The common case is the path row joined with its current version: two primary-key reads;
 * only when the current version is missing or unreadable does the full form run, which walks the
 * primary key down from the newest version and stops at the first readable one. Either way the
 * cost does not grow with the path's history.
 */
export async function selectLookup(sql: Sql, vaultId: string, path: string, selector: VersionSelector): Promise<SecretLookup> {
  if (selector.kind === 'latest') {
    const current = await joinVersion(sql, vaultId, path, CURRENT, []);
    return isSettled(current) ? current : selectLatestReadable(sql, vaultId, path);
  }
  const which = selector.kind === 'stage' ? `v.version = s.${stagePointer(selector.stage)} AND v.deleted = 0` : 'v.version = ?';
  const bound = selector.kind === 'number' ? [selector.version] : [];
  return joinVersion(sql, vaultId, path, which, bound);
}

/** The latest readable version when the current one is not (disabled): the newest live, enabled, non-pending one. */
export function selectLatestReadable(sql: Sql, vaultId: string, path: string): Promise<SecretLookup> {
  return joinVersion(
    sql,
    vaultId,
    path,
    `v.version = COALESCE(
      (SELECT c.version FROM secret_versions c
        WHERE c.vault_id = s.vault_id AND c.path = s.path AND c.version = s.current_version AND c.disabled = 0 AND c.deleted = 0),
      (SELECT x.version FROM secret_versions x
        WHERE x.vault_id = s.vault_id AND x.path = s.path AND x.disabled = 0 AND x.deleted = 0
          AND (s.pending_version IS NULL OR x.version <> s.pending_version)
        ORDER BY x.version DESC LIMIT 1))`,
    [],
  );
}

/** The pointer column of a stage; anything else is refused rather than put into SQL text. */
function stagePointer(stage: string): string {
  if (!Object.hasOwn(STAGE_POINTERS, stage)) throw new Error(`not a secret stage: ${JSON.stringify(stage)}`);
  return STAGE_POINTERS[stage as SecretStage];
}

/**
 * Several paths' current versions in one statement (one round trip for concurrent reads): a
 * UNION ALL of the single-path join, each branch two primary-key lookups, tagged with its place.
 * Settled or not, as `selectLookup` judges: the caller falls back to it for a path that is not.
 */
export async function selectCurrentLookups(sql: Sql, paths: ReadonlyArray<{ vaultId: string; path: string }>): Promise<SecretLookup[]> {
  const branches = paths.map((_, i) => `SELECT ${i} AS batch_index, ${JOINED_COLUMNS} ${joinedFrom(CURRENT)}`);
  const rows = await sql.select(branches.join(' UNION ALL '), paths.flatMap((p) => key(p.vaultId, p.path)));
  const found = new Map(rows.map((row) => [integer(row, 'batch_index'), row]));
  return paths.map((_, i) => toLookup(found.get(i)));
}

export function isSettled(lookup: SecretLookup): boolean {
  return !lookup.exists || lookup.deleted || (lookup.version !== null && !lookup.version.disabled && !lookup.version.deleted);
}

const CURRENT = 'v.version = s.current_version';
const JOINED_COLUMNS = `s.deleted AS path_deleted, ${versionColumns('v', 's')}`;
const joinedFrom = (which: string) =>
  `FROM secrets s LEFT JOIN secret_versions v ON v.vault_id = s.vault_id AND v.path = s.path AND ${which}
   WHERE s.vault_id = ? AND s.path = ?`;

/** The path row joined with the version `which` picks (the path row is found by primary key). */
async function joinVersion(sql: Sql, vaultId: string, path: string, which: string, bound: SqlParam[]): Promise<SecretLookup> {
  const [row] = await sql.select(`SELECT ${JOINED_COLUMNS} ${joinedFrom(which)}`, [...bound, ...key(vaultId, path)]);
  return toLookup(row);
}

function toLookup(row: Row | undefined): SecretLookup {
  if (!row) return { exists: false, deleted: false, version: null };
  return { exists: true, deleted: Number(row.path_deleted) !== 0, version: row.id === null ? null : toSecretVersion(row) };
}

/** Spends one read in a single conditional UPDATE: the row lock makes concurrent spenders queue. */
/**
 * Spends one read; the version's access count after it, or null when nothing was spent. The
 * count comes from the OK packet (LAST_INSERT_ID(expr), as in claimNextVersion): never 0 here.
 */
export async function spendRead(sql: Sql, vaultId: string, path: string, version: number): Promise<number | null> {
  const { affectedRows, insertId } = await sql.change(
    `UPDATE secret_versions SET access_count = LAST_INSERT_ID(access_count + 1)
     WHERE vault_id = ? AND path = ? AND version = ? AND disabled = 0 AND deleted = 0
       AND (max_access_count = 0 OR access_count < max_access_count)`,
    [...key(vaultId, path), version],
  );
  if (affectedRows !== 1) return null;
  if (!Number.isSafeInteger(insertId) || insertId < 1) throw new Error(`spending a read got an unexpected access count (${insertId})`);
  return insertId;
}

/** Range on secret_versions_by_unrecorded_expiry: the unrecorded rows, by expires_at. */
export async function selectUnrecordedExpiries(sql: Sql, at: Date, limit: number): Promise<ExpiredVersion[]> {
  const rows = await sql.select(
    `SELECT vault_id, path, version, expires_at FROM secret_versions
     WHERE expiry_recorded_at IS NULL AND expires_at <= ?
     ORDER BY expires_at LIMIT ${Math.max(1, Math.floor(limit))}`,
    [at],
  );
  return rows.map((row) => ({ vaultId: text(row, 'vault_id'), path: text(row, 'path'), version: integer(row, 'version'), expiresAt: date(row, 'expires_at') }));
}

/** Marks one expired version's expiry recorded if it is not yet; true when this call did (affectedRows decides). */
export async function markExpiryRecorded(sql: Sql, vaultId: string, path: string, version: number, at: Date, deleted: boolean): Promise<boolean> {
  const { affectedRows } = await sql.change(
    `UPDATE secret_versions SET expiry_recorded_at = ?
     WHERE vault_id = ? AND path = ? AND version = ? AND deleted = ? AND expiry_recorded_at IS NULL AND expires_at <= ?`,
    [at, ...key(vaultId, path), version, deleted ? 1 : 0, at],
  );
  return affectedRows === 1;
}

/** Newest first; a page's `after` is the last version seen, so the next page is the versions below it. */
export async function selectLiveVersions(sql: Sql, vaultId: string, path: string, page?: KeysetPage<number>): Promise<SecretVersionRecord[]> {
  const below = page?.after === undefined ? '' : 'AND v.version < ?';
  const rows = await sql.select(
    `SELECT ${versionColumns('v', 's')} FROM secret_versions v ${JOIN_PATH_ROW}
     WHERE v.vault_id = ? AND v.path = ? AND v.deleted = 0 ${below} ORDER BY v.version DESC ${limitOf(page)}`,
    page?.after === undefined ? key(vaultId, path) : [...key(vaultId, path), page.after],
  );
  return rows.map(toSecretVersion);
}

/**
 * The newest live version of each live path. While a path is not deleted its last_version is live
 * (a delete marks every version and the next append clears the mark), so it is a join on the
 * counter. The prefix is compared as bytes with LEFT(), so LIKE wildcards in it mean nothing; the
 * `>=` lets the primary key bound the scan.
 */
export async function selectNewestPerPath(sql: Sql, vaultId: string, prefix: string, page?: KeysetPage<string>): Promise<SecretVersionRecord[]> {
  const prefixBytes = utf8(prefix);
  const byPrefix = prefixBytes.length > 0 ? 'AND s.path >= ? AND LEFT(s.path, LENGTH(?)) = ?' : '';
  // A page starts after the last path seen: a range on the primary key, as cheap at the end as at the start.
  const after = page?.after === undefined ? '' : 'AND s.path > ?';
  const rows = await sql.select(
    `SELECT ${versionColumns('v', 's')}
     FROM secrets s
     JOIN secret_versions v ON v.vault_id = s.vault_id AND v.path = s.path AND v.version = s.last_version
     WHERE s.vault_id = ? AND s.deleted = 0 AND v.deleted = 0 ${byPrefix} ${after}
     ORDER BY s.path ${limitOf(page)}`,
    [
      utf8(vaultId),
      ...(prefixBytes.length > 0 ? [prefixBytes, prefixBytes, prefixBytes] : []),
      ...(page?.after === undefined ? [] : [utf8(page.after)]),
    ],
  );
  return rows.map(toSecretVersion);
}

/** True when the version exists and is not deleted (matched, even if the flag already had that value). */
export async function updateDisabled(sql: Sql, vaultId: string, path: string, version: number, disabled: boolean): Promise<boolean> {
  const { affectedRows } = await sql.change(
    'UPDATE secret_versions SET disabled = ? WHERE vault_id = ? AND path = ? AND version = ? AND deleted = 0',
    [disabled, ...key(vaultId, path), version],
  );
  return affectedRows === 1;
}

/**
 * Marks the path and all its versions deleted and erases the ciphertexts; the counter row stays,
 * so numbering continues. The counter row is locked first, as in an append, so the two never
 * deadlock on each other. False when the path has no live version.
 */
export async function markDeleted(sql: Sql, vaultId: string, path: string): Promise<boolean> {
  // A deleted path keeps no schedule: a later put starts without one.
  const { affectedRows } = await sql.change(
    `UPDATE secrets SET deleted = 1, rotation_policy = NULL, next_rotation_at = NULL, current_version = NULL, previous_version = NULL,
       pending_version = NULL WHERE vault_id = ? AND path = ? AND deleted = 0`,
    key(vaultId, path),
  );
  if (affectedRows === 0) return false;
  await sql.change(
    'UPDATE secret_versions SET deleted = 1, ciphertext = NULL WHERE vault_id = ? AND path = ? AND deleted = 0',
    key(vaultId, path),
  );
  return true;
}
