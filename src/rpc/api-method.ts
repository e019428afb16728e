import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { CallContext } from '../domain/principal.js';

/** One RPC as both transports serve it: its gRPC definition and its transport-neutral handler. */
export interface ApiMethod {
  /** gRPC path, e.g. `/vault.v1.SecretService/PutSecret`. */
  readonly path: string;
  /** Fully-qualified proto name, e.g. `vault.v1.SecretService.PutSecret`. */
  readonly fullName: string;
  readonly definition: MethodDefinition<unknown, unknown>;
  /** False for the few methods that take no credentials (health, token exchange). */
  readonly requiresAuth: boolean;
  handle(context: CallContext, request: unknown): Promise<unknown>;
  /**
   * Set for a server-streaming RPC (and then `handle` is not used): writes responses to `stream`
   * until it resolves (the stream ends OK) or rejects (it ends with that error).
   */
  readonly stream?: (context: CallContext, request: unknown, stream: ResponseStream) => Promise<void>;
}

/** The open response stream of a server-streaming call, as the invoker hands it to a handler. */
export interface ResponseStream<Res = unknown> {
  /**
   * Resolves once the transport can take another response: at once while the client keeps up,
   * when its buffer has drained otherwise, so a client that reads slowly holds back its stream
   * instead of filling the server's memory.
   */
  write(response: Res): Promise<void>;
  /** Aborted when the client cancels or disconnects. */
  readonly signal: AbortSignal;
  /** Authenticates the call's credential again (revocation while the stream is open). */
  reauthenticate(): Promise<CallContext>;
}

type RequestOf<M> = M extends { requestDeserialize: (bytes: Buffer) => infer Req } ? Req : never;
type ResponseOf<M> = M extends { responseSerialize: (value: infer Res) => Buffer } ? Res : never;

/** A handler per method of a ts-proto generated grpc-js service definition. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  [K in keyof S]: S[K] extends { responseStream: true }
    ? (context: CallContext, request: RequestOf<S[K]>, stream: ResponseStream<ResponseOf<S[K]>>) => Promise<void>
    : (context: CallContext, request: RequestOf<S[K]>) => Promise<ResponseOf<S[K]>>;
};

/** Pairs a generated service definition with its handlers. */
export function defineService<S extends ServiceDefinition>(
  definition: S,
  handlers: ServiceHandlers<S>,
  options: { public?: Array<keyof S> } = {},
): ApiMethod[] {
  return Object.entries(definition).map(([name, method]) => {
    const path = method.path;
    const handler = handlers[name as keyof S];
    const common = {
      path,
      fullName: path.slice(1).replace('/', '.'),
      definition: method as MethodDefinition<unknown, unknown>,
      requiresAuth: !(options.public ?? []).includes(name as keyof S),
    };
    if (!method.responseStream) return { ...common, handle: handler as ApiMethod['handle'] };
    return {
      ...common,
      handle: () => Promise.reject(new Error(`${common.fullName} is server-streaming: call its stream handler`)),
      stream: handler as NonNullable<ApiMethod['stream']>,
    };
  });
}
