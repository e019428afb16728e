import type { Sql } from './pool.js';

/**
 * Questions a migration asks of the current database (information_schema of DATABASE()) to tell
 * whether its change is already there: an earlier start may have applied the DDL (which commits
 * on its own) and stopped before recording it.
 */
export interface SchemaProbe {
  hasTable(table: string): Promise<boolean>;
  /**
   * True when the table has every column, false when it has none of them; a mix is a half-applied
   * change that no rerun can finish safely, so it throws an error saying what is there.
   */
  hasColumns(table: string, columns: readonly string[]): Promise<boolean>;
  hasIndex(table: string, index: string): Promise<boolean>;
  /** True when the SELECT returns at least one row. */
  hasRow(select: string): Promise<boolean>;
}

export function createSchemaProbe(sql: Sql): SchemaProbe {
  return {
    async hasTable(table) {
      const rows = await sql.select('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table]);
      return rows.length > 0;
    },
    async hasColumns(table, columns) {
      const rows = await sql.select('SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table]);
      const present = new Set(rows.map((row) => String(row.name)));
      const found = columns.filter((c) => present.has(c));
      if (found.length === columns.length) return true;
      if (found.length === 0) return false;
      const missing = columns.filter((c) => !present.has(c));
      throw new Error(`table ${table} has column(s) ${found.join(', ')} but not ${missing.join(', ')}: changed by hand or by another build; fix it by hand, then start again`);
    },
    async hasIndex(table, index) {
      const rows = await sql.select(
        'SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ? LIMIT 1',
        [table, index],
      );
      return rows.length > 0;
    },
    async hasRow(select) {
      return (await sql.select(select)).length > 0;
    },
  };
}
