// What the CLI prints: one JSON document with --json, else an aligned table for people.
import type { Writable } from 'node:stream';

export type Row = Record<string, unknown>;

export interface Output {
  /** Prints `document` as JSON with --json, otherwise the rows as a table. */
  result(document: unknown, rows: Row[]): void;
  /** A line for people (suppressed with --json, where stdout holds only the document). */
  note(line: string): void;
  /** Raw text on stdout, as is. */
  raw(text: string): void;
}

export function createOutput(stdout: Writable, stderr: Writable, json: boolean): Output {
  return {
    result(document, rows) {
      stdout.write(json ? `${JSON.stringify(document, null, 2)}\n` : formatTable(rows));
    },
    note(line) {
      (json ? stderr : stdout).write(`${line}\n`);
    },
    raw(text) {
      stdout.write(text);
    },
  };
}

export function formatTable(rows: Row[]): string {
  if (rows.length === 0) return '(none)\n';
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join('  ').trimEnd();
  return `${[line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')}\n`;
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.join(',');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
