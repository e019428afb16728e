import { describe, expect, it } from 'vitest';
import { createFailedAuthLimiter, DEFAULT_FAILED_AUTH_LIMITS } from '../../src/auth/failed-auth-limiter.js';
import { VaultError } from '../../src/domain/errors.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';

const WINDOW_MS = DEFAULT_FAILED_AUTH_LIMITS.windowSeconds * 1000;

function setup() {
  const storage = createMemoryStorage();
  let clock = Math.ceil(Date.parse('2026-06-01T00:00:00Z') / WINDOW_MS) * WINDOW_MS;
  const limiter = createFailedAuthLimiter({ appendAudit: storage.appendAudit, now: () => new Date(clock) });
  const refusal = (source: { address?: string; agentId?: string }) =>
    limiter.admit({ address: source.address, agentId: source.agentId }, 'r').then(
      () => undefined,
      (e: unknown) => e as VaultError,
    );
  const failed = () => storage.auditRows.filter((e) => e.action === 'auth.failed');
  return { storage, limiter, refusal, failed, advance: (ms: number) => (clock += ms) };
}

describe('failed authentication limits', () => {
  it('refuses an address after its failures in a window, with Retry-After to the window end, and not another address', async () => {
    const { limiter, refusal, advance } = setup();
    const { perAddress } = DEFAULT_FAILED_AUTH_LIMITS;
    for (let i = 0; i < perAddress; i++) {
      expect(await refusal({ address: '10.0.0.1' })).toBeUndefined();
      await limiter.fail({ address: '10.0.0.1', agentId: undefined }, `r${i}`);
    }
    advance(15_000);
    const refused = await refusal({ address: '10.0.0.1' });
    expect(refused).toMatchObject({ code: 'resource_exhausted', reason: 'TOO_MANY_FAILED_AUTHENTICATIONS', metadata: { retry_after_seconds: '45' } });
    expect(await refusal({ address: '10.0.0.2' })).toBeUndefined();
    advance(45_000);
    expect(await refusal({ address: '10.0.0.1' })).toBeUndefined();
  });

  it('refuses attempts naming an agent after its failures from any address', async () => {
    const { limiter, refusal } = setup();
    for (let i = 0; i < DEFAULT_FAILED_AUTH_LIMITS.perAgent; i++) await limiter.fail({ address: `10.1.${i >> 8}.${i & 255}`, agentId: 'agent-a' }, 'r');
    expect((await refusal({ address: '10.9.9.9', agentId: 'agent-a' }))?.code).toBe('resource_exhausted');
    expect(await refusal({ address: '10.9.9.9', agentId: 'agent-b' })).toBeUndefined();
    expect(await refusal({ address: '10.9.9.9' })).toBeUndefined();
  });

  it('audits a flood as at most two auth.failed events per address and window, whose counts add up', async () => {
    const { limiter, refusal, failed, advance } = setup();
    let attempts = 0;
    for (let window = 0; window < 3; window++) {
      for (let i = 0; i < 1000; i++) {
        attempts++;
        if ((await refusal({ address: '10.0.0.1' })) === undefined) await limiter.fail({ address: '10.0.0.1', agentId: undefined }, `r${attempts}`);
      }
      advance(WINDOW_MS);
    }
    await limiter.flushEnded();
    const rows = failed();
    expect(rows.length).toBeLessThanOrEqual(2 * 3);
    const total = rows.reduce((sum, e) => {
      const details = e.details as { count: number; limited?: number; client_address: string };
      expect(details.client_address).toBe('10.0.0.1');
      return sum + details.count + (details.limited ?? 0);
    }, 0);
    expect(total).toBe(attempts);
  });

  it('records the first failure of a window at once and writes the rest when the window ends or at shutdown', async () => {
    const { limiter, failed, advance } = setup();
    await limiter.fail({ address: '10.0.0.1', agentId: 'agent-a' }, 'first');
    expect(failed()).toHaveLength(1);
    expect(failed()[0]).toMatchObject({ requestId: 'first', resourceId: 'agent-a', details: { count: 1 } });
    for (let i = 0; i < 5; i++) await limiter.fail({ address: '10.0.0.1', agentId: 'agent-a' }, `more${i}`);
    await limiter.flushEnded();
    expect(failed()).toHaveLength(1);
    advance(WINDOW_MS);
    await limiter.flushEnded();
    expect(failed()).toHaveLength(2);
    expect(failed()[1]).toMatchObject({ details: { count: 5 } });
    await limiter.fail({ address: '10.0.0.1', agentId: undefined }, 'next');
    await limiter.fail({ address: '10.0.0.1', agentId: undefined }, 'next2');
    await limiter.flushAll();
    expect(failed().map((e) => (e.details as { count: number }).count)).toEqual([1, 5, 1, 1]);
  });
});
