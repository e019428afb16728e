import type { AgentRecord, PolicyRecord } from '../records.js';
import type { Row } from './pool.js';
import { bytesOrNull, date, dateOrNull, flag, integer, json, text, unexpected, utf8 } from './row-mapping.js';

/** Agent and policy rows to records and back; same rules as row-mapping.ts. */

/** SHA-256, the only key hash the `key_hash BINARY(32)` column can hold without padding. */
export const KEY_HASH_BYTES = 32;

/** Refuses a key hash of the wrong length (BINARY would pad a short one). Never shows the bytes. */
export function checkKeyHash(keyHash: Uint8Array): Uint8Array {
  if (!(keyHash instanceof Uint8Array) || keyHash.length !== KEY_HASH_BYTES) {
    throw new TypeError(`an agent key hash must be ${KEY_HASH_BYTES} bytes`);
  }
  return keyHash;
}

export const AGENT_COLUMNS =
  'id, name, description, scopes, is_active, token_ttl_seconds, created_by, created_at, expires_at, last_active_at, key_hash, credential_generation';

export function agentParams(a: AgentRecord) {
  return [
    utf8(a.id),
    a.name,
    a.description,
    JSON.stringify(a.scopes),
    a.isActive,
    a.tokenTtlSeconds,
    a.createdBy,
    a.createdAt,
    a.expiresAt,
    a.lastActiveAt,
    checkKeyHash(a.keyHash),
    a.credentialGeneration,
  ];
}

export function toAgent(row: Row): AgentRecord {
  const keyHash = bytesOrNull(row, 'key_hash');
  if (keyHash === null) throw unexpected('key_hash', 'bytes');
  return {
    id: text(row, 'id'),
    name: text(row, 'name'),
    description: text(row, 'description'),
    scopes: strings(row, 'scopes'),
    isActive: flag(row, 'is_active'),
    tokenTtlSeconds: integer(row, 'token_ttl_seconds'),
    createdBy: text(row, 'created_by'),
    createdAt: date(row, 'created_at'),
    expiresAt: dateOrNull(row, 'expires_at'),
    lastActiveAt: dateOrNull(row, 'last_active_at'),
    // A copy, not the driver's Buffer: the record type is a plain byte array.
    keyHash: Uint8Array.from(keyHash),
    credentialGeneration: integer(row, 'credential_generation'),
  };
}

export const POLICY_COLUMNS =
  'id, vault_id, secret_path_pattern, principal_type, principal_id, permissions, conditions, expires_at, created_by, created_by_type, created_at, effect, priority';

export function policyParams(p: PolicyRecord) {
  return [
    utf8(p.id),
    utf8(p.vaultId),
    utf8(p.secretPathPattern),
    p.principalType,
    utf8(p.principalId),
    JSON.stringify(p.permissions),
    p.conditions === null ? null : JSON.stringify(p.conditions),
    p.expiresAt,
    p.createdBy,
    p.createdByType,
    p.createdAt,
    p.effect,
    p.priority,
  ];
}

export function toPolicy(row: Row): PolicyRecord {
  const effect = text(row, 'effect');
  if (effect !== 'allow' && effect !== 'deny') throw unexpected('effect', '"allow" or "deny"');
  return {
    id: text(row, 'id'),
    vaultId: text(row, 'vault_id'),
    secretPathPattern: text(row, 'secret_path_pattern'),
    principalType: text(row, 'principal_type'),
    principalId: text(row, 'principal_id'),
    permissions: strings(row, 'permissions'),
    conditions: json(row, 'conditions'),
    expiresAt: dateOrNull(row, 'expires_at'),
    createdBy: text(row, 'created_by'),
    createdByType: text(row, 'created_by_type'),
    createdAt: date(row, 'created_at'),
    effect,
    priority: integer(row, 'priority'),
  };
}

/** A JSON array of strings (scopes, permissions). */
function strings(row: Row, column: string): string[] {
  const value: unknown = json(row, column);
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  throw unexpected(column, 'a JSON array of strings');
}
