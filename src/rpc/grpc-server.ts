import { experimental, Metadata, Server, ServerCredentials, status, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { Any } from '../gen/google/protobuf/any.js';
import { ErrorInfo } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';
import type { ApiMethod } from './api-method.js';
import { fileDescriptorProtos } from './descriptors.js';
import type { ServerTls } from '../tls/server-tls.js';
import { peerIp } from './client-address.js';
import { IDEMPOTENT_REPLAYED } from './idempotent-calls.js';
import type { CallMeta, Invoke } from './invoker.js';
import { RpcError } from './rpc-error.js';
import type { CallLimits } from '../storage/call-deadline.js';

export interface GrpcServer {
  readonly server: Server;
  readonly health: HealthImplementation;
  /** Binds and starts; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting calls and waits for in-flight ones (forcing after `graceMs`). */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * A grpc-js server exposing every ApiMethod through the shared invoker, plus grpc.health.v1 and
 * server reflection (v1 and v1alpha) built from the real descriptors.
 */
export function createGrpcServer({
  methods,
  invoke,
  descriptorSet,
  tls,
}: {
  methods: ApiMethod[];
  invoke: Invoke;
  descriptorSet: Uint8Array;
  /** Set: serve TLS (mTLS when it has a client CA), following its reloads; unset: plaintext. */
  tls?: ServerTls | undefined;
}): GrpcServer {
  const server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });

  const services = groupByService(methods);
  for (const [service, serviceMethods] of services) {
    const definition: Record<string, ApiMethod['definition']> = {};
    const implementation: UntypedServiceImplementation = {};
    for (const method of serviceMethods) {
      const name = method.path.slice(service.length + 2);
      definition[name] = method.definition;
      implementation[name] = method.stream
        ? (call: StreamingCall) => {
            // Streams only: a watcher must stop at once when its client goes, not at its next write.
            const gone = new AbortController();
            call.on('cancelled', () => gone.abort());
            const write = (response: unknown) => (call.write(response) ? Promise.resolve() : drained(call));
            invoke(method, call.request, callMeta(call), { write, signal: gone.signal }).then(
              ({ requestId }) => call.end(trailerOf(requestId)),
              // grpc-js's way to end a server stream with a status: the stream's 'error' event.
              (error: RpcError & { requestId?: string }) => call.emit('error', toServiceError(error)),
            );
          }
        : (call: UnaryCall, callback: (error: Partial<ServiceError> | null, value?: unknown, trailer?: Metadata) => void) => {
            invoke(method, call.request, callMeta(call)).then(
              ({ response, requestId, replayed }) => {
                const trailer = trailerOf(requestId);
                if (replayed) trailer.set(IDEMPOTENT_REPLAYED, 'true');
                callback(null, response, trailer);
              },
              (error: RpcError & { requestId?: string }) => callback(toServiceError(error)),
            );
          };
    }
    server.addService(definition, implementation);
  }

  const health = new HealthImplementation({ '': 'SERVING' });
  health.addToServer(server);
  // @grpc/reflection indexes the files of a proto-loader package definition; handing it the
  // exact buf-built files (instead of proto-loader's re-synthesised ones) keeps their imports, so
  // clients can describe and call methods, not just list them. Only served services are listed.
  const served = [...services.keys(), 'grpc.health.v1.Health'];
  const reflection = new ReflectionService({ vault: { fileDescriptorProtos: fileDescriptorProtos(descriptorSet) } } as never, {
    services: served,
  });
  reflection.addToServer(server);

  return {
    server,
    health,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const credentials = tls ? reloadableCredentials(tls) : ServerCredentials.createInsecure();
        server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials, (error, bound) =>
          error ? reject(error) : resolve(bound),
        );
      });
    },
    shutdown(graceMs) {
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

/**
 * Server credentials that follow the TLS material's reloads. grpc-js's certificate-provider
 * credentials call `setSecureContext` on the listening HTTP/2 server for each update, which
 * affects new connections only, so open ones are not dropped. One provider serves both the
 * identity and (for mTLS) the CA, so the argument order of the factory does not matter.
 */
function reloadableCredentials(tls: ServerTls): ServerCredentials {
  const identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  const caListeners = new Set<experimental.CaCertificateUpdateListener>();
  const identity = () => ({ certificate: tls.current().cert, privateKey: tls.current().key });
  const ca = () => {
    const clientCa = tls.current().clientCa;
    return clientCa ? { caCertificate: clientCa } : null;
  };
  tls.onChange(() => {
    for (const listener of caListeners) listener(ca());
    for (const listener of identityListeners) listener(identity());
  });
  const provider: experimental.CertificateProvider = {
    // Like grpc-js's own file watcher: the current value goes to a new listener on the next tick.
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      process.nextTick(() => listener(identity()));
    },
    removeIdentityCertificateListener: (listener) => identityListeners.delete(listener),
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      process.nextTick(() => listener(ca()));
    },
    removeCaCertificateListener: (listener) => caListeners.delete(listener),
  };
  return experimental.createCertificateProviderServerCredentials(provider, tls.requireClientCertificate ? provider : null, tls.requireClientCertificate);
}

