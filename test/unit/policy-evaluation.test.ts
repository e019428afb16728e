import { describe, expect, it } from 'vitest';
import { globMatches, isValidGlob } from '../../src/domain/path-glob.js';
import { isAllowed } from '../../src/domain/policy-evaluation.js';
import type { PolicyRecord } from '../../src/storage/storage.js';

const now = new Date('2026-06-01T00:00:00Z');
const policy = (extra: Partial<PolicyRecord>): PolicyRecord => ({
  id: 'p',
  vaultId: 'v',
  secretPathPattern: '**',
  principalType: 'agent',
  principalId: 'a',
  permissions: ['read'],
  conditions: null,
  expiresAt: null,
  createdBy: 'root',
  createdByType: 'root',
  createdAt: now,
  effect: 'allow',
  priority: 0,
  ...extra,
});

describe('path globs', () => {
  it.each([
    ['**', 'a/b/c', true],
    ['*', 'a', true],
    ['*', 'a/b', false],
    ['api-keys/*', 'api-keys/openai', true],
    ['api-keys/*', 'api-keys/openai/v2', false],
    ['api-keys/**', 'api-keys/openai/v2', true],
    ['api-keys/**', 'api-keys', true],
    ['api-keys/**', 'api-keysx/y', false],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/zz', false],
    ['db-*', 'db-prod', true],
    ['db-*', 'db/prod', false],
    ['exact/path', 'exact/path', true],
    ['exact/path', 'exact/path2', false],
  ])('%s matches %s: %s', (pattern, path, expected) => {
    expect(globMatches(pattern, path)).toBe(expected);
  });

  it('rejects malformed patterns', () => {
    for (const bad of ['', '/a', 'a/', 'a//b', 'a b', 'a.b', 'x'.repeat(513)]) expect(isValidGlob(bad)).toBe(false);
    for (const good of ['**', 'a/*', 'a/**/b', 'db-*']) expect(isValidGlob(good)).toBe(true);
  });
});

describe('policy evaluation', () => {
  it('denies by default', () => {
    expect(isAllowed([], 'read', 'a', now)).toBe(false);
  });

  it('allows only the permissions an action accepts', () => {
    const read = [policy({ permissions: ['read'] })];
    expect(isAllowed(read, 'read', 'a', now)).toBe(true);
    expect(isAllowed(read, 'write', 'a', now)).toBe(false);
    const write = [policy({ permissions: ['write'] })];
    expect(isAllowed(write, 'rotate', 'a', now)).toBe(true);
    expect(isAllowed(write, 'delete', 'a', now)).toBe(true);
    expect(isAllowed(write, 'read', 'a', now)).toBe(false);
    expect(isAllowed([policy({ permissions: ['rotate'] })], 'rotate', 'a', now)).toBe(true);
    expect(isAllowed([policy({ permissions: ['rotate'] })], 'write', 'a', now)).toBe(false);
    expect(isAllowed([policy({ permissions: ['delete'] })], 'delete', 'a', now)).toBe(true);
  });

  it('lets deny win at equal priority and the higher priority win otherwise', () => {
    const allow = policy({ effect: 'allow', priority: 1 });
    const deny = policy({ effect: 'deny', priority: 1, secretPathPattern: 'secret/*' });
    expect(isAllowed([allow, deny], 'read', 'secret/x', now)).toBe(false);
    expect(isAllowed([deny, allow], 'read', 'secret/x', now)).toBe(false);
    expect(isAllowed([allow, deny], 'read', 'public/x', now)).toBe(true);
    expect(isAllowed([{ ...allow, priority: 2 }, deny], 'read', 'secret/x', now)).toBe(true);
    expect(isAllowed([allow, { ...deny, priority: 0 }], 'read', 'secret/x', now)).toBe(true);
  });

  it('ignores expired policies', () => {
    expect(isAllowed([policy({ expiresAt: now })], 'read', 'a', now)).toBe(false);
    expect(isAllowed([policy({ expiresAt: new Date(now.getTime() + 1) })], 'read', 'a', now)).toBe(true);
    expect(isAllowed([policy({}), policy({ effect: 'deny', expiresAt: now })], 'read', 'a', now)).toBe(true);
  });
});
