import type { KeyCanaryStore } from '../storage.js';
import { utf8 } from './row-mapping.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

export function createKeyCanaryStore(db: Database): KeyCanaryStore {
  return {
    list: () =>
      withConnection(db, async (sql) => {
        const rows = await sql.select('SELECT key_id, canary FROM key_canaries ORDER BY created_at, key_id');
        return rows.map((row) => {
          if (!Buffer.isBuffer(row.key_id) || !Buffer.isBuffer(row.canary)) throw new Error('key_canaries holds a row of unexpected shape');
          return { keyId: row.key_id.toString('utf8'), canary: row.canary };
        });
      }),

    // Instances starting together may add the same key's canary at once: the first one stays.
    // (Not INSERT IGNORE, which would also turn a truncation or bad value into a warning.)
    add: (keyId, canary) =>
      inTransaction(db, async (sql) => {
        await sql.change(
          'INSERT INTO key_canaries (key_id, canary, created_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE key_id = key_id',
          [utf8(keyId), canary, new Date()],
        );
      }),

    remove: (keyId) =>
      inTransaction(db, async (sql) => {
        await sql.change('DELETE FROM key_canaries WHERE key_id = ?', [utf8(keyId)]);
      }),
  };
}
