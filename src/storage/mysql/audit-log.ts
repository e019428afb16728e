import type { AuditRecord } from '../records.js';
import type { Sql } from './pool.js';
import { AUDIT_COLUMNS, auditParams, toAuditRecord } from './row-mapping.js';

/** Keeps one statement well under the server's 65,535 placeholder limit. */
export const AUDIT_ROWS_PER_INSERT = 100;
const ROW_PLACEHOLDERS = `(${AUDIT_COLUMNS.split(',').map(() => '?').join(', ')})`;

/** Writes audit events on the caller's connection, so they commit or roll back with its change. */
export async function insertAuditEvents(sql: Sql, events: readonly AuditRecord[]): Promise<void> {
  for (let start = 0; start < events.length; start += AUDIT_ROWS_PER_INSERT) {
    const batch = events.slice(start, start + AUDIT_ROWS_PER_INSERT);
    await sql.write(
      `INSERT INTO audit_events (${AUDIT_COLUMNS}) VALUES ${batch.map(() => ROW_PLACEHOLDERS).join(', ')}`,
      batch.flatMap(auditParams),
    );
  }
}

/**
 * The rows one group-commit INSERT takes: all that wait up to 32 (the usual batch under load, so
 * it goes in one statement), beyond that a power of two. Each row count is a prepared statement of
 * its own per connection, so this keeps them to 34.
 */
export function auditBatchSize(waiting: number): number {
  return waiting <= EXACT_AUDIT_BATCH ? waiting : largestPowerOfTwoAtMost(waiting);
}
const EXACT_AUDIT_BATCH = 32;

/** 1, 2, 4, ...: statement sizes that keep the number of distinct prepared statements small. */
export function largestPowerOfTwoAtMost(n: number): number {
  let size = 1;
  while (size * 2 <= n) size *= 2;
  return size;
}

/** Every audit event in the order written. For tests and tools; the audit API will add filters. */
export async function listAuditEvents(sql: Sql): Promise<AuditRecord[]> {
  const rows = await sql.select(`SELECT ${AUDIT_COLUMNS} FROM audit_events ORDER BY seq`);
  return rows.map(toAuditRecord);
}
