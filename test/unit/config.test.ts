import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const KEY = Buffer.alloc(32, 1).toString('base64');

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('configuration', () => {
  it('defaults to dev mode on 127.0.0.1:50051 and :8080', () => {
    expect(loadConfig({})).toMatchObject({
      host: '127.0.0.1',
      grpcPort: 50051,
      httpPort: 8080,
      databaseUrl: undefined,
      masterKey: undefined,
      rootToken: undefined,
      maxValueBytes: 65536,
    });
  });

  it('reads every documented variable', () => {
    const config = loadConfig({
      VAULT_HOST: '0.0.0.0',
      VAULT_GRPC_PORT: '6000',
      VAULT_HTTP_PORT: '6001',
      VAULT_DATABASE_URL: 'mysql://vault:pw@db:3306/vault',
      VAULT_MASTER_KEY: KEY,
      VAULT_OLD_MASTER_KEYS: `${Buffer.alloc(32, 2).toString('base64')}, ${Buffer.alloc(32, 3).toString('base64')}`,
      VAULT_ROOT_TOKEN: 'a-root-token-of-some-length',
    });
    expect(config).toMatchObject({ host: '0.0.0.0', grpcPort: 6000, httpPort: 6001, rootToken: 'a-root-token-of-some-length' });
    expect(Buffer.from(config.masterKey!).equals(Buffer.alloc(32, 1))).toBe(true);
    expect(config.oldMasterKeys).toHaveLength(2);
  });

  it('reports every bad variable at once, by name', () => {
    const problems = problemsOf({ VAULT_GRPC_PORT: 'http', VAULT_HTTP_PORT: '70000', VAULT_MASTER_KEY: 'c2hvcnQ=', VAULT_LOG_LEVEL: 'loud' });
    expect(problems.join('\n')).toMatch(/VAULT_GRPC_PORT/);
    expect(problems.join('\n')).toMatch(/VAULT_HTTP_PORT/);
    expect(problems.join('\n')).toMatch(/VAULT_MASTER_KEY must be the base64 encoding of exactly 32/);
    expect(problems.join('\n')).toMatch(/VAULT_LOG_LEVEL/);
    expect(problems).toHaveLength(4);
  });

  it('requires a master key and a root token on MySQL, and never echoes secrets', () => {
    const problems = problemsOf({ VAULT_DATABASE_URL: 'mysql://u:hunter2@h/db' });
    expect(problems.join('\n')).toMatch(/VAULT_MASTER_KEY is required/);
    expect(problems.join('\n')).toMatch(/VAULT_ROOT_TOKEN is required/);
    const short = problemsOf({ VAULT_ROOT_TOKEN: 'short-secret' });
    expect(short.join('\n')).toMatch(/at least 16/);
    expect([...problems, ...short].join('\n')).not.toMatch(/hunter2|short-secret/);
  });

  it('rejects a database URL of another scheme', () => {
    expect(problemsOf({ VAULT_DATABASE_URL: 'postgres://h/db', VAULT_MASTER_KEY: KEY, VAULT_ROOT_TOKEN: 'x'.repeat(16) })).toEqual([
      'VAULT_DATABASE_URL must look like mysql://user[:password]@host[:port]/database',
    ]);
  });
});
