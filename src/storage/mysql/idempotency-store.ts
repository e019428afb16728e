import type { IdempotencyStore } from '../storage.js';
import { IdempotencyKeyReusedError, StorageContentionError } from '../storage-errors.js';
import { insertAuditEvents } from './audit-log.js';
import { duplicateKey } from './constraint-errors.js';
import type { Sql } from './pool.js';
import { inCallTransaction, withConnection, type CallTransaction, type Database } from './transaction.js';

/** How often one call looks for a key that keeps vanishing (expired and deleted) under it. */
const CLAIM_TRIES = 3;

/**
 * The claim row is the first statement of the call's transaction. Its primary key is the lock
 * concurrent repeats queue on: InnoDB makes a second INSERT of an uncommitted key wait, then fail
 * as a duplicate once the first commits (so it reads the stored response) or succeed once the
 * first rolls back (so it does the work itself). On a multi-primary cluster a repeat on another
 * node fails certification at COMMIT instead; its retry then finds the duplicate.
 */
export function createIdempotencyStore(db: Database): IdempotencyStore {
  return {
    async run(claim, work) {
      for (let tried = 1; ; tried++) {
        let call: CallTransaction | undefined;
        let answered: Uint8Array | null;
        try {
          answered = await inCallTransaction(db, async (current) => {
            call = current;
            if (!(await insertClaim(current.sql, claim))) return null;
            const response = await work();
            await insertAuditEvents(current.sql, current.deferredAudit);
            await current.sql.change('UPDATE idempotency_keys SET response = ? WHERE id = ?', [Buffer.from(response), Buffer.from(claim.key)]);
            return response;
          });
        } catch (error) {
          // The call failed for good: its refusals are recorded as they would be without a key.
          const deferred = (call as CallTransaction | undefined)?.deferredAudit ?? [];
          if (deferred.length > 0) await withConnection(db, (sql) => insertAuditEvents(sql, deferred));
          throw error;
        }
        if (answered) return { replayed: false, response: answered };

        const stored = await withConnection(db, (sql) => selectKey(sql, claim.key));
        if (stored && stored.expiresAt > claim.at) {
          if (!stored.fingerprint.equals(claim.fingerprint)) throw new IdempotencyKeyReusedError();
          return { replayed: true, response: Uint8Array.from(stored.response) };
        }
        if (tried >= CLAIM_TRIES) throw new StorageContentionError();
        // Expired but not yet swept: free it, then claim it like a new key.
        if (stored) await withConnection(db, (sql) => sql.change('DELETE FROM idempotency_keys WHERE id = ? AND expires_at <= ?', [Buffer.from(claim.key), claim.at]));
      }
    },

    async deleteExpired(at, limit) {
      // LIMIT inlined, not bound (see audit-store.ts), once checked to be a plain count.
      if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('limit must be a positive integer');
      const { affectedRows } = await withConnection(db, (sql) =>
        sql.change(`DELETE FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ${limit}`, [at]),
      );
      return affectedRows;
    },
  };
}

/** False when the key is taken (committed by another call, possibly after waiting for it). */
async function insertClaim(sql: Sql, claim: Parameters<IdempotencyStore['run']>[0]): Promise<boolean> {
  try {
    await sql.change('INSERT INTO idempotency_keys (id, fingerprint, response, created_at, expires_at) VALUES (?, ?, ?, ?, ?)', [
      Buffer.from(claim.key),
      Buffer.from(claim.fingerprint),
      Buffer.alloc(0),
      claim.at,
      claim.expiresAt,
    ]);
    return true;
  } catch (error) {
    if (duplicateKey(error) !== undefined) return false;
    throw error;
  }
}

async function selectKey(sql: Sql, key: Uint8Array) {
  const [row] = await sql.select('SELECT fingerprint, response, expires_at FROM idempotency_keys WHERE id = ?', [Buffer.from(key)]);
  if (!row) return null;
  return { fingerprint: row.fingerprint as Buffer, response: row.response as Buffer, expiresAt: row.expires_at as Date };
}
