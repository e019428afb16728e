import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createChangeFeed, type Subscription } from '../../src/domain/change-feed.js';
import { createMemoryAuditStore } from '../../src/storage/memory/memory-audit-store.js';
import type { AuditStore } from '../../src/storage/storage.js';

/**
 * The change feed on the real in-memory audit store, with timers under the test's control: a
 * store that can be made to fail stands in for a database outage.
 */
describe('change feed', () => {
  let audit: ReturnType<typeof createMemoryAuditStore>;
  let failing: boolean;
  let reads: number;
  let store: Pick<AuditStore, 'readChain' | 'head'>;

  beforeEach(() => {
    vi.useFakeTimers();
    audit = createMemoryAuditStore();
    failing = false;
    reads = 0;
    store = {
      head: () => audit.store.head(),
      readChain: async (after, limit) => {
        reads++;
        if (failing) throw new Error('connection refused');
        return audit.store.readChain(after, limit);
      },
    };
  });
  afterEach(() => vi.useRealTimers());

  /** Writes and seals `n` events, as a change and the sealer would. */
  async function commit(n: number): Promise<void> {
    const at = new Date();
    audit.record(
      Array.from({ length: n }, () => ({
        id: randomUUID(), action: 'secret.write', actorType: 'root', actorId: 'root', resourceType: 'secret', resourceId: 'p', vaultId: 'v', outcome: 'success', details: { version: 1 }, requestId: 'r', createdAt: at,
      })),
    );
    await audit.store.seal(() => ({ hash: 'h', keyId: 'k' }), n);
  }

  /** Collects what a subscription yields until it has `count` events (timers advanced as needed). */
  async function drain(subscription: Subscription, count: number): Promise<number[]> {
    const seen: number[] = [];
    for (let rounds = 0; seen.length < count; rounds++) {
      if (rounds > 1000) throw new Error(`only ${seen.length} of ${count} events arrived`);
      const pending = subscription.next(1000);
      await vi.advanceTimersByTimeAsync(300);
      const { events } = await pending;
      seen.push(...events.map((e) => e.chainIndex!));
    }
    return seen;
  }
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  it('loses nothing across a database outage: the tailer resumes from where it was', async () => {
    const feed = createChangeFeed({ audit: store, onError: () => {} });
    const subscription = feed.subscribe(0, 0);
    await commit(3);
    expect(await drain(subscription, 3)).toEqual([1, 2, 3]);
    failing = true;
    await commit(4);
    await vi.advanceTimersByTimeAsync(2000);
    const readsWhileDown = reads;
    failing = false;
    expect(readsWhileDown).toBeGreaterThan(1);
    expect(await drain(subscription, 4)).toEqual([4, 5, 6, 7]);
    feed.close();
  });

  it('reads the chain once per tick for all its watchers, and not at all without any', async () => {
    const feed = createChangeFeed({ audit: store, pollMs: 250, onError: () => {} });
    const watchers = Array.from({ length: 50 }, () => feed.subscribe(0, 0));
    const before = reads;
    await commit(1);
    const pending = Promise.all(watchers.map((w) => w.next(5000).then((r) => r.events.map((e) => e.chainIndex))));
    await vi.advanceTimersByTimeAsync(300);
    const results = await pending;
    expect(results).toEqual(watchers.map(() => [1]));
    expect(reads - before).toBeLessThanOrEqual(5);

    for (const w of watchers) w.close();
    await vi.advanceTimersByTimeAsync(300);
    const idle = reads;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(reads).toBe(idle);
    feed.close();
  });

  it('lets a watcher that starts far behind page through the chain, then follow the live feed', async () => {
    const feed = createChangeFeed({ audit: store, onError: () => {} });
    await commit(1200);
    const live = feed.subscribe(1200, 1200);
    const behind = feed.subscribe(0, 1200);
    await commit(2);
    expect(await drain(behind, 1202)).toEqual(range(1, 1202));
    expect(await drain(live, 2)).toEqual([1201, 1202]);
    await commit(1);
    expect(await drain(behind, 1)).toEqual([1203]);
    feed.close();
  });

  it('lets a watcher that stops reading fall back to the chain, then hands it everything in order', async () => {
    const feed = createChangeFeed({ audit: store, onError: () => {} });
    const slow = feed.subscribe(0, 0);
    const keen = feed.subscribe(0, 0);
    // More than a subscription may hold unread, in several ticks, while `slow` does not ask.
    const seen: number[] = [];
    for (let i = 0; i < 14; i++) {
      await commit(500);
      const pending = keen.next(1000);
      await vi.advanceTimersByTimeAsync(300);
      seen.push(...(await pending).events.map((e) => e.chainIndex!));
    }
    seen.push(...(await drain(keen, 7000 - seen.length)));
    expect(seen).toEqual(range(1, 7000));
    expect(await drain(slow, 7000)).toEqual(range(1, 7000));
    feed.close();
  });

  it('refuses subscribers past its maximum, and ends every subscription on close', async () => {
    const feed = createChangeFeed({ audit: store, maxSubscribers: 2, onError: () => {} });
    const first = feed.subscribe(0, 0);
    const second = feed.subscribe(0, 0);
    expect(() => feed.subscribe(0, 0)).toThrow(/maximum of 2/);
    second.close();
    feed.subscribe(0, 0).close();
    const waiting = first.next(60_000);
    feed.close();
    expect(await waiting).toEqual({ events: [], closed: true });
  });
});
