import type { CreatedPosition, KeysetPage } from './records.js';

/** Orders strings by their UTF-8 bytes, as the MySQL store's binary path column does. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Orders records by creation time, then id (the order of vaults, agents and policies). */
export function compareCreated(a: CreatedPosition, b: CreatedPosition): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The rows of an ordered list that fall in a keyset page. */
export function pageOf<T, K>(rows: T[], page: KeysetPage<K> | undefined, isAfter: (row: T, key: K) => boolean): T[] {
  if (!page) return rows;
  const from = page.after === undefined ? rows : rows.filter((row) => isAfter(row, page.after as K));
  return from.slice(0, page.limit);
}
