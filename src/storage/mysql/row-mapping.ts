import { SECRET_STAGES, type AuditRecord, type JsonObject, type SecretStage, type SecretVersionRecord, type VaultRecord } from '../records.js';
import type { Row } from './pool.js';

/**
 * Rows to records and back. Checks each column's JS type instead of casting, so a schema drift
 * fails loudly here rather than as a wrong value far away. Messages name the column, never its value.
 */

/** Strings bound to VARBINARY columns go in as UTF-8 bytes (see migrations.ts for why binary). */
export const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8');

/** JSON objects are stored as text; null stays SQL NULL. */
export const jsonText = (value: JsonObject | null): string | null => (value === null ? null : JSON.stringify(value));

/** What a JSON object looks like after a trip through the database, for records built in memory. */
export const asStored = (value: JsonObject | null): JsonObject | null =>
  value === null ? null : (JSON.parse(JSON.stringify(value)) as JsonObject);

export const VAULT_COLUMNS = 'id, name, description, created_by, created_by_type, created_at';

export function toVault(row: Row): VaultRecord {
  return {
    id: text(row, 'id'),
    name: text(row, 'name'),
    description: text(row, 'description'),
    createdBy: text(row, 'created_by'),
    createdByType: text(row, 'created_by_type'),
    createdAt: date(row, 'created_at'),
  };
}

/**
 * Version columns of `v`, qualified so they can be selected beside a join, and its stage, read
 * from the pointers on its path row `s` (which the query must join).
 */
export const versionColumns = (v: string, s: string) =>
  ['vault_id', 'path', 'version', 'id', 'type', 'metadata', 'ciphertext', 'created_by', 'created_at', 'expires_at',
    'max_access_count', 'access_count', 'disabled', 'deleted']
    .map((column) => `${v}.${column}`)
    .concat(
      `CASE ${v}.version WHEN ${s}.${STAGE_POINTERS.current} THEN 'current' WHEN ${s}.${STAGE_POINTERS.previous} THEN 'previous'` +
        ` WHEN ${s}.${STAGE_POINTERS.pending} THEN 'pending' END AS stage`,
    )
    .join(', ');

/** The path row's column that names each stage's version (null: no version has it). */
export const STAGE_POINTERS: Readonly<Record<SecretStage, string>> = { current: 'current_version', previous: 'previous_version', pending: 'pending_version' };

export function toSecretVersion(row: Row): SecretVersionRecord {
  return {
    id: text(row, 'id'),
    vaultId: text(row, 'vault_id'),
    path: text(row, 'path'),
    version: integer(row, 'version'),
    type: text(row, 'type'),
    metadata: json(row, 'metadata'),
    ciphertext: bytesOrNull(row, 'ciphertext'),
    createdBy: text(row, 'created_by'),
    createdAt: date(row, 'created_at'),
    expiresAt: dateOrNull(row, 'expires_at'),
    maxAccessCount: integer(row, 'max_access_count'),
    accessCount: integer(row, 'access_count'),
    disabled: flag(row, 'disabled'),
    deleted: flag(row, 'deleted'),
    stage: stageOrNull(row, 'stage'),
  };
}

function stageOrNull(row: Row, column: string): SecretStage | null {
  if (row[column] === null) return null;
  const value = text(row, column);
  if ((SECRET_STAGES as readonly string[]).includes(value)) return value as SecretStage;
  throw unexpected(column, 'a secret stage');
}

export const AUDIT_COLUMNS =
  'id, action, actor_type, actor_id, resource_type, resource_id, vault_id, outcome, details, request_id, created_at';

/** Bind values for one audit row, in AUDIT_COLUMNS order. */
export function auditParams(event: AuditRecord) {
  return [
    utf8(event.id),
    utf8(event.action),
    utf8(event.actorType),
    utf8(event.actorId),
    utf8(event.resourceType),
    utf8(event.resourceId),
    utf8(event.vaultId),
    utf8(event.outcome),
    jsonText(event.details),
    utf8(event.requestId),
    event.createdAt,
  ];
}

export function toAuditRecord(row: Row): AuditRecord {
  return {
    id: text(row, 'id'),
    action: text(row, 'action'),
    actorType: text(row, 'actor_type'),
    actorId: text(row, 'actor_id'),
    resourceType: text(row, 'resource_type'),
    resourceId: text(row, 'resource_id'),
    vaultId: text(row, 'vault_id'),
    outcome: text(row, 'outcome'),
    details: json(row, 'details'),
    requestId: text(row, 'request_id'),
    createdAt: date(row, 'created_at'),
  };
}

// Column readers, shared with the other mapping modules.

export function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw unexpected(column, 'text');
}

export function bytesOrNull(row: Row, column: string): Buffer | null {
  const value = row[column];
  if (value === null || Buffer.isBuffer(value)) return value;
  throw unexpected(column, 'bytes or NULL');
}

/** INT arrives as a number; BIGINT as a string (bigNumberStrings). */
export function integer(row: Row, column: string): number {
  const value = row[column];
  const number = typeof value === 'string' ? Number(value) : value;
  if (typeof number === 'number' && Number.isSafeInteger(number)) return number;
  throw unexpected(column, 'an integer');
}

export function flag(row: Row, column: string): boolean {
  return integer(row, column) !== 0;
}

export function date(row: Row, column: string): Date {
  const value = row[column];
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
  throw unexpected(column, 'a DATETIME');
}

export function dateOrNull(row: Row, column: string): Date | null {
  return row[column] === null ? null : date(row, column);
}

export function json(row: Row, column: string): JsonObject | null {
  const value = row[column];
  if (value === null) return null;
  try {
    return JSON.parse(typeof value === 'string' ? value : text(row, column)) as JsonObject;
  } catch {
    throw unexpected(column, 'JSON text');
  }
}

export function unexpected(column: string, wanted: string): Error {
  return new Error(`database column ${column} does not hold ${wanted}; is the schema newer than this build?`);
}
