import type { CreatedPosition, KeysetPage } from '../records.js';
import type { SqlParam } from './pool.js';
import { utf8 } from './row-mapping.js';

/**
 * SQL pieces for keyset pages. LIMIT is inlined, not bound (the pool binds numbers as DOUBLE,
 * which MySQL 8 may refuse there), after checking it is a positive safe integer.
 */
export function limitOf(page: KeysetPage<unknown> | undefined): string {
  if (!page) return '';
  if (!Number.isSafeInteger(page.limit) || page.limit < 1) throw new TypeError('a page limit must be a positive integer');
  return `LIMIT ${page.limit}`;
}

/**
 * "After this (created_at, id)" spelled out as an OR rather than a row comparison, which MariaDB
 * does not turn into an index range; with an index on (..., created_at, id) both branches are
 * ranges, so the last page costs what the first does.
 */
export function createdAfter(page: KeysetPage<CreatedPosition> | undefined): { sql: string; params: SqlParam[] } {
  const after = page?.after;
  if (!after) return { sql: '', params: [] };
  return { sql: 'AND (created_at > ? OR (created_at = ? AND id > ?))', params: [after.createdAt, after.createdAt, utf8(after.id)] };
}
