import { expect } from 'vitest';
import type { ScenarioItem } from './scenario.js';

/**
 * Staged rotation as one table, run over gRPC and HTTP by staged-rotation.test.ts: a pending
 * version is readable by number and by stage but never as latest; promote makes it current and
 * the replaced one previous; promoting previous is the rollback.
 */
export interface StagedState {
  vaultId: string;
}

const SECRETS = 'vault.v1.SecretService';
const PATH = 'db/main/password';
const secret = (s: StagedState) => ({ vault_id: s.vaultId, path: PATH });
const stagesOf = (r: { versions: Array<{ version: number; stage: string }> }) => r.versions.map((v) => [v.version, v.stage]);
const reads = (name: string, request: (s: StagedState) => Record<string, string | number>, version: number, value?: string): ScenarioItem<StagedState> => ({
  name,
  rpc: `${SECRETS}.GetSecret`,
  request: (s) => request(s),
  check: (r) => {
    expect(r.secret.version).toBe(version);
    if (value !== undefined) expect(r.secret.value).toBe(value);
  },
});

export const STAGED_ROTATION: ReadonlyArray<ScenarioItem<StagedState>> = [
  {
    name: 'create a vault',
    rpc: 'vault.v1.VaultService.CreateVault',
    request: () => ({ name: 'staged' }),
    check: (r, s) => {
      s.vaultId = r.vault.id;
    },
  },
  { name: 'a plain PUT is version 1', rpc: `${SECRETS}.PutSecret`, request: (s) => ({ ...secret(s), value: 'pw-one' }), check: (r) => expect(r.secret.version).toBe(1) },
  {
    name: 'a PUT with stage pending is version 2',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s), value: 'pw-two', stage: 'pending', max_access_count: 5 }),
    check: (r) => expect(r.secret.version).toBe(2),
  },
  reads('latest still serves the current version, never the pending one', secret, 1, 'pw-one'),
  reads('stage=pending reads the pending version', (s) => ({ ...secret(s), stage: 'pending' }), 2, 'pw-two'),
  reads('stage=current reads the current version', (s) => ({ ...secret(s), stage: 'current' }), 1, 'pw-one'),
  {
    name: 'the pending version is readable by number too',
    rpc: `${SECRETS}.GetSecretVersion`,
    request: (s) => ({ ...secret(s), version: 2 }),
    check: (r) => expect(r.secret.value).toBe('pw-two'),
  },
  {
    name: 'the version list shows stages and read budgets',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: secret,
    check: (r) => {
      expect(stagesOf(r)).toEqual([[2, 'pending'], [1, 'current']]);
      expect(r.versions[0]).toMatchObject({ max_access_count: 5, access_count: 2, is_disabled: false });
      expect(r.versions[1]).toMatchObject({ max_access_count: 0, access_count: 0 });
    },
  },
  {
    name: 'a rotation with stage pending replaces the pending version',
    rpc: `${SECRETS}.RotateSecret`,
    request: (s) => ({ ...secret(s), stage: 'pending', length: 40 }),
    check: (r) => expect(r.secret.version).toBe(3),
  },
  reads('latest is still version 1 after a pending rotation', secret, 1, 'pw-one'),
  {
    name: 'the older pending version lost its stage',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: secret,
    check: (r) => expect(stagesOf(r)).toEqual([[3, 'pending'], [2, ''], [1, 'current']]),
  },
  {
    name: 'promote the pending version',
    rpc: `${SECRETS}.PromoteSecretVersion`,
    request: (s) => ({ ...secret(s), version: 3 }),
    check: (r) => expect(r.secret).toMatchObject({ path: PATH, version: 3, stage: 'current', is_disabled: false }),
  },
  {
    name: 'latest now serves the promoted version',
    rpc: `${SECRETS}.GetSecret`,
    request: secret,
    check: (r) => {
      expect(r.secret.version).toBe(3);
      expect(r.secret.value).toHaveLength(40);
    },
  },
  reads('the replaced version is previous', (s) => ({ ...secret(s), stage: 'previous' }), 1, 'pw-one'),
  {
    name: 'no version is pending any more',
    rpc: `${SECRETS}.GetSecret`,
    request: (s) => ({ ...secret(s), stage: 'pending' }),
    expect: { code: 'NOT_FOUND' },
  },
  {
    name: 'promoting previous rolls back',
    rpc: `${SECRETS}.PromoteSecretVersion`,
    request: (s) => ({ ...secret(s), version: 1 }),
    check: (r) => expect(r.secret).toMatchObject({ version: 1, stage: 'current' }),
  },
  reads('latest serves the rolled-back value', secret, 1, 'pw-one'),
  {
    name: 'after the rollback the rotated version is previous',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: secret,
    check: (r) => expect(stagesOf(r)).toEqual([[3, 'previous'], [2, ''], [1, 'current']]),
  },
  {
    name: 'promoting the current version again changes nothing',
    rpc: `${SECRETS}.PromoteSecretVersion`,
    request: (s) => ({ ...secret(s), version: 1 }),
    check: (r) => expect(r.secret).toMatchObject({ version: 1, stage: 'current' }),
  },
  {
    name: 'a plain PUT becomes current and makes the old current previous',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s), value: 'pw-four' }),
    check: (r) => expect(r.secret.version).toBe(4),
  },
  {
    name: 'stages after the plain PUT',
    rpc: `${SECRETS}.ListSecretVersions`,
    request: secret,
    check: (r) => expect(stagesOf(r)).toEqual([[4, 'current'], [3, ''], [2, ''], [1, 'previous']]),
  },
  { name: 'disable version 2', rpc: `${SECRETS}.DisableSecretVersion`, request: (s) => ({ ...secret(s), version: 2 }) },
  {
    name: 'a disabled version cannot be promoted',
    rpc: `${SECRETS}.PromoteSecretVersion`,
    request: (s) => ({ ...secret(s), version: 2 }),
    expect: { code: 'FAILED_PRECONDITION', reason: 'SECRET_VERSION_NOT_PROMOTABLE' },
  },
  { name: 'an unknown version cannot be promoted', rpc: `${SECRETS}.PromoteSecretVersion`, request: (s) => ({ ...secret(s), version: 9 }), expect: { code: 'NOT_FOUND' } },
  {
    name: 'an unknown stage on a write is refused',
    rpc: `${SECRETS}.PutSecret`,
    request: (s) => ({ ...secret(s), value: 'x', stage: 'previous' }),
    expect: { code: 'INVALID_ARGUMENT' },
  },
  { name: 'an unknown stage on a read is refused', rpc: `${SECRETS}.GetSecret`, request: (s) => ({ ...secret(s), stage: 'PENDING' }), expect: { code: 'INVALID_ARGUMENT' } },
  {
    name: 'promotions are audited',
    rpc: 'vault.v1.AuditService.ListAuditEvents',
    request: () => ({ action: 'secret.promote' }),
    check: (r) => expect(r.events.map((e: { details: { version: number } }) => e.details.version)).toEqual([1, 3]),
  },
];
