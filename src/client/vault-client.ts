// The typed TypeScript SDK over gRPC. Every RPC of every vault service is a method returning a
// promise (`client.secrets.getSecret({ vaultId, path })`), derived from the generated service
// definitions so none can be missing; on top: credentials, deadlines, retries and typed errors.
import {
  Client,
  credentials as grpcCredentials,
  Metadata,
  status as grpcStatus,
  type ChannelCredentials,
  type ClientOptions,
  type ServiceError,
} from '@grpc/grpc-js';
import { createTokenSource, type Credentials, type TokenSource } from './credentials.js';
import { WatchSecretsRequest, type SecretEvent, type WatchSecretsResponse } from '../gen/vault/v1/secret_service.js';
import { followChanges, type WatchOptions } from './watch.js';
import { toClientError, UnauthenticatedError, UnavailableError, type VaultClientError } from './errors.js';
import {
  isReadOnly,
  requestCodec,
  SERVICES,
  type MethodDefinition,
  type PartialRequest,
  type ServiceName,
} from './services.js';

export interface TlsOptions {
  /** PEM of the CA that signed the server's certificate; the system's roots when omitted. */
  ca?: string | Buffer;
  /** PEM client certificate and key, for servers that require mTLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface RetryOptions {
  /** Attempts in all, the first included. Default 4. */
  maxAttempts?: number;
  /** First backoff; doubled each attempt, with full jitter. Default 50 ms. */
  initialBackoffMs?: number;
  /** Largest backoff. Default 2,000 ms. */
  maxBackoffMs?: number;
}

export interface VaultClientOptions {
  /** The gRPC address, `host:port`, e.g. `127.0.0.1:50051`. */
  address: string;
  /** How to authenticate; unauthenticated calls (health, token exchange) need none. */
  credentials?: Credentials;
  /** TLS to the server; plaintext when omitted. */
  tls?: TlsOptions;
  /** Deadline of each call, retries included, unless the call sets its own. Default 10,000 ms. */
  deadlineMs?: number;
  retry?: RetryOptions;
  /** Extra grpc-js channel options. */
  channelOptions?: Partial<ClientOptions>;
  /** The clock (ms since the epoch) deciding when a token is renewed; injected by tests. */
  now?: () => number;
}

export interface CallOptions {
  /** This call's deadline in ms from now, retries included. */
  deadlineMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

type UnaryMethod<M> = M extends MethodDefinition<infer Req, infer Res>
  ? (request?: PartialRequest<Req>, options?: CallOptions) => Promise<Res>
  : never;

type ServiceClient<D> = { [K in keyof D as D[K] extends { responseStream: false } ? K : never]: UnaryMethod<D[K]> };

/** The vault's API: one property per service, one method per unary RPC. */
export type VaultClient = {
  [S in ServiceName]: ServiceClient<(typeof SERVICES)[S]['definition']>;
} & {
  /**
   * Follows changes to a vault's secrets (WatchSecrets) as an async iterable of events, resuming
   * by cursor after reconnects so none is missed or repeated (see watch.ts). `break` or `signal`
   * ends it.
   */
  watch(request: PartialRequest<WatchSecretsRequest> & { vaultId: string }, options?: WatchOptions): AsyncIterable<SecretEvent>;
  /** Closes the channel; calls after this fail. */
  close(): void;
};

const DEFAULT_DEADLINE_MS = 10_000;

export function createVaultClient(options: VaultClientOptions): VaultClient {
  const channel = new Client(options.address, channelCredentials(options.tls), options.channelOptions);
  const retry = { maxAttempts: 4, initialBackoffMs: 50, maxBackoffMs: 2_000, ...options.retry };
  const now = options.now ?? Date.now;

  const unary = <Res>(definition: MethodDefinition<unknown, Res>, request: unknown, metadata: Metadata, deadline: number, signal?: AbortSignal) =>
    new Promise<Res>((resolve, reject) => {
      const call = channel.makeUnaryRequest(
        definition.path,
        (value: unknown) => definition.requestSerialize(value),
        (bytes: Buffer) => definition.responseDeserialize(bytes),
        request,
        metadata,
        { deadline },
        (error: ServiceError | null, response?: Res) => (error ? reject(toClientError(error)) : resolve(response as Res)),
      );
      signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });

  const exchange = async (apiKey: string, agentId: string) => {
    const response = await unary(SERVICES.auth.definition.createAgentToken, { apiKey, agentId }, new Metadata(), Date.now() + (options.deadlineMs ?? DEFAULT_DEADLINE_MS));
    return { accessToken: response.accessToken, expiresIn: response.expiresIn };
  };
  const tokens: TokenSource = createTokenSource(options.credentials, exchange, now);

  const invoke = async (service: ServiceName, key: string, definition: MethodDefinition<unknown, unknown>, partial: unknown, callOptions: CallOptions = {}) => {
    const request = requestCodec(service, key).fromPartial(partial ?? {});
    const deadline = Date.now() + (callOptions.deadlineMs ?? options.deadlineMs ?? DEFAULT_DEADLINE_MS);
    // Writes are retried only when they carry an idempotency key, so a retry cannot apply twice.
    const retryable = isReadOnly(definition.path) || hasIdempotencyKey(request);
    let reauthenticated = false;
    for (let attempt = 1; ; attempt++) {
      const token = await tokens.token();
      const metadata = new Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      try {
        return await unary(definition, request, metadata, deadline, callOptions.signal);
      } catch (error) {
        const failure = error as VaultClientError;
        // An expired or revoked token: exchange the key again, once.
        if (failure instanceof UnauthenticatedError && token && !reauthenticated && tokens.refused(token)) {
          reauthenticated = true;
          attempt--;
          continue;
        }
        if (!(failure instanceof UnavailableError) || !retryable || attempt >= retry.maxAttempts) throw failure;
        const backoff = Math.random() * Math.min(retry.maxBackoffMs, retry.initialBackoffMs * 2 ** (attempt - 1));
        if (Date.now() + backoff >= deadline || callOptions.signal?.aborted) throw failure;
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  };

  const watchDefinition = SERVICES.secrets.definition.watchSecrets;
  const client: Record<string, unknown> = {
    close: () => channel.close(),
    watch: (request: PartialRequest<WatchSecretsRequest>, watchOptions?: WatchOptions) =>
      followChanges(
        {
          // No deadline: the stream is meant to stay open.
          open: (message, metadata) =>
            channel.makeServerStreamRequest<WatchSecretsRequest, WatchSecretsResponse>(watchDefinition.path, watchDefinition.requestSerialize, watchDefinition.responseDeserialize, message, metadata, {}),
          tokens,
          backoff: retry,
        },
        WatchSecretsRequest.fromPartial(request),
        watchOptions,
      ),
  };
  for (const service of Object.keys(SERVICES) as ServiceName[]) {
    const methods: Record<string, unknown> = {};
    for (const [key, definition] of Object.entries(SERVICES[service].definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
      if (definition.requestStream || definition.responseStream) continue;
      methods[key] = (request: unknown, callOptions?: CallOptions) => invoke(service, key, definition, request, callOptions);
    }
    client[service] = methods;
  }
  return client as VaultClient;
}

function channelCredentials(tls: TlsOptions | undefined): ChannelCredentials {
  if (!tls) return grpcCredentials.createInsecure();
  const pem = (value: string | Buffer | undefined) => (value === undefined ? null : Buffer.from(value));
  return grpcCredentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

function hasIdempotencyKey(request: unknown): boolean {
  const key = (request as { requestId?: unknown }).requestId;
  return typeof key === 'string' && key !== '';
}

export { grpcStatus as StatusCode };
