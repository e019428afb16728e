import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { invalidArgument } from './errors.js';
import type { CreatedPosition } from '../storage/storage.js';
import type { CallContext } from './principal.js';

/**
 * AIP-158 pages: `page_size` (0 = the default, more than the maximum is clamped), an opaque
 * `page_token` naming where the next page starts, and `next_page_token` empty on the last page.
 * Pages are keyset pages ("after this key"), never OFFSET, so a page costs the same at the end of
 * a list as at the start and concurrent writes neither repeat nor skip what existed before.
 */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** What a list call asks for. */
export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** A list's position as a JSON value: a path, a version number, `[createdAt, id]`, an audit seq. */
export type PageKey = string | number | [string, string];

/**
 * Issues and checks page tokens. A token is `payload.mac`: the key as base64url JSON and an
 * HMAC-SHA256 over the list's name, its parameters, the caller and the payload, so a token edited,
 * made up, or replayed against another list, other filters or by another caller is refused.
 */
export interface PageTokens {
  issue(scope: PageScope, key: PageKey): string;
  /** The key in a token, or undefined for an empty token; INVALID_ARGUMENT for a bad one. */
  open(scope: PageScope, token: string): PageKey | undefined;
}

/** What a token is bound to. */
export interface PageScope {
  list: string;
  context: CallContext;
  /** The list's own parameters (vault, prefix, filters), which must not change between pages. */
  params: ReadonlyArray<string | number | undefined>;
}

const MAC_BYTES = 16;
const MAX_TOKEN_CHARS = 2048;

/** `key` is a sub-key of the master key, so every instance accepts every instance's tokens. */
export function createPageTokens(key: Uint8Array = randomBytes(32)): PageTokens {
  const mac = (scope: PageScope, payload: string) =>
    createHmac('sha256', key)
      .update(JSON.stringify([scope.list, `${scope.context.principal.type}:${scope.context.principal.id}`, scope.params.map((p) => p ?? null), payload]))
      .digest()
      .subarray(0, MAC_BYTES);
  const refuse = () => invalidArgument('page_token is not valid for this list: pass the next_page_token of the previous page unchanged, with the same filters');

  return {
    issue(scope, position) {
      const payload = Buffer.from(JSON.stringify(position)).toString('base64url');
      return `${payload}.${mac(scope, payload).toString('base64url')}`;
    },
    open(scope, token) {
      if (token === '') return undefined;
      if (token.length > MAX_TOKEN_CHARS) throw refuse();
      const [payload, given, ...rest] = token.split('.');
      if (payload === undefined || given === undefined || rest.length > 0) throw refuse();
      const expected = mac(scope, payload);
      const actual = Buffer.from(given, 'base64url');
      if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) throw refuse();
      try {
        const position = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown;
        if (typeof position === 'string' || (typeof position === 'number' && Number.isSafeInteger(position))) return position;
        if (Array.isArray(position) && position.length === 2 && position.every((p) => typeof p === 'string')) return position as [string, string];
      } catch {
        // Falls through: only this server's own tokens get here, so this is not expected.
      }
      throw refuse();
    },
  };
}

/** `page_size` as AIP-158 reads it: 0 is the default, above the maximum is clamped, negative is an error. */
export function requirePageSize(pageSize: number): number {
  if (!Number.isInteger(pageSize) || pageSize < 0) throw invalidArgument(`page_size must be 0 (the default, ${DEFAULT_PAGE_SIZE}) or more, got ${pageSize}`);
  return pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(pageSize, MAX_PAGE_SIZE);
}

/** Rows scanned for one filtered page at most, as a multiple of the page size. */
const MAX_SCAN_FACTOR = 10;

/**
 * Collects one page from a keyset source, keeping only the rows `keep` accepts (e.g. the paths an
 * agent may read). It fetches `size + 1` rows at a time after the last key seen until the page is
 * full and one more kept row shows there is more, or the source ends. A sparse filter is bounded:
 * after scanning `MAX_SCAN_FACTOR * size` rows it returns a short page whose next key is the last
 * row *scanned*, so the next page continues exactly there and nothing is skipped or repeated.
 */
export async function collectPage<T, K>({
  size,
  start,
  fetch,
  keyOf,
  keep = () => true,
}: {
  size: number;
  start: K | undefined;
  fetch: (after: K | undefined, limit: number) => Promise<T[]>;
  keyOf: (row: T) => K;
  keep?: (row: T) => boolean;
}): Promise<{ items: T[]; next: K | undefined }> {
  const items: T[] = [];
  let after = start;
  let scanned = 0;
  for (;;) {
    const batch = await fetch(after, size + 1);
    for (const row of batch) {
      if (keep(row)) {
        if (items.length === size) return { items, next: keyOf(items[items.length - 1]!) };
        items.push(row);
      }
      after = keyOf(row);
      scanned += 1;
    }
    if (batch.length < size + 1) return { items, next: undefined };
    if (scanned >= MAX_SCAN_FACTOR * size) return { items, next: after };
  }
}

/** Runs one list call end to end: size, token, collect, next token. */
export async function listPage<T, K extends PageKey>(
  tokens: PageTokens,
  scope: PageScope,
  request: PageRequest,
  source: {
    fetch: (after: K | undefined, limit: number) => Promise<T[]>;
    keyOf: (row: T) => K;
    keep?: (row: T) => boolean;
    /** Checks a token's key has this list's shape (it always does unless the MAC key leaked). */
    isKey: (key: PageKey) => key is K;
  },
): Promise<Page<T>> {
  const size = requirePageSize(request.pageSize);
  const opened = tokens.open(scope, request.pageToken);
  if (opened !== undefined && !source.isKey(opened)) throw invalidArgument('page_token is not valid for this list');
  const { items, next } = await collectPage({ size, start: opened as K | undefined, fetch: source.fetch, keyOf: source.keyOf, keep: source.keep });
  return { items, nextPageToken: next === undefined ? '' : tokens.issue(scope, next) };
}

export const isString = (key: PageKey): key is string => typeof key === 'string';
export const isNumber = (key: PageKey): key is number => typeof key === 'number';
export const isCreatedKey = (key: PageKey): key is [string, string] => Array.isArray(key);

export const createdKey = (r: CreatedPosition): [string, string] => [r.createdAt.toISOString(), r.id];
export const createdPosition = (key: [string, string] | undefined): CreatedPosition | undefined =>
  key && { createdAt: new Date(key[0]), id: key[1] };
