import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Authenticator } from '../auth/authenticator.js';
import { ANONYMOUS, type CallContext } from '../domain/principal.js';
import type { Logger } from '../logger.js';
import type { ApiMethod } from './api-method.js';
import { RejectedRequest } from './request-guard.js';
import { toRpcError } from './rpc-error.js';

/** What a transport knows about a call before it is handled. */
export interface CallMeta {
  transport: 'grpc' | 'http';
  /** The raw Authorization value, if any. */
  authorization: string | undefined;
  /** A client-supplied request id (x-request-id), if any; one is made up otherwise. */
  requestId: string | undefined;
  peer: string | undefined;
}

/**
 * Runs one call the same way for every transport: authenticate, handle, convert the error once,
 * and log one line (method, code, duration, caller; never payloads or credentials).
 * Throws RpcError on failure.
 */
export type Invoke = (method: ApiMethod, request: unknown, meta: CallMeta) => Promise<{ response: unknown; requestId: string }>;

export function createInvoker({ authenticator, logger }: { authenticator: Authenticator; logger: Logger }): Invoke {
  return async (method, request, meta) => {
    const started = performance.now();
    const requestId = sanitizeRequestId(meta.requestId) ?? randomUUID();
    let context: CallContext = { principal: ANONYMOUS, requestId };
    let code = status.OK;
    try {
      // A request the deserializer refused (rpc/request-guard.ts) fails before authentication.
      if (request instanceof RejectedRequest) throw request.error;
      if (method.requiresAuth) context = { principal: await authenticator.authenticate(meta.authorization, requestId), requestId };
      const response = await method.handle(context, request);
      return { response, requestId };
    } catch (error) {
      const rpcError = toRpcError(error, (unexpected) => logger.error({ err: unexpected, method: method.fullName, requestId }, 'unexpected error'));
      code = rpcError.code;
      throw Object.assign(rpcError, { requestId });
    } finally {
      logger.info(
        {
          method: method.fullName,
          transport: meta.transport,
          code: status[code],
          durationMs: Math.round((performance.now() - started) * 100) / 100,
          caller: context.principal.type === 'anonymous' ? 'anonymous' : `${context.principal.type}:${context.principal.id}`,
          peer: meta.peer,
          requestId,
        },
        'call',
      );
    }
  };
}

/** Accepts a client's request id only if it is short and plain, so it is safe to log and echo. */
export function sanitizeRequestId(id: string | undefined): string | undefined {
  return id && /^[A-Za-z0-9._:-]{1,128}$/.test(id) ? id : undefined;
}
