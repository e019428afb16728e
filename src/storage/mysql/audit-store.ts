import type { AuditFilter, AuditStore, ChainHead, ChainLinker, StoredAuditEvent } from '../storage.js';
import type { Row, Sql, SqlParam } from './pool.js';
import { AUDIT_COLUMNS, integer, text, toAuditRecord, unexpected, utf8 } from './row-mapping.js';
import { requireLease } from './lease-store.js';
import { largestPowerOfTwoAtMost } from './audit-log.js';
import { inTransaction, withConnection, type Database } from './transaction.js';

/**
 * The audit trail on `audit_events` plus the one-row `audit_chain_head`.
 *
 * Writers insert events unsealed (chain_index NULL) with their change and never touch the head, so
 * they share no lock. `seal` links pending events in a short transaction that first locks the head
 * row: sealers on every instance take turns there, so the chain stays one gapless sequence.
 *
 * LIMIT and OFFSET are inlined, not bound: the pool binds numbers as DOUBLE, which MySQL 8 may
 * refuse for LIMIT (MariaDB accepts it). They are checked to be non-negative safe integers first
 * (`count`), so inlining them cannot inject anything.
 */

const STORED_COLUMNS = `seq, ${AUDIT_COLUMNS}, chain_index, hash, key_id`;

/** The columns' sizes; a longer link is refused here with a clear message rather than by strict mode. */
const MAX_HASH_CHARS = 64;
const MAX_KEY_ID_CHARS = 32;

export function createAuditStore(db: Database): AuditStore {
  return {
    list: (filter) =>
      withConnection(db, async (sql) => {
        const { where, params } = conditions(filter);
        const rows = await sql.select(
          `SELECT ${STORED_COLUMNS} FROM audit_events ${where} ORDER BY seq DESC
           LIMIT ${count(filter.limit, 'limit')} OFFSET ${count(filter.offset, 'offset')}`,
          params,
        );
        return rows.map(toStoredEvent);
      }),

    seal: async (link, max, fence) => {
      const limit = count(max, 'seal batch size');
      if (limit === 0) return 0;
      return inTransaction(db, async (sql) => {
        // First, so a stale holder is refused before it reads or locks anything.
        if (fence) await requireLease(sql, fence);
        return sealBatch(sql, link, limit);
      });
    },

    readChain: (after, limit) =>
      withConnection(db, async (sql) => {
        if (!Number.isSafeInteger(after)) throw new TypeError('readChain: after must be an integer');
        const rows = await sql.select(
          `SELECT ${STORED_COLUMNS} FROM audit_events WHERE chain_index > CAST(? AS SIGNED)
           ORDER BY chain_index LIMIT ${count(limit, 'limit')}`,
          [after],
        );
        return rows.map(toStoredEvent);
      }),

    head: () =>
      withConnection(db, async (sql) => {
        const head = await selectHead(sql, '');
        return head.chainIndex === 0 ? null : head;
      }),
  };
}

/**
 * One sealing round. The head lock comes first; the pending events are then read with a plain
 * (non-locking) read, which under REPEATABLE READ takes its snapshot at that first plain read,
 * i.e. after the lock was granted, so it sees everything the previous sealer committed. Events of
 * transactions still open are invisible and are sealed by a later round, so chain order is
 * sealing order. Not locking them also means writers never wait for a sealer. (Under READ
 * COMMITTED every statement reads afresh, which is just as correct.)
 *
 * `link` runs again if the transaction is retried; it is pure, so the result is the same.
 */
async function sealBatch(sql: Sql, link: ChainLinker, limit: number): Promise<number> {
  const head = await selectHead(sql, 'FOR UPDATE');
  const pending = await sql.select(
    `SELECT seq, ${AUDIT_COLUMNS} FROM audit_events WHERE chain_index IS NULL ORDER BY seq LIMIT ${limit}`,
  );
  if (pending.length === 0) return 0;

  let previousHash = head.hash;
  let chainIndex = head.chainIndex;
  const links: Link[] = pending.map((row) => {
    chainIndex += 1;
    // The event exactly as a later readChain will return it (same mapping, same row), so a
    // verifier recomputing the link gets the same input.
    const event = toAuditRecord(row);
    const { hash, keyId } = link(previousHash, event, chainIndex);
    checkLink(hash, keyId);
    previousHash = hash;
    return { seq: seqOf(row), chainIndex, hash, keyId, eventId: event.id };
  });

  await writeLinks(sql, links);
  const last = links[links.length - 1]!;
  await sql.change('UPDATE audit_chain_head SET chain_index = CAST(? AS SIGNED), hash = ?, event_id = ? WHERE id = 1', [
    last.chainIndex,
    last.hash,
    utf8(last.eventId),
  ]);
  return links.length;
}

interface Link {
  /** The row's seq as the decimal string the driver returns for BIGINT. */
  seq: string;
  chainIndex: number;
  hash: string;
  keyId: string;
  eventId: string;
}

