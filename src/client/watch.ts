import { Metadata, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { SecretEvent, WatchSecretsRequest, WatchSecretsResponse } from '../gen/vault/v1/secret_service.js';
import type { TokenSource } from './credentials.js';
import { toClientError, UnauthenticatedError, UnavailableError } from './errors.js';

export interface WatchOptions {
  /** Ends the iteration, without an error, when aborted. */
  signal?: AbortSignal;
}

export interface WatchDeps {
  /** Opens one WatchSecrets stream. */
  open(request: WatchSecretsRequest, metadata: Metadata): ClientReadableStream<WatchSecretsResponse>;
  tokens: TokenSource;
  /** Backoff between reconnects: doubled from `initialBackoffMs` up to `maxBackoffMs`, with full jitter. */
  backoff: { initialBackoffMs: number; maxBackoffMs: number };
}

/**
 * Follows a vault's secret changes as an async iterable of events. After UNAVAILABLE (a server
 * that stops, a lost connection) it reconnects, for as long as it takes, from the last cursor it
 * received (an event's or a heartbeat's), so no event is missed or repeated; save an event's
 * `cursor` and pass it as `after` to resume after a restart of your own. An expired agent token is
 * exchanged again once; any other refusal (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
 * OUT_OF_RANGE, INVALID_ARGUMENT) ends the iteration with that error.
 */
export async function* followChanges(deps: WatchDeps, request: WatchSecretsRequest, { signal }: WatchOptions = {}): AsyncGenerator<SecretEvent, void, undefined> {
  let after = request.after;
  let failures = 0;
  let reauthenticated = false;
  while (!signal?.aborted) {
    const token = await deps.tokens.token();
    const metadata = new Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    const stream = deps.open({ ...request, after }, metadata);
    // The iteration below sees every error too; this only keeps a cancel from being unhandled.
    stream.on('error', () => {});
    const cancel = () => stream.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const response of stream as AsyncIterable<WatchSecretsResponse>) {
        failures = 0;
        reauthenticated = false;
        const message = response.message;
        if (message?.$case === 'heartbeat') after = message.value.cursor;
        else if (message?.$case === 'event') {
          after = message.value.cursor;
          yield message.value;
        }
      }
      // A stream that ends without an error (none does today): reconnect where it stopped.
    } catch (error) {
      if (signal?.aborted) return;
      const failure = typeof (error as ServiceError).code === 'number' ? toClientError(error as ServiceError) : error;
      if (failure instanceof UnauthenticatedError && token && !reauthenticated && deps.tokens.refused(token)) {
        reauthenticated = true;
        continue;
      }
      if (!(failure instanceof UnavailableError)) throw failure;
      const ceiling = Math.min(deps.backoff.maxBackoffMs, deps.backoff.initialBackoffMs * 2 ** failures++);
      await sleep(Math.random() * ceiling, signal);
    } finally {
      signal?.removeEventListener('abort', cancel);
      stream.cancel();
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
