import { expect } from 'vitest';
import type { ScenarioItem, Step } from './scenario.js';

/**
 * The seed's rotating-secrets walkthrough as one table, run over gRPC and over HTTP (both path
 * encodings) by secret-walkthrough.test.ts. Requests are proto3 JSON; a few use the
 * lowerCamelCase names a REST client may send.
 */
export interface WalkthroughState {
  vaultId: string;
  lastValue: string;
  /** The service's (test) clock. */
  now: () => Date;
}

const SECRETS = 'vault.v1.SecretService';
const VAULTS = 'vault.v1.VaultService';
const OPENAI = 'api-keys/openai';
const DB = 'api-keys/db-password';
const EXPIRING = 'team/prod/db/replica-2/expiring';
const ONE_TIME = 'tmp/one_time-token';
const UNKNOWN_VAULT = '00000000-0000-4000-8000-000000000000';

const secret = (s: WalkthroughState, path: string) => ({ vault_id: s.vaultId, path });
const versionsOf = (response: { versions: Array<{ version: number; is_disabled: boolean }> }) => response.versions.map((v) => [v.version, v.is_disabled]);
const gone = (reason: string) => ({ code: 'FAILED_PRECONDITION' as const, reason });

/** Rotate with a charset and length, then read the value back and check its alphabet. */
function rotation(charset: string, length: number, alphabet: RegExp, version: number): Array<Step<WalkthroughState>> {
  return [
    {
      name: `rotate ${DB} with ${length} ${charset} characters`,
      rpc: `${SECRETS}.RotateSecret`,
      request: (s) => ({ ...secret(s, DB), length, charset }),
      check: (r) => {
        expect(r.secret).toMatchObject({ path: DB, version, type: 'password', metadata: { team: 'db' } });
        expect(r.secret).not.toHaveProperty('value');
      },
    },
    {
      name: `the rotated ${charset} value reads back with ${length} characters of its charset`,
      rpc: `${SECRETS}.GetSecret`,
      request: (s) => secret(s, DB),
      check: (r, s) => {
        expect(r.secret.version).toBe(version);
        expect(r.secret.value).toHaveLength(length);
        expect(r.secret.value).toMatch(alphabet);
        expect(r.secret.value).not.toBe(s.lastValue);
        s.lastValue = r.secret.value;
      },
    },
  ];
}

