import type { IncomingHttpHeaders } from 'node:http';
import type { JsonValue } from '@bufbuild/protobuf';
import type { Route } from './route-table.js';

/**
 * HTTP's conditional requests (RFC 9110 §13) mapped onto compare-and-set: a response that is one
 * secret version carries `ETag: "N"` (its version number), and a write whose request has
 * `if_version` accepts `If-Match: "N"` for `if_version: N` and `If-None-Match: *` for
 * `if_version: 0` ("only if the path has no version yet"). A miss is 412, as for a failed If-Match.
 * An agent or policy carries `ETag: "<etag>"` (its `etag` field), and a change of one whose request
 * has `etag` accepts `If-Match: "<etag>"` for it (a miss is 412, reason ETAG_MISMATCH).
 */

/** Why the precondition headers could not be used; answered 400. */
export class PreconditionHeaderError extends Error {
  override readonly name = 'PreconditionHeaderError';
}

const IF_VERSION = 'if_version';
const ETAG = 'etag';

/** The `if_version` the headers ask for on this route, or undefined when they ask for none. */
export function ifVersionFromHeaders(route: Route, headers: IncomingHttpHeaders): number | undefined {
  if (!route.descriptor.input.fields.some((f) => f.name === IF_VERSION)) return undefined;
  const ifMatch = headers['if-match']?.trim();
  const ifNoneMatch = headers['if-none-match']?.trim();
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw new PreconditionHeaderError('send either If-Match or If-None-Match, not both');
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*' || route.httpMethod !== 'PUT') throw new PreconditionHeaderError('If-None-Match is supported only as "If-None-Match: *" on a PUT (create only if the path has no version)');
    return 0;
  }
  if (ifMatch === undefined) return undefined;
  const tag = /^"(0|[1-9]\d{0,9})"$/.exec(ifMatch);
  if (!tag || Number(tag[1]) > 2_147_483_647) {
    throw new PreconditionHeaderError('If-Match must be one ETag as this API sends it, e.g. If-Match: "3" (the newest version number you saw)');
  }
  return Number(tag[1]);
}

/** Sets `ifVersion` on a decoded request; refuses a header that contradicts the body or query. */
export function applyIfVersion(request: unknown, ifVersion: number | undefined): void {
  if (ifVersion === undefined) return;
  const message = request as { ifVersion?: number };
  if (message.ifVersion !== undefined && message.ifVersion !== ifVersion) {
    throw new PreconditionHeaderError(`the precondition header asks for version ${ifVersion} but if_version is ${message.ifVersion}`);
  }
  message.ifVersion = ifVersion;
}

/**
 * The `etag` that If-Match asks for on this route (an agent's or policy's change), without its
 * quotes; undefined when the route takes no etag or the request sends no If-Match.
 */
export function etagFromHeaders(route: Route, headers: IncomingHttpHeaders): string | undefined {
  if (!route.descriptor.input.fields.some((f) => f.name === ETAG)) return undefined;
  if (headers['if-none-match'] !== undefined) throw new PreconditionHeaderError('If-None-Match is not supported here; send If-Match with the etag you saw');
  const ifMatch = headers['if-match']?.trim();
  if (ifMatch === undefined) return undefined;
  const tag = /^"([^"]*)"$/.exec(ifMatch);
  if (!tag) throw new PreconditionHeaderError('If-Match must be one strong ETag as this API sends it, in double quotes, e.g. If-Match: "<etag>"');
  return tag[1];
}

/** Sets `etag` on a decoded request; refuses a header that contradicts the body or query. */
export function applyEtag(request: unknown, etag: string | undefined): void {
  if (etag === undefined) return;
  const message = request as { etag?: string };
  if (message.etag !== undefined && unquoted(message.etag) !== etag) {
    throw new PreconditionHeaderError('the If-Match header and the etag field name different etags; send one, or the same in both');
  }
  message.etag = etag;
}

/**
 * The ETag header of a response body: `"N"` for one secret version (it has a path and a version
 * number), `"<etag>"` for one agent or policy (it has an etag).
 */
export function etagOf(body: JsonValue | undefined): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const { version, path, etag } = body as { version?: unknown; path?: unknown; etag?: unknown };
  if (typeof version === 'number' && typeof path === 'string') return `"${version}"`;
  return typeof etag === 'string' && etag !== '' ? `"${etag}"` : undefined;
}

const unquoted = (tag: string) => (tag.length > 1 && tag.startsWith('"') && tag.endsWith('"') ? tag.slice(1, -1) : tag);
