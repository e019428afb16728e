import type { SealedBlob, SealedBlobStore, SealedKeyStore, SealedKind, SealedRef } from '../storage.js';
import type { Row } from './pool.js';
import { integer, text, unexpected, utf8 } from './row-mapping.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

/** Bytes 2..9 of a blob (SQL counts from 1) are the id of the master key wrapping it. */
const KEY_ID_OF = (column: string) => `SUBSTRING(${column}, 2, 8)`;

/** Each kind's table, blob column and primary key (the keyset the listing walks). */
const TABLES: Record<SealedKind, { table: string; blob: string; key: readonly string[] }> = {
  secret_version: { table: 'secret_versions', blob: 'ciphertext', key: ['vault_id', 'path', 'version'] },
  sealed_key: { table: 'sealed_keys', blob: 'sealed', key: ['purpose', 'key_id'] },
};

const keyValues = (ref: SealedRef) => (ref.kind === 'secret_version' ? [utf8(ref.vaultId), utf8(ref.path), ref.version] : [utf8(ref.purpose), utf8(ref.keyId)]);

const toRef = (kind: SealedKind, row: Row): SealedRef =>
  kind === 'secret_version'
    ? { kind, vaultId: text(row, 'vault_id'), path: text(row, 'path'), version: integer(row, 'version') }
    : { kind, purpose: text(row, 'purpose'), keyId: text(row, 'key_id') };

/** `(a, b, c) > (?, ?, ?)` spelled out, so both servers use the primary key range. */
function after(columns: readonly string[]): string {
  const [first, ...rest] = columns;
  return rest.length === 0 ? `${first} > ?` : `(${first} > ? OR (${first} = ? AND ${after(rest)}))`;
}
function afterParams(values: ReadonlyArray<Buffer | number>): Array<Buffer | number> {
  const [first, ...rest] = values;
  return rest.length === 0 ? [first!] : [first!, first!, ...afterParams(rest)];
}

function hexKeyId(keyId: string): Buffer {
  if (!/^[0-9a-f]{16}$/.test(keyId)) throw new TypeError('a master key id is 16 lowercase hex digits');
  return Buffer.from(keyId, 'hex');
}

export function createSealedBlobStore(db: Database): SealedBlobStore {
  return {
    countByKey: () =>
      withConnection(db, async (sql) => {
        const counts: Array<{ keyId: string; kind: SealedKind; count: number }> = [];
        for (const [kind, { table, blob }] of Object.entries(TABLES) as Array<[SealedKind, (typeof TABLES)[SealedKind]]>) {
          const rows = await sql.select(
            `SELECT LOWER(HEX(${KEY_ID_OF(blob)})) AS key_id, COUNT(*) AS n FROM ${table} WHERE ${blob} IS NOT NULL GROUP BY key_id ORDER BY key_id`,
          );
          for (const row of rows) counts.push({ keyId: text(row, 'key_id'), kind, count: integer(row, 'n') });
        }
        return counts;
      }),

    listNotWrappedBy: (kind, keyId, limit, start) =>
      withConnection(db, async (sql) => {
        if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('listNotWrappedBy: limit must be a positive integer');
        const { table, blob, key } = TABLES[kind];
        if (start && start.kind !== kind) throw new TypeError('listNotWrappedBy: `after` is a ref of another kind');
        const rows = await sql.select(
          `SELECT ${key.join(', ')}, ${blob} AS sealed_blob FROM ${table}
           WHERE ${blob} IS NOT NULL AND ${KEY_ID_OF(blob)} <> ? ${start ? `AND ${after(key)}` : ''}
           ORDER BY ${key.join(', ')} LIMIT ${limit}`,
          [hexKeyId(keyId), ...(start ? afterParams(keyValues(start)) : [])],
        );
        return rows.map((row): SealedBlob => {
          if (!Buffer.isBuffer(row.sealed_blob)) throw unexpected(blob, 'bytes');
          return { ref: toRef(kind, row), blob: row.sealed_blob };
        });
      }),

    replace: (ref, expected, next) =>
      inTransaction(db, async (sql) => {
        const { table, blob, key } = TABLES[ref.kind];
        const changed = await sql.change(
          `UPDATE ${table} SET ${blob} = ? WHERE ${key.map((c) => `${c} = ?`).join(' AND ')} AND ${blob} = ?`,
          [next, ...keyValues(ref), expected],
        );
        return changed.affectedRows === 1;
      }),
  };
}

export function createSealedKeyStore(db: Database): SealedKeyStore {
  return {
    list: (purpose) =>
      withConnection(db, async (sql) => {
        const rows = await sql.select('SELECT key_id, sealed FROM sealed_keys WHERE purpose = ? ORDER BY key_id', [utf8(purpose)]);
        return rows.map((row) => {
          if (!Buffer.isBuffer(row.sealed)) throw unexpected('sealed', 'bytes');
          return { keyId: text(row, 'key_id'), blob: row.sealed };
        });
      }),

    // Several instances may add the same key at once: the first one stays.
    add: (purpose, keyId, blob) =>
      inTransaction(db, async (sql) => {
        await sql.change(
          'INSERT INTO sealed_keys (purpose, key_id, sealed, created_at) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE key_id = key_id',
          [utf8(purpose), utf8(keyId), blob, new Date()],
        );
      }),
  };
}
