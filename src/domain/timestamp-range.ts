import { invalidArgument } from './errors.js';

/**
 * The one range of timestamps the vault accepts from callers: the range of google.protobuf.Timestamp
 * (RFC 3339 years 0001 to 9999), which is also what MySQL's DATETIME and every JSON encoder can
 * represent. A timestamp outside it would be stored in dev mode and then fail every later read.
 */
export const MIN_TIMESTAMP_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z
const MIN_MS = Number(MIN_TIMESTAMP_SECONDS) * 1000;
const MAX_MS = Number(MAX_TIMESTAMP_SECONDS) * 1000 + 999;

export const TIMESTAMP_RANGE_TEXT = 'from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z';

/** Checks a Timestamp's wire parts (seconds, nanos) before anything converts them to a Date. */
export function requireTimestampParts(field: string, seconds: bigint, nanos: number): void {
  if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
    throw invalidArgument(`${field} must be a timestamp ${TIMESTAMP_RANGE_TEXT}, got ${seconds} seconds`);
  }
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
    throw invalidArgument(`${field} has nanos ${nanos}: nanos must be from 0 to 999999999`);
  }
}

/** Checks a caller's timestamp (undefined passes: the field is unset). */
export function requireTimestamp(field: string, at: Date | undefined): Date | undefined {
  if (at === undefined) return undefined;
  const ms = at.getTime();
  if (Number.isNaN(ms)) throw invalidArgument(`${field} is not a valid timestamp`);
  if (ms < MIN_MS || ms > MAX_MS) throw invalidArgument(`${field} must be a timestamp ${TIMESTAMP_RANGE_TEXT}, got ${at.toISOString()}`);
  return at;
}
