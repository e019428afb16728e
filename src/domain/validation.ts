import { invalidArgument } from './errors.js';
import { SECRET_STAGES, type JsonObject, type SecretStage } from '../storage/records.js';
import { requireTimestamp } from './timestamp-range.js';

const PATH_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_\-/]*[a-zA-Z0-9]$|^[a-zA-Z0-9]$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MAX_PATH_BYTES = 512;
export const MAX_METADATA_BYTES = 16 * 1024;

export const SECRET_TYPES = [
  'generic',
  'password',
  'api_key',
  'private_key',
  'certificate',
  'ssh_key',
  'file',
  'note',
  'env',
  'env_bundle',
] as const;

/** Shows user input in a message safely: bounded and JSON-quoted (never used for values). */
export function quote(input: string, max = 80): string {
  return JSON.stringify(input.length > max ? `${input.slice(0, max)}…` : input);
}

export function requireUuid(field: string, value: string): string {
  if (!value) throw invalidArgument(`${field} is required`);
  if (!UUID_PATTERN.test(value)) throw invalidArgument(`${field} must be a lowercase UUID, got ${quote(value)}`);
  return value;
}

export function requirePath(path: string): string {
  if (!path) throw invalidArgument('path is required');
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw invalidArgument(`path must be at most ${MAX_PATH_BYTES} bytes`);
  if (!PATH_PATTERN.test(path) || path.includes('//')) {
    throw invalidArgument(
      `path ${quote(path)} is invalid: use letters, digits, '_', '-' and '/', starting and ending with a letter or digit, without '//'`,
    );
  }
  return path;
}

export function requireSecretType(type: string, fallback: string): string {
  if (!type) return fallback;
  if (!(SECRET_TYPES as readonly string[]).includes(type)) {
    throw invalidArgument(`type ${quote(type)} is not one of ${SECRET_TYPES.join(', ')}`);
  }
  return type;
}

export function requireVersion(version: number): number {
  if (!Number.isInteger(version) || version < 1) throw invalidArgument(`version must be a whole number of 1 or more, got ${version}`);
  return version;
}

/** A compare-and-set `if_version`: unset (no check), 0 (no version yet) or a version number. */
export function requireIfVersion(ifVersion: number | undefined): number | undefined {
  if (ifVersion === undefined) return undefined;
  if (!Number.isInteger(ifVersion) || ifVersion < 0) throw invalidArgument(`if_version must be 0 (no version yet) or a version number, got ${ifVersion}`);
  return ifVersion;
}

/**
 * How deeply a request may nest, counted as its JSON form nests (the request object is level 1,
 * so `metadata` may nest 31 levels). The transports enforce it before decoding; storage (MySQL's
 * JSON type allows 100) and every decoder are well inside it.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * A free-form JSON object (a version's metadata, a policy's conditions), kept exactly as sent or
 * refused: numbers must be finite (JSON has no NaN or Infinity, it would come back as null) and no
 * key may be `__proto__` (JavaScript objects would drop it).
 */
export function requireMetadata(metadata: unknown, field = 'metadata'): JsonObject | null {
  if (metadata === undefined || metadata === null) return null;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw invalidArgument(`${field} must be a JSON object`);
  checkJson(field, metadata, 2);
  if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) {
    throw invalidArgument(`${field} must be at most ${MAX_METADATA_BYTES} bytes as JSON`);
  }
  return metadata as JsonObject;
}

function checkJson(field: string, value: unknown, depth: number): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw invalidArgument(`${field} holds ${value}: numbers must be finite (JSON has no NaN or Infinity)`);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (depth > MAX_JSON_DEPTH) throw invalidArgument(`${field} nests deeper than the request limit of ${MAX_JSON_DEPTH} levels`);
  if (Array.isArray(value)) {
    for (const item of value) checkJson(field, item, depth + 1);
    return;
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (Object.hasOwn(value, '__proto__') || (prototype !== Object.prototype && prototype !== null)) {
    throw invalidArgument(`${field} has the key "__proto__", which is not allowed`);
  }
  for (const item of Object.values(value)) checkJson(field, item, depth + 1);
}

export function requireFuture(field: string, at: Date | undefined, now: Date): Date | null {
  const checked = requireTimestamp(field, at);
  if (!checked) return null;
  if (checked.getTime() <= now.getTime()) throw invalidArgument(`${field} must be in the future`);
  return checked;
}

export function requireText(field: string, value: string, { min = 0, max }: { min?: number; max: number }): string {
  const length = [...value].length;
  if (length < min) throw invalidArgument(min === 1 ? `${field} is required` : `${field} must be at least ${min} characters`);
  if (length > max) throw invalidArgument(`${field} must be at most ${max} characters`);
  return value;
}

export function requireIntRange(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${field} must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/** The stage a write asks for: empty (or `current`) makes the version current; `pending` stages it. */
export function requireWriteStage(stage = ''): 'current' | 'pending' {
  if (stage === '' || stage === 'current' || stage === 'pending') return stage === 'pending' ? 'pending' : 'current';
  throw invalidArgument(`stage ${quote(stage)} is not valid for a write: leave it empty (current) or use "pending"`);
}

/** The stage a read asks for; undefined (empty) means the latest readable version. */
export function requireReadStage(stage: string): SecretStage | undefined {
  if (stage === '') return undefined;
  if ((SECRET_STAGES as readonly string[]).includes(stage)) return stage as SecretStage;
  throw invalidArgument(`stage ${quote(stage)} is not one of ${SECRET_STAGES.join(', ')} (or empty for the latest version)`);
}
