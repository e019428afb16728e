import type { Idempotency } from '../domain/idempotency.js';
import type { CallContext } from '../domain/principal.js';
import type { ApiMethod } from './api-method.js';

/** Set to `true` on every replayed answer: gRPC trailer, HTTP header (`Idempotent-Replayed`). */
export const IDEMPOTENT_REPLAYED = 'idempotent-replayed';

/** What a handled call answered, and whether that answer is a stored one (Idempotent-Replayed). */
export interface HandledCall {
  response: unknown;
  replayed: boolean;
}

/**
 * The transport side of idempotency keys (domain/idempotency.ts has the rules): a request whose
 * message has `request_id` set is handled through the key, with the request in a canonical
 * encoding and the response stored in its wire encoding, so a replay is byte for byte the first
 * answer. Every other call is handled as it is.
 */
export function createIdempotentCalls(idempotency: Idempotency) {
  return async function handle(method: ApiMethod, context: CallContext, request: unknown): Promise<HandledCall> {
    const key = (request as { requestId?: unknown }).requestId;
    if (typeof key !== 'string') return { response: await method.handle(context, request), replayed: false };
    const { requestSerialize, responseSerialize, responseDeserialize } = method.definition;
    let answered: unknown;
    const outcome = await idempotency.run(
      context,
      { method: method.fullName, key, request: requestSerialize(canonical({ ...(request as object), requestId: undefined })) },
      async () => {
        answered = await method.handle(context, request);
        return responseSerialize(withoutCredentials(answered));
      },
    );
    return outcome.replayed ? { response: responseDeserialize(Buffer.from(outcome.response)), replayed: true } : { response: answered, replayed: false };
  };
}

/**
 * A response as it may be stored: an API key (CreateAgent, RotateAgentKey) is shown once and kept
 * only as a hash, so a replay answers the same agent with `api_key` empty.
 */
function withoutCredentials(response: unknown): unknown {
  if (typeof response !== 'object' || response === null || !('apiKey' in response)) return response;
  return { ...response, apiKey: '' };
}

/**
 * Plain objects with their keys sorted, all the way down: the wire encoding follows field numbers
 * but writes map and Struct entries in insertion order, and `{"a":1,"b":2}` is the same request
 * as `{"b":2,"a":1}`.
 */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((name) => [name, canonical((value as Record<string, unknown>)[name])]),
  );
}