/**
 * Writes the links with as few statements as possible, in chunks whose sizes are powers of two:
 * each distinct row count is a distinct prepared statement, so this keeps it to 9 statement shapes
 * (1, 2, 4, ... 256 rows) instead of one per batch size; 500 rows take 6 statements.
 *
 * The links are a derived table joined to their rows by seq: one primary-key lookup per row (a
 * CASE per column, as before, cost the server a comparison per link per row). STRAIGHT_JOIN and
 * FORCE INDEX (PRIMARY) keep it so: were the server to start from the chain_index index for
 * `chain_index IS NULL`, the UPDATE would lock the range of pending events and make writers (and
 * open writer transactions' rows) contend with the sealer.
 */
async function writeLinks(sql: Sql, links: readonly Link[]): Promise<void> {
  for (let start = 0; start < links.length; ) {
    const size = largestPowerOfTwoAtMost(Math.min(links.length - start, MAX_CHUNK));
    const chunk = links.slice(start, start + size);
    const rows = chunk.map(() => 'SELECT CAST(? AS SIGNED) AS seq, CAST(? AS SIGNED) AS chain_index, ? AS hash, ? AS key_id').join(' UNION ALL ');
    const { affectedRows } = await sql.change(
      `UPDATE (${rows}) l STRAIGHT_JOIN audit_events e FORCE INDEX (PRIMARY) ON e.seq = l.seq
       SET e.chain_index = l.chain_index, e.hash = l.hash, e.key_id = l.key_id
       WHERE e.chain_index IS NULL`,
      chunk.flatMap((l) => [l.seq, l.chainIndex, l.hash, l.keyId]),
    );
    // The head lock makes this impossible unless something sealed without it; abort, never fork.
    if (affectedRows !== chunk.length) {
      throw new Error(`sealing audit events: ${chunk.length - affectedRows} of ${chunk.length} were sealed or removed meanwhile`);
    }
    start += size;
  }
}

const MAX_CHUNK = 256;

async function selectHead(sql: Sql, lock: '' | 'FOR UPDATE'): Promise<ChainHead> {
  const [row] = await sql.select(`SELECT chain_index, hash, event_id FROM audit_chain_head WHERE id = 1 ${lock}`);
  // The row is created by a migration and never deleted.
  if (!row) throw new Error('the audit chain head row is missing (audit_chain_head id 1); the database was changed by hand');
  return { chainIndex: integer(row, 'chain_index'), hash: text(row, 'hash'), eventId: text(row, 'event_id') };
}

function toStoredEvent(row: Row): StoredAuditEvent {
  const sealed = row.chain_index !== null;
  return {
    ...toAuditRecord(row),
    seq: integer(row, 'seq'),
    chainIndex: sealed ? integer(row, 'chain_index') : null,
    hash: row.hash === null ? null : text(row, 'hash'),
    keyId: row.key_id === null ? null : text(row, 'key_id'),
  };
}

function seqOf(row: Row): string {
  const seq = row.seq;
  // BIGINT arrives as a string (bigNumberStrings); a number would mean the pool settings changed.
  if (typeof seq === 'string' && /^\d+$/.test(seq)) return seq;
  throw unexpected('seq', 'a BIGINT as a decimal string');
}

function checkLink(hash: unknown, keyId: unknown): void {
  if (typeof hash !== 'string' || hash === '' || hash.length > MAX_HASH_CHARS) {
    throw new TypeError(`an audit chain link's hash must be a non-empty string of at most ${MAX_HASH_CHARS} characters`);
  }
  if (typeof keyId !== 'string' || keyId.length > MAX_KEY_ID_CHARS) {
    throw new TypeError(`an audit chain link's key id must be a string of at most ${MAX_KEY_ID_CHARS} characters`);
  }
}

/** WHERE clause for a list filter; empty strings and absent dates mean "any", as in memory. */
function conditions(filter: AuditFilter): { where: string; params: SqlParam[] } {
  const clauses: string[] = [];
  const params: SqlParam[] = [];
  const exact = (column: string, value: string | undefined) => {
    if (!value) return;
    clauses.push(`${column} = ?`);
    params.push(utf8(value));
  };
  exact('action', filter.action);
  exact('actor_id', filter.actorId);
  exact('resource_id', filter.resourceId);
  if (filter.from) {
    clauses.push('created_at >= ?');
    params.push(filter.from);
  }
  if (filter.to) {
    clauses.push('created_at < ?');
    params.push(filter.to);
  }
  if (filter.beforeSeq !== undefined) {
    if (!Number.isSafeInteger(filter.beforeSeq)) throw new TypeError('audit beforeSeq must be an integer');
    clauses.push('seq < CAST(? AS SIGNED)');
    params.push(filter.beforeSeq);
  }
  return { where: clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

/** A LIMIT/OFFSET value, safe to inline: a non-negative safe integer or an error. */
function count(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`audit ${what} must be a non-negative integer`);
  return value;
}
