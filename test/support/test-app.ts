import { credentials, Metadata, type CallOptions, type Client, type ServiceError } from '@grpc/grpc-js';
import { Writable } from 'node:stream';
import { startApp, type App, type AppOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { AgentServiceClient } from '../../src/gen/vault/v1/agent_service.js';
import { AuditServiceClient } from '../../src/gen/vault/v1/audit_service.js';
import { AuthServiceClient } from '../../src/gen/vault/v1/auth_service.js';
import { PolicyServiceClient } from '../../src/gen/vault/v1/policy_service.js';
import { SecretServiceClient } from '../../src/gen/vault/v1/secret_service.js';
import { SystemServiceClient } from '../../src/gen/vault/v1/system_service.js';
import { VaultServiceClient } from '../../src/gen/vault/v1/vault_service.js';
import { createLogger } from '../../src/logger.js';

export const TEST_ROOT_TOKEN = 'test-root-token-0123456789abcdef';
export const TEST_MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

/** A clock a test moves by hand, so expiry and caching are tested without sleeping. */
export interface TestClock {
  now(): Date;
  advance(ms: number): void;
}

/** Starts at the real time and moves only when told. */
export function createTestClock(start = Date.now()): TestClock {
  let at = start;
  return {
    now: () => new Date(at),
    advance(ms) {
      at += ms;
    },
  };
}

/** A started service on free ports, its captured log lines, and real gRPC clients. */
export interface TestApp {
  app: App;
  /** The service's clock: the real one unless the test passed its own. */
  now(): Date;
  grpcAddress: string;
  logs: string[];
  clients: {
    secrets: SecretServiceClient;
    vaults: VaultServiceClient;
    system: SystemServiceClient;
    agents: AgentServiceClient;
    auth: AuthServiceClient;
    policies: PolicyServiceClient;
    audit: AuditServiceClient;
  };
  /** Metadata carrying a Bearer token (the root token by default). */
  auth(token?: string): Metadata;
  /** The HTTP/JSON gateway, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  httpBaseUrl: string;
  /**
   * One request to the HTTP gateway: `path` is sent as written (raw or percent-encoded), `body`
   * is JSON-encoded unless it is a string, and the root token is sent unless `token` is null.
   */
  http(method: string, path: string, options?: HttpOptions): Promise<HttpResult>;
  close(): Promise<void>;
}

export interface HttpOptions {
  body?: unknown;
  token?: string | null;
  headers?: Record<string, string>;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is empty or not JSON. */
  json: any;
}

/**
 * Starts the whole service as main.ts does (config from an env object, ports 0), on memory
 * storage unless `env.VAULT_DATABASE_URL` is given.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  { clock, rotationTickMs, expiryTickMs }: { clock?: TestClock; rotationTickMs?: AppOptions['rotationTickMs']; expiryTickMs?: AppOptions['expiryTickMs'] } = {},
): Promise<TestApp> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const config = loadConfig({
    VAULT_GRPC_PORT: '0',
    VAULT_HTTP_PORT: '0',
    VAULT_ROOT_TOKEN: TEST_ROOT_TOKEN,
    VAULT_MASTER_KEY: TEST_MASTER_KEY,
    VAULT_SHUTDOWN_GRACE_MS: '2000',
    ...env,
  });
  const now = clock ? () => clock.now() : () => new Date();
  const app = await startApp(config, createLogger('info', sink), {
    now,
    ...(rotationTickMs === undefined ? {} : { rotationTickMs }),
    ...(expiryTickMs === undefined ? {} : { expiryTickMs }),
  });
  const grpcAddress = `127.0.0.1:${app.grpcPort}`;
  const httpBaseUrl = `http://127.0.0.1:${app.httpPort}`;
  const insecure = credentials.createInsecure();
  const clients = {
    secrets: new SecretServiceClient(grpcAddress, insecure),
    vaults: new VaultServiceClient(grpcAddress, insecure),
    system: new SystemServiceClient(grpcAddress, insecure),
    agents: new AgentServiceClient(grpcAddress, insecure),
    auth: new AuthServiceClient(grpcAddress, insecure),
    policies: new PolicyServiceClient(grpcAddress, insecure),
    audit: new AuditServiceClient(grpcAddress, insecure),
  };
  return {
    app,
    now,
    grpcAddress,
    logs,
    clients,
    auth(token = TEST_ROOT_TOKEN) {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      return metadata;
    },
    httpBaseUrl,
    async http(method, path, { body, token = TEST_ROOT_TOKEN, headers = {} } = {}) {
      const response = await fetch(`${httpBaseUrl}${path}`, {
        method,
        headers: {
          ...(token === null ? {} : { authorization: `Bearer ${token}` }),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: response.status, headers: response.headers, text, json };
    },
    async close() {
      for (const client of Object.values(clients) as Client[]) client.close();
      await app.stop();
    },
  };
}

/** The last overload ts-proto generates for a unary client method: (request, metadata, options, callback). */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** Calls a unary method of a generated grpc-js client as a promise. */
export function unary<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, request: Req, metadata: Metadata = new Metadata(), options: CallOptions = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}
