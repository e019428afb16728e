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
}

type RequestOf<M> = M extends { requestDeserialize: (bytes: Buffer) => infer Req } ? Req : never;
type ResponseOf<M> = M extends { responseSerialize: (value: infer Res) => Buffer } ? Res : never;

/** A handler per method of a ts-proto generated grpc-js service definition. */
export type ServiceHandlers<S extends ServiceDefinition> = {
  [K in keyof S]: (context: CallContext, request: RequestOf<S[K]>) => Promise<ResponseOf<S[K]>>;
};

/** Pairs a generated service definition with its handlers. */
export function defineService<S extends ServiceDefinition>(
  definition: S,
  handlers: ServiceHandlers<S>,
  options: { public?: Array<keyof S> } = {},
): ApiMethod[] {
  return Object.entries(definition).map(([name, method]) => {
    const path = method.path;
    return {
      path,
      fullName: path.slice(1).replace('/', '.'),
      definition: method as MethodDefinition<unknown, unknown>,
      requiresAuth: !(options.public ?? []).includes(name as keyof S),
      handle: handlers[name as keyof S] as ApiMethod['handle'],
    };
  });
}
