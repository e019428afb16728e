import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from './route-table.js';

/** Why the Idempotency-Key header could not be used; answered 400. */
export class IdempotencyHeaderError extends Error {
  override readonly name = 'IdempotencyHeaderError';
}

/**
 * The `Idempotency-Key` header (IETF draft-ietf-httpapi-idempotency-key-header) fills `request_id`
 * on routes whose request has one; the key's own rules are checked with the call
 * (domain/idempotency.ts). A body or query `request_id` may be sent instead, not a different one.
 */
export function applyIdempotencyKey(route: Route, request: unknown, headers: IncomingHttpHeaders): void {
  const raw = headers['idempotency-key'];
  const header = Array.isArray(raw) ? raw.join(', ') : raw;
  if (header === undefined || !route.descriptor.input.fields.some((f) => f.name === 'request_id')) return;
  const message = request as { requestId?: string };
  if (message.requestId !== undefined && message.requestId !== header) {
    throw new IdempotencyHeaderError('the Idempotency-Key header and request_id differ; send one of them, or the same key in both');
  }
  message.requestId = header;
}