export const SECRET_WALKTHROUGH: ReadonlyArray<ScenarioItem<WalkthroughState>> = [
  {
    name: 'health answers without credentials',
    rpc: 'vault.v1.SystemService.GetHealth',
    token: null,
    request: () => ({}),
    check: (r) => expect(r).toEqual({ status: 'healthy', version: expect.any(String) }),
  },
  { name: 'a call without credentials is refused', rpc: `${VAULTS}.ListVaults`, token: null, request: () => ({}), expect: { code: 'UNAUTHENTICATED' } },
  { name: 'a wrong token is refused', rpc: `${VAULTS}.ListVaults`, token: 'not-the-root-token', request: () => ({}), expect: { code: 'UNAUTHENTICATED' } },

  // Vault
  {
    name: 'create a vault',
    rpc: `${VAULTS}.CreateVault`,
    request: () => ({ name: 'walkthrough', description: 'the seed, step by step' }),
    check: (r, s) => {
      expect(r.vault).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'walkthrough',
        description: 'the seed, step by step',
        created_by: 'root',
        created_by_type: 'root',
        created_at: expect.any(String),
      });
      s.vaultId = r.vault.id;
    },
  },
  { name: 'get the vault', rpc: `${VAULTS}.GetVault`, request: (s) => ({ vault_id: s.vaultId }), check: (r, s) => expect(r.vault.id).toBe(s.vaultId) },

  // PUT, versions, get by number
  {
    name: 'PUT creates version 1',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, OPENAI), type: 'api_key', value: 'sk-proj-OLD' }),
    check: (r) => {
      expect(r.secret).toEqual({ id: expect.any(String), path: OPENAI, type: 'api_key', version: 1, created_at: expect.any(String) });
    },
  },
  {
    name: 'PUT again creates version 2, in lowerCamelCase, with metadata as any JSON object',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ vaultId: s.vaultId, path: OPENAI, value: 'sk-proj-NEW', type: 'api_key', metadata: { owner: 'ml', rotation: { days: 30 }, tags: ['a', 1, true, null] }, maxAccessCount: 0 }),
    check: (r) => expect(r.secret).toMatchObject({ version: 2, metadata: { owner: 'ml', rotation: { days: 30 }, tags: ['a', 1, true, null] } }),
  },
  {
    name: 'PUT a third time creates version 3',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, OPENAI), value: 'sk-proj-NEWER', type: 'api_key' }),
    check: (r) => expect(r.secret.version).toBe(3),
  },
  {
    name: 'versions are listed newest first, without values',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: (s) => secret(s, OPENAI),
    check: (r) => {
      expect(versionsOf(r)).toEqual([
        [3, false],
        [2, false],
        [1, false],
      ]);
      for (const v of r.versions) expect(v).not.toHaveProperty('value');
    },
  },
  {
    name: 'a version by number has its value and metadata',
    rpc: `${SECRETS}.GetSecretVersion`,
    request: (s) => ({ ...secret(s, OPENAI), version: 2 }),
    check: (r) => expect(r.secret).toMatchObject({ path: OPENAI, version: 2, value: 'sk-proj-NEW', type: 'api_key', created_by: 'root', metadata: { owner: 'ml' } }),
  },
  { name: 'a missing version is not found', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 99 }), expect: { code: 'NOT_FOUND' } },
  { name: 'version 0 is invalid', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 0 }), expect: { code: 'INVALID_ARGUMENT' } },

  // Disable / enable
  { name: 'disable version 3', rpc: `${SECRETS}.DisableSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 3 }), check: (r) => expect(r).toEqual({}) },
  { name: 'disabling it again (newer spelling) is idempotent', rpc: `${SECRETS}.DisableSecretVersion`, binding: 1, request: (s) => ({ ...secret(s, OPENAI), version: 3 }) },
  {
    name: 'the latest read skips the disabled version',
    rpc: `${SECRETS}.GetSecret`,
    request: (s) => secret(s, OPENAI),
    check: (r) => expect(r.secret).toMatchObject({ version: 2, value: 'sk-proj-NEW' }),
  },
  {
    name: 'reading the disabled version is gone',
    rpc: `${SECRETS}.GetSecretVersion`,
    request: (s) => ({ ...secret(s, OPENAI), version: 3 }),
    expect: gone('SECRET_VERSION_DISABLED'),
  },
  {
    name: 'the disabled version is still listed, marked disabled',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: (s) => secret(s, OPENAI),
    check: (r) =>
      expect(versionsOf(r)).toEqual([
        [3, true],
        [2, false],
        [1, false],
      ]),
  },
  { name: 'enable version 3 again', rpc: `${SECRETS}.EnableSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 3 }) },
  { name: 'the latest read is version 3 again', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, OPENAI), check: (r) => expect(r.secret.version).toBe(3) },
  { name: 'disabling a missing version is not found', rpc: `${SECRETS}.DisableSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 42 }), expect: { code: 'NOT_FOUND' } },

  // Rotation
  {
    name: 'put the database password to rotate',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, DB), value: 'initial', type: 'password', metadata: { team: 'db' } }),
    check: (r) => expect(r.secret.version).toBe(1),
  },
  { name: 'length 7 is rejected', rpc: `${SECRETS}.RotateSecret`, request: (s) => ({ ...secret(s, DB), length: 7 }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'length 1025 is rejected', rpc: `${SECRETS}.RotateSecret`, request: (s) => ({ ...secret(s, DB), length: 1025 }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'an unknown charset is rejected', rpc: `${SECRETS}.RotateSecret`, request: (s) => ({ ...secret(s, DB), charset: 'emoji' }), expect: { code: 'INVALID_ARGUMENT' } },
  ...rotation('hex', 8, /^[0-9a-f]+$/, 2),
  ...rotation('base64', 1024, /^[A-Za-z0-9+/]+$/, 3),
  ...rotation('alphanumeric', 32, /^[A-Za-z0-9]+$/, 4),
  ...rotation('ascii', 64, /^[\x21-\x7e]+$/, 5),
  {
    name: 'rotation without options (no body over HTTP) generates 32 hex characters',
    rpc: `${SECRETS}.RotateSecret`,
    request: (s) => secret(s, DB),
    check: (r) => expect(r.secret).toMatchObject({ version: 6, type: 'password' }),
  },
  { name: 'which read back are 32 hex characters', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, DB), check: (r) => expect(r.secret.value).toMatch(/^[0-9a-f]{32}$/) },
  {
    name: 'rotation can override the type',
    rpc: `${SECRETS}.RotateSecret`,
    request: (s) => ({ ...secret(s, DB), type: 'api_key' }),
    check: (r) => expect(r.secret).toMatchObject({ version: 7, type: 'api_key', metadata: { team: 'db' } }),
  },
  { name: 'rotating a path without versions is not found', rpc: `${SECRETS}.RotateSecret`, request: (s) => secret(s, 'nothing/here'), expect: { code: 'NOT_FOUND' } },

  // Expiry
  {
    name: 'an expires_at in the past is rejected',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, EXPIRING), value: 'v', expires_at: new Date(s.now().getTime() - 60_000).toISOString() }),
    expect: { code: 'INVALID_ARGUMENT' },
  },
  {
    name: 'put a version that expires in one second',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, EXPIRING), value: 'short-lived', expiresAt: new Date(s.now().getTime() + 1000).toISOString() }),
    check: (r, s) => expect(Date.parse(r.secret.expires_at)).toBe(s.now().getTime() + 1000),
  },
  { name: 'it is readable before it expires', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, EXPIRING), check: (r) => expect(r.secret.value).toBe('short-lived') },
  { name: 'a millisecond before expires_at (the clock moves; nothing sleeps)', advanceMs: 999 },
  { name: 'it is still readable', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, EXPIRING), check: (r) => expect(r.secret.value).toBe('short-lived') },
  { name: 'at expires_at', advanceMs: 1 },
  { name: 'after expires_at the latest read is gone', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, EXPIRING), expect: gone('SECRET_VERSION_EXPIRED') },
  { name: 'so is the read by number', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, EXPIRING), version: 1 }), expect: gone('SECRET_VERSION_EXPIRED') },

  // Read budget
  {
    name: 'put a version with a budget of 3 reads',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, ONE_TIME), value: 'three-reads', max_access_count: 3 }),
  },
  { name: 'read 1 of 3', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, ONE_TIME), check: (r) => expect(r.secret.value).toBe('three-reads') },
  { name: 'listing versions spends no read', rpc: `${SECRETS}.ListSecretVersions`, request: (s) => secret(s, ONE_TIME) },
  { name: 'read 2 of 3', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, ONE_TIME) },
  { name: 'read 3 of 3, by number', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, ONE_TIME), version: 1 }) },
  { name: 'a fourth read is gone', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, ONE_TIME), expect: gone('SECRET_VERSION_EXHAUSTED') },
  { name: 'by number too', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, ONE_TIME), version: 1 }), expect: gone('SECRET_VERSION_EXHAUSTED') },

  // Delete
  { name: 'delete a secret', rpc: `${SECRETS}.DeleteSecret`, request: (s) => secret(s, OPENAI), check: (r) => expect(r).toEqual({}) },
  { name: 'reading a deleted secret is gone', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, OPENAI), expect: gone('SECRET_DELETED') },
  { name: 'so is reading one of its versions', rpc: `${SECRETS}.GetSecretVersion`, request: (s) => ({ ...secret(s, OPENAI), version: 2 }), expect: gone('SECRET_DELETED') },
  {
    name: 'the listing omits the deleted secret',
    rpc: `${SECRETS}.ListSecrets`,
    request: (s) => ({ vault_id: s.vaultId }),
    check: (r) => {
      expect(r.secrets.map((v: { path: string }) => v.path)).toEqual([DB, EXPIRING, ONE_TIME]);
      expect(r.secrets[0]).toMatchObject({ version: 7, type: 'api_key', is_disabled: false });
      for (const v of r.secrets) expect(v).not.toHaveProperty('value');
    },
  },
  {
    name: 'the listing filters by prefix (a query parameter over HTTP)',
    rpc: `${SECRETS}.ListSecrets`,
    request: (s) => ({ vault_id: s.vaultId, prefix: 'api-keys/' }),
    check: (r) => expect(r.secrets.map((v: { path: string }) => v.path)).toEqual([DB]),
  },
  {
    name: 'a PUT after the delete continues the numbering',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s, OPENAI), value: 'sk-proj-REBORN' }),
    check: (r) => expect(r.secret.version).toBe(4),
  },
  { name: 'and is readable', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, OPENAI), check: (r) => expect(r.secret).toMatchObject({ version: 4, value: 'sk-proj-REBORN' }) },

  // Bad input
  { name: 'a path starting with a dash is invalid', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s, '-bad-'), value: 'v' }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'a path with "//" is invalid', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s, 'a//b'), value: 'v' }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'an empty value is invalid', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s, 'x'), value: '' }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'an unknown type is invalid', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s, 'x'), value: 'v', type: 'banana' }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'a negative read budget is invalid', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s, 'x'), value: 'v', max_access_count: -1 }), expect: { code: 'INVALID_ARGUMENT' } },
  { name: 'a secret of an unknown vault is not found', rpc: `${SECRETS}.GetSecret`, request: () => ({ vault_id: UNKNOWN_VAULT, path: OPENAI }), expect: { code: 'NOT_FOUND' } },
  { name: 'a missing secret is not found', rpc: `${SECRETS}.GetSecret`, request: (s) => secret(s, 'no/such/secret'), expect: { code: 'NOT_FOUND' } },

  // Vault lifecycle
  {
    name: 'the vault is listed',
    rpc: `${VAULTS}.ListVaults`,
    request: () => ({}),
    check: (r, s) => expect(r.vaults.map((v: { id: string }) => v.id)).toContain(s.vaultId),
  },
  { name: 'delete the vault', rpc: `${VAULTS}.DeleteVault`, request: (s) => ({ vault_id: s.vaultId }), check: (r) => expect(r).toEqual({}) },
  { name: 'the deleted vault is not found', rpc: `${VAULTS}.GetVault`, request: (s) => ({ vault_id: s.vaultId }), expect: { code: 'NOT_FOUND' } },
];