function groupByService(methods: ApiMethod[]): Map<string, ApiMethod[]> {
  const groups = new Map<string, ApiMethod[]>();
  for (const method of methods) {
    const service = method.fullName.slice(0, method.fullName.lastIndexOf('.'));
    groups.set(service, [...(groups.get(service) ?? []), method]);
  }
  return groups;
}

/** An RpcError as a grpc-js error, with google.rpc.Status details in grpc-status-details-bin. */
function toServiceError(error: RpcError & { requestId?: string }): Partial<ServiceError> {
  const metadata = new Metadata();
  if (error.requestId) metadata.set('x-request-id', error.requestId);
  const retryAfter = error.errorInfo?.metadata.retry_after_seconds;
  if (retryAfter) metadata.set('retry-after', retryAfter);
  if (error.errorInfo) {
    const details = Status.encode({
      code: error.code,
      message: error.message,
      details: [
        Any.fromPartial({
          typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo',
          value: Buffer.from(ErrorInfo.encode(ErrorInfo.fromPartial(error.errorInfo)).finish()),
        }),
      ],
    }).finish();
    metadata.set('grpc-status-details-bin', Buffer.from(details));
  }
  return { code: error.code ?? status.INTERNAL, details: error.message, metadata };
}

interface UnaryCall {
  request: unknown;
  metadata: Metadata;
  getPeer(): string;
  getDeadline(): Date | number;
  /** grpc-js sets it when the client cancels or the stream closes. */
  readonly cancelled: boolean;
}

/** What the invoker needs to know about a gRPC call. */
function callMeta(call: UnaryCall): CallMeta {
  const first = (key: string) => {
    const value = call.metadata.get(key)[0];
    return typeof value === 'string' ? value : undefined;
  };
  return {
    transport: 'grpc',
    authorization: first('authorization'),
    requestId: first('x-request-id'),
    peer: call.getPeer(),
    peerAddress: peerIp(call.getPeer()),
    forwardedFor: first('x-forwarded-for'),
    limits: callLimits(call),
  };
}

function trailerOf(requestId: string): Metadata {
  const trailer = new Metadata();
  trailer.set('x-request-id', requestId);
  return trailer;
}

interface StreamingCall extends UnaryCall {
  write(message: unknown): boolean;
  end(trailer: Metadata): void;
  emit(event: 'error', error: Partial<ServiceError>): boolean;
  on(event: 'cancelled', listener: () => void): unknown;
  once(event: StreamEnd, listener: () => void): unknown;
  off(event: StreamEnd, listener: () => void): unknown;
}

/** Events after which a server stream's buffer drains, or never will. */
type StreamEnd = 'drain' | 'close' | 'cancelled';
const STREAM_ENDS: readonly StreamEnd[] = ['drain', 'close', 'cancelled'];

/** Resolves when the stream's buffer has drained, or the call is over (nothing more will drain). */
function drained(call: StreamingCall): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      for (const event of STREAM_ENDS) call.off(event, done);
      resolve();
    };
    for (const event of STREAM_ENDS) call.once(event, done);
  });
}

/** The client's deadline (grpc-timeout) and its cancellation, for storage to honour. */
function callLimits(call: UnaryCall): CallLimits {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return { cancelled: () => call.cancelled, ...(Number.isFinite(ms) ? { deadline: ms } : {}) };
}
