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
  /** Unset only in dev mode, where a fresh key is generated. */
  masterKey: Uint8Array | undefined;
  oldMasterKeys: Uint8Array[];
  /** Unset only in dev mode, where a token is generated and printed. */
  rootToken: string | undefined;
  logLevel: string;
  maxValueBytes: number;
  maxRequestBytes: number;
  shutdownGraceMs: number;
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
  const logLevel = read('VAULT_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`VAULT_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const config: Config = {
    host: read('VAULT_HOST') ?? '127.0.0.1',
    grpcPort: integer('VAULT_GRPC_PORT', 50051, 0, 65535),
    httpPort: integer('VAULT_HTTP_PORT', 8080, 0, 65535),
    databaseUrl,
    databasePoolSize: integer('VAULT_DATABASE_POOL_SIZE', 10, 1, 1000),
    masterKey,
    oldMasterKeys,
    rootToken,
    logLevel,
    maxValueBytes: integer('VAULT_MAX_VALUE_BYTES', 64 * 1024, 1, 1024 * 1024),
    maxRequestBytes: integer('VAULT_MAX_REQUEST_BYTES', 256 * 1024, 1024, 16 * 1024 * 1024),
    shutdownGraceMs: integer('VAULT_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
