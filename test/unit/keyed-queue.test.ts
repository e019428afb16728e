import { describe, expect, it } from 'vitest';
import { createKeyedQueue } from '../../src/storage/keyed-queue.js';

/** A promise and the functions that settle it, so a test decides when work finishes. */
function gate<T = void>() {
  let open!: (value: T) => void;
  let fail!: (error: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { promise, open, fail };
}

describe('keyed queue', () => {
  it('runs work of one key one at a time, in arrival order, and work of other keys alongside', async () => {
    const queue = createKeyedQueue();
    const events: string[] = [];
    const first = gate();
    const a1 = queue.run('a', async () => {
      events.push('a1 start');
      await first.promise;
      events.push('a1 end');
    });
    const a2 = queue.run('a', async () => void events.push('a2 start'));
    const b1 = queue.run('b', async () => void events.push('b1 start'));
    await b1;
    expect(events).toEqual(['a1 start', 'b1 start']);
    first.open();
    await Promise.all([a1, a2]);
    expect(events).toEqual(['a1 start', 'b1 start', 'a1 end', 'a2 start']);
  });

  it('passes each result and failure to its own caller, and a failure does not stop the queue', async () => {
    const queue = createKeyedQueue();
    const failing = queue.run('k', async () => {
      throw new Error('boom');
    });
    const next = queue.run('k', async () => 42);
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe(42);
  });

  it('forgets a key once its work has settled', async () => {
    const queue = createKeyedQueue();
    const held = gate();
    const running = queue.run('k', () => held.promise);
    expect(queue.size()).toBe(1);
    held.open();
    await running;
    await Promise.resolve();
    await Promise.resolve();
    expect(queue.size()).toBe(0);
  });
});
