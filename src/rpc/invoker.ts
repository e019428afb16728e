import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { authFailureReason, type AuthFailureReason, type Authenticator } from '../auth/authenticator.js';
import { TOO_MANY_FAILED_AUTHENTICATIONS } from '../auth/failed-auth-limiter.js';
import { VaultError } from '../domain/errors.js';
import { ANONYMOUS, type CallContext } from '../domain/principal.js';
import type { Logger } from '../logger.js';
import type { ApiMethod } from './api-method.js';
import type { HandledCall } from './idempotent-calls.js';
import { RejectedRequest } from './request-guard.js';
import type { ClientAddressResolver } from './client-address.js';
import { toRpcError } from './rpc-error.js';
import { requireCallAlive, runWithCallLimits, type CallLimits } from '../storage/call-deadline.js';

/** What a transport knows about a call before it is handled. */
export interface CallMeta {
  transport: 'grpc' | 'http';
  /** The raw Authorization value, if any. */
  authorization: string | undefined;
  /** A client-supplied request id (x-request-id), if any; one is made up otherwise. */
  requestId: string | undefined;
  peer: string | undefined;
  /** The TCP peer's IP address. */
  peerAddress: string | undefined;
  /** The X-Forwarded-For value, honoured only when the peer is a trusted proxy. */
  forwardedFor: string | undefined;
  /** The client's deadline and cancellation, honoured down to the database (storage/call-deadline.ts). */
  limits?: CallLimits;
}

/**
 * Runs one call the same way for every transport: authenticate, handle, convert the error once,
 * and log one line (method, code, duration, caller; never payloads or credentials).
 * Throws RpcError on failure. A server-streaming method (`method.stream`) writes its responses
 * to `write` and resolves with no response when its stream ends.
 */
export type Invoke = (method: ApiMethod, request: unknown, meta: CallMeta, stream?: StreamSink) => Promise<InvokeResult>;

/** Where a transport takes a server-streaming call's responses. */
export interface StreamSink {
  /** Resolves when the transport can take the next response (see ResponseStream.write). */
  write(response: unknown): Promise<void>;
  /** Aborted when the client cancels or disconnects, so the stream stops at once. */
  signal: AbortSignal;
}

export interface InvokeResult {
  response: unknown;
  requestId: string;
  /** The stored answer of an earlier call with the same idempotency key (rpc/idempotent-calls.ts). */
  replayed: boolean;
}

/** Handles an authenticated call; by default the method's own handler, as it is. */
export type HandleCall = (method: ApiMethod, context: CallContext, request: unknown) => Promise<HandledCall>;

const handleDirectly: HandleCall = async (method, context, request) => ({ response: await method.handle(context, request), replayed: false });

/** Told about every finished call (metrics); must not throw. */
export interface CallObserver {
  /** `code` is the gRPC code's name, e.g. `OK`, `NOT_FOUND`. */
  call(fullName: string, transport: CallMeta['transport'], code: string, seconds: number): void;
  authFailed(reason: AuthFailureReason | 'rate_limited'): void;
}

export function createInvoker({
  authenticator,
  logger,
  observer,
  clientAddress = (peerAddress) => peerAddress,
  handle = handleDirectly,
}: {
  authenticator: Authenticator;
  logger: Logger;
  observer?: CallObserver;
  clientAddress?: ClientAddressResolver;
  /** Idempotency keys go through here (rpc/idempotent-calls.ts). */
  handle?: HandleCall;
}): Invoke {
  // The call line holds only the fields below, none of which can carry a secret, so it skips the
  // redaction pass (half the cost of a line) that guards the free-form logs.
  const callLog = logger.child({}, { redact: [] });
  return (method, request, meta, stream) => runWithCallLimits(meta.limits ?? {}, () => invokeOne(method, request, meta, stream));

  async function invokeOne(method: ApiMethod, request: unknown, meta: CallMeta, stream?: StreamSink): Promise<InvokeResult> {
    const started = performance.now();
    const requestId = sanitizeRequestId(meta.requestId) ?? randomUUID();
    const address = clientAddress(meta.peerAddress, meta.forwardedFor);
    let context: CallContext = { principal: ANONYMOUS, requestId, clientAddress: address };
    let code = status.OK;
    try {
      // A request the deserializer refused (rpc/request-guard.ts) fails before authentication.
      if (request instanceof RejectedRequest) throw request.error;
      // Whatever the storage: a call that arrives past its deadline is not worked on at all.
      requireCallAlive();
      if (method.requiresAuth) {
        try {
          context = { principal: await authenticator.authenticate(meta.authorization, requestId, address), requestId, clientAddress: address };
        } catch (error) {
          if (observer && error instanceof VaultError) {
            if (error.code === 'unauthenticated') observer.authFailed(authFailureReason(meta.authorization));
            // Refused with 429 before the credential was checked: counted apart, not as another failure.
            else if (error.reason === TOO_MANY_FAILED_AUTHENTICATIONS) observer.authFailed('rate_limited');
          }
          throw error;
        }
      }
      if (method.stream) {
        if (!stream) throw new Error(`${method.fullName} is server-streaming but the transport gave it nowhere to write`);
        const principal = context.principal;
        await method.stream(context, request, {
          write: stream.write,
          signal: stream.signal,
          // The same check as at the start; a stream of a public method has nothing to re-check.
          reauthenticate: async () =>
            method.requiresAuth ? { principal: await authenticator.authenticate(meta.authorization, requestId, address), requestId, clientAddress: address } : { principal, requestId, clientAddress: address },
        });
        return { response: undefined, requestId, replayed: false };
      }
      const { response, replayed } = await handle(method, context, request);
      return { response, requestId, replayed };
    } catch (error) {
      const rpcError = toRpcError(error, (unexpected) => logger.error({ err: unexpected, method: method.fullName, requestId }, 'unexpected error'));
      code = rpcError.code;
      throw Object.assign(rpcError, { requestId });
    } finally {
      const seconds = (performance.now() - started) / 1000;
      observer?.call(method.fullName, meta.transport, status[code], seconds);
      callLog.info(
        {
          method: method.fullName,
          transport: meta.transport,
          code: status[code],
          durationMs: Math.round(seconds * 100_000) / 100,
          caller: context.principal.type === 'anonymous' ? 'anonymous' : `${context.principal.type}:${context.principal.id}`,
          peer: meta.peer,
          ...(address !== meta.peerAddress ? { clientAddress: address } : {}),
          requestId,
        },
        'call',
      );
    }
  }
}

/** Accepts a client's request id only if it is short and plain, so it is safe to log and echo. */
export function sanitizeRequestId(id: string | undefined): string | undefined {
  return id && /^[A-Za-z0-9._:-]{1,128}$/.test(id) ? id : undefined;
}
