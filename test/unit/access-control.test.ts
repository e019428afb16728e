import { describe, expect, it } from 'vitest';
import { createPolicyAccessControl, POLICY_CACHE_MS } from '../../src/domain/access-control.js';
import type { CallContext } from '../../src/domain/principal.js';
import type { PolicyRecord } from '../../src/storage/storage.js';

const VAULT = 'vault-1';
const policy = (pattern: string, effect: 'allow' | 'deny' = 'allow'): PolicyRecord => ({
  id: `p-${pattern}-${effect}`,
  vaultId: VAULT,
  secretPathPattern: pattern,
  principalType: 'agent',
  principalId: 'agent-1',
  permissions: ['read'],
  conditions: null,
  expiresAt: null,
  createdBy: 'root',
  createdByType: 'root',
  createdAt: new Date(0),
  effect,
  priority: 0,
});

/** Access control over a policy table the test edits, counting the reads it makes of it. */
function setUp() {
  let clock = 1_000_000;
  const table: PolicyRecord[] = [policy('app/*')];
  const reads: string[] = [];
  let failNext = false;
  const access = createPolicyAccessControl({
    policies: {
      listFor: async (vaultId, principalId) => {
        reads.push(`${vaultId}/${principalId}`);
        if (failNext) {
          failNext = false;
          throw new Error('database gone');
        }
        return table.filter((p) => p.vaultId === vaultId && p.principalId === principalId);
      },
    },
    appendAudit: async () => undefined,
    now: () => new Date(clock),
  });
  return {
    access,
    table,
    reads,
    advance: (ms: number) => (clock += ms),
    failOnce: () => (failNext = true),
  };
}

const agent = (generation: number): CallContext => ({ principal: { type: 'agent', id: 'agent-1', generation }, requestId: 'r' });

describe('policy access control', () => {
  it("reads an agent's policies in a vault once, not once per call", async () => {
    const t = setUp();
    for (let i = 0; i < 20; i++) expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    await Promise.all(Array.from({ length: 10 }, () => t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')));
    expect(t.reads).toEqual([`${VAULT}/agent-1`]);
  });

  it('reads them again after POLICY_CACHE_MS, so a change made elsewhere applies within it', async () => {
    const t = setUp();
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    t.table.push(policy('app/db', 'deny'));
    t.advance(POLICY_CACHE_MS - 1);
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    t.advance(1);
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(false);
  });

  it('reads afresh at once for a new credential generation (every policy change bumps it)', async () => {
    const t = setUp();
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    t.table.splice(0);
    expect(await t.access.mayAccess(agent(2), VAULT, 'read', 'app/db')).toBe(false);
  });

  it('forgets everything when told (this instance changed a policy)', async () => {
    const t = setUp();
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    t.table.splice(0);
    t.access.forgetPolicies();
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(false);
  });

  it('does not remember a failed read', async () => {
    const t = setUp();
    t.failOnce();
    await expect(t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).rejects.toThrow('database gone');
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    expect(t.reads).toHaveLength(2);
  });

  it('still judges a policy’s expiry at each call', async () => {
    const t = setUp();
    t.table[0] = { ...policy('app/*'), expiresAt: new Date(1_000_000 + 500) };
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(true);
    t.advance(500);
    expect(await t.access.mayAccess(agent(1), VAULT, 'read', 'app/db')).toBe(false);
    expect(t.reads).toHaveLength(1);
  });
});
