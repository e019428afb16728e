import { isIP } from 'node:net';
import { loadTlsMaterial, TlsFilesError, type TlsFiles, type TlsMaterial } from './tls/server-tls.js';
import { trustedProxyProblem } from './rpc/client-address.js';

/**
 * The only reader of the environment. Every variable is validated at start, and every bad one is
 * reported at once with a message naming it; values of secret variables are never echoed.
 */
export interface Config {
  host: string;
  grpcPort: number;
  httpPort: number;
  /** Unset: dev mode on in-memory storage. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** Calls that may wait for a database connection; more are refused with RESOURCE_EXHAUSTED. */
  databaseQueueLimit: number;
  /** How long a call waits for a database connection before UNAVAILABLE. */
  databaseAcquireTimeoutMs: number;
  /** Unset only in dev mode, where a fresh key is generated. */
  masterKey: Uint8Array | undefined;
  oldMasterKeys: Uint8Array[];
  /** Unset only in dev mode, where a token is generated and printed. */
  rootToken: string | undefined;
  logLevel: string;
  maxValueBytes: number;
  maxRequestBytes: number;
  shutdownGraceMs: number;
  /** Set: both listeners serve TLS with these files (checked at load; `tlsMaterial` is what was read). */
  tls: TlsFiles | undefined;
  tlsMaterial: TlsMaterial | undefined;
  /** `VAULT_TLS_DISABLE=true`: plaintext on a non-loopback address, on purpose (behind a TLS proxy). */
  tlsDisabled: boolean;
  /** Unset: /metrics is served on the HTTP port. */
  metricsPort: number | undefined;
  /** True: /metrics needs no root token. */
  metricsUnauthenticated: boolean;
  /** Shortest rotation_policy interval a PutSecret may set. */
  minRotationIntervalSeconds: number;
  /** How long an idempotency key answers repeats (and is refused for other requests). */
  idempotencyRetentionSeconds: number;
  /** WatchSecrets streams one instance serves at once; more are refused with RESOURCE_EXHAUSTED. */
  maxWatchers: number;
  /** A watch stream quiet this long gets a heartbeat (proxies close idle streams). */
  watchHeartbeatMs: number;
  /** How often an instance looks for versions that expired, to record each once (version_expired). */
  expiryCheckMs: number;
  /** Peers whose X-Forwarded-For names the client (IP addresses or CIDR blocks); empty: none. */
  trustedProxies: string[];
  /** Failed authentications per minute allowed per client address and per agent id. */
  authFailuresPerAddress: number;
  authFailuresPerAgent: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export const MIN_ROOT_TOKEN_LENGTH = 16;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const read = (name: string) => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const integer = (name: string, fallback: number, min: number, max: number) => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return value;
  };
  const key = (name: string, raw: string) => {
    const bytes = Buffer.from(raw, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(raw) || bytes.length !== 32) {
      problems.push(`${name} must be the base64 encoding of exactly 32 random bytes (e.g. \`openssl rand -base64 32\`)`);
      return undefined;
    }
    return new Uint8Array(bytes);
  };

  const databaseUrl = read('VAULT_DATABASE_URL');
  if (databaseUrl !== undefined && !/^mysql:\/\//.test(databaseUrl)) {
    problems.push('VAULT_DATABASE_URL must look like mysql://user[:password]@host[:port]/database');
  }
  const rawMasterKey = read('VAULT_MASTER_KEY');
  const masterKey = rawMasterKey === undefined ? undefined : key('VAULT_MASTER_KEY', rawMasterKey);
  if (databaseUrl !== undefined && rawMasterKey === undefined) {
    problems.push('VAULT_MASTER_KEY is required with VAULT_DATABASE_URL: values are encrypted under it before they reach the database');
  }
  const oldMasterKeys = (read('VAULT_OLD_MASTER_KEYS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .flatMap((raw, i) => key(`VAULT_OLD_MASTER_KEYS (entry ${i + 1})`, raw) ?? []);
  const rootToken = read('VAULT_ROOT_TOKEN');
  if (rootToken !== undefined && rootToken.length < MIN_ROOT_TOKEN_LENGTH) {
    problems.push(`VAULT_ROOT_TOKEN must be at least ${MIN_ROOT_TOKEN_LENGTH} characters`);
  }
  if (databaseUrl !== undefined && rootToken === undefined) {
    problems.push('VAULT_ROOT_TOKEN is required with VAULT_DATABASE_URL (operators authenticate with it)');
  }
  const host = read('VAULT_HOST') ?? '127.0.0.1';
  const { tls, tlsMaterial, tlsDisabled } = tlsSettings(read, host, problems);
  const logLevel = read('VAULT_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`VAULT_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const rawMetricsUnauthenticated = read('VAULT_METRICS_UNAUTHENTICATED') ?? 'false';
  if (rawMetricsUnauthenticated !== 'true' && rawMetricsUnauthenticated !== 'false') {
    problems.push(`VAULT_METRICS_UNAUTHENTICATED must be true or false, got ${JSON.stringify(rawMetricsUnauthenticated)}`);
  }
  const trustedProxies = (read('VAULT_TRUSTED_PROXIES') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const entry of trustedProxies) {
    const problem = trustedProxyProblem(entry);
    if (problem) problems.push(`VAULT_TRUSTED_PROXIES: ${problem}`);
  }

  const config: Config = {
    host,
    grpcPort: integer('VAULT_GRPC_PORT', 50051, 0, 65535),
    httpPort: integer('VAULT_HTTP_PORT', 8080, 0, 65535),
    databaseUrl,
    databasePoolSize: integer('VAULT_DATABASE_POOL_SIZE', 10, 1, 1000),
    databaseQueueLimit: integer('VAULT_DATABASE_QUEUE_LIMIT', 1000, 1, 1_000_000),
    databaseAcquireTimeoutMs: integer('VAULT_DATABASE_ACQUIRE_TIMEOUT_MS', 5000, 1, 600_000),
    masterKey,
    oldMasterKeys,
    rootToken,
    logLevel,
    maxValueBytes: integer('VAULT_MAX_VALUE_BYTES', 64 * 1024, 1, 1024 * 1024),
    maxRequestBytes: integer('VAULT_MAX_REQUEST_BYTES', 256 * 1024, 1024, 16 * 1024 * 1024),
    shutdownGraceMs: integer('VAULT_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    tls,
    tlsMaterial,
    tlsDisabled,
    metricsPort: read('VAULT_METRICS_PORT') === undefined ? undefined : integer('VAULT_METRICS_PORT', 0, 0, 65535),
    metricsUnauthenticated: rawMetricsUnauthenticated === 'true',
    minRotationIntervalSeconds: integer('VAULT_MIN_ROTATION_INTERVAL_SECONDS', 60, 1, 86_400),
    idempotencyRetentionSeconds: integer('VAULT_IDEMPOTENCY_RETENTION_SECONDS', 86_400, 1, 30 * 86_400),
    maxWatchers: integer('VAULT_MAX_WATCHERS', 1000, 0, 1_000_000),
    watchHeartbeatMs: integer('VAULT_WATCH_HEARTBEAT_MS', 15_000, 100, 3_600_000),
    expiryCheckMs: integer('VAULT_EXPIRY_CHECK_MS', 1000, 100, 3_600_000),
    trustedProxies,
    authFailuresPerAddress: integer('VAULT_AUTH_FAILURES_PER_ADDRESS', 100, 1, 1_000_000),
    authFailuresPerAgent: integer('VAULT_AUTH_FAILURES_PER_AGENT', 300, 1, 1_000_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * The TLS variables, and the rule that plaintext stays on loopback: without TLS, secrets and tokens
 * cross the wire readable, so a non-loopback address needs TLS or an explicit VAULT_TLS_DISABLE=true.
 */
function tlsSettings(read: (name: string) => string | undefined, host: string, problems: string[]) {
  const certFile = read('VAULT_TLS_CERT_FILE');
  const keyFile = read('VAULT_TLS_KEY_FILE');
  const clientCaFile = read('VAULT_TLS_CLIENT_CA_FILE');
  const disable = read('VAULT_TLS_DISABLE');
  if (disable !== undefined && disable !== 'true' && disable !== 'false') {
    problems.push(`VAULT_TLS_DISABLE must be true or false, got ${JSON.stringify(disable)}`);
  }
  const tlsDisabled = disable === 'true';
  let tls: TlsFiles | undefined;
  let tlsMaterial: TlsMaterial | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push('VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE go together: set both (PEM files) or neither');
  } else if (certFile !== undefined && keyFile !== undefined) {
    if (tlsDisabled) problems.push('VAULT_TLS_DISABLE=true contradicts VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE: unset one or the other');
    tls = { certFile, keyFile, clientCaFile };
    try {
      tlsMaterial = loadTlsMaterial(tls);
    } catch (error) {
      if (!(error instanceof TlsFilesError)) throw error;
      problems.push(...error.problems);
    }
  }
  if (clientCaFile !== undefined && certFile === undefined) {
    problems.push('VAULT_TLS_CLIENT_CA_FILE needs VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE: client certificates are checked only on TLS');
  }
  if (certFile === undefined && keyFile === undefined && !tlsDisabled && !isLoopback(host)) {
    problems.push(
      `VAULT_HOST=${JSON.stringify(host)} is not a loopback address, and without TLS secrets and tokens would cross the network in plaintext: ` +
        'set VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE, or VAULT_TLS_DISABLE=true if a TLS-terminating proxy is in front',
    );
  }
  return { tls, tlsMaterial, tlsDisabled };
}

/** localhost, 127.0.0.0/8 or ::1 (also IPv4-mapped); names other than localhost are not trusted to be. */
export function isLoopback(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) {
    const lower = bare.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}
