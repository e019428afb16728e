import { describe, expect, it } from 'vitest';
import { currentCallLimits, runWithCallLimits } from '../../src/storage/call-deadline.js';
import { createGroupCommit } from '../../src/storage/group-commit.js';

/** A flush that records each batch and commits only when the test says so. */
function controlledFlush() {
  const batches: string[][] = [];
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const flush = (items: string[]) => {
    batches.push(items);
    return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
  };
  const settled = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { batches, pending, flush, settled };
}

describe('group commit', () => {
  it('flushes a lone submission at once, without waiting for company', async () => {
    const f = controlledFlush();
    const submit = createGroupCommit(f.flush, 100);
    const done = submit(['a']);
    expect(f.batches).toEqual([['a']]);
    f.pending[0]!.resolve();
    await expect(done).resolves.toBeUndefined();
  });

  it('sends everything that arrived during a flush together in the next one, in order', async () => {
    const f = controlledFlush();
    const submit = createGroupCommit(f.flush, 100);
    const first = submit(['a']);
    const later = [submit(['b']), submit(['c', 'd']), submit(['e'])];
    expect(f.batches).toEqual([['a']]);
    f.pending[0]!.resolve();
    await first;
    await f.settled();
    expect(f.batches).toEqual([['a'], ['b', 'c', 'd', 'e']]);
    f.pending[1]!.resolve();
    await Promise.all(later);
  });

  it('answers a submission only once its own batch has committed', async () => {
    const f = controlledFlush();
    const submit = createGroupCommit(f.flush, 100);
    void submit(['a']);
    let answered = false;
    const second = submit(['b']).then(() => (answered = true));
    f.pending[0]!.resolve();
    await f.settled();
    expect(answered).toBe(false);
    f.pending[1]!.resolve();
    await second;
    expect(answered).toBe(true);
  });

  it('fails every submission of a failed batch with its error, and goes on with the next batch', async () => {
    const f = controlledFlush();
    const submit = createGroupCommit(f.flush, 100);
    const first = submit(['a']);
    const failing = [submit(['b']), submit(['c'])];
    f.pending[0]!.resolve();
    await first;
    await f.settled();
    const outage = new Error('database gone');
    f.pending[1]!.reject(outage);
    for (const s of failing) await expect(s).rejects.toBe(outage);
    const next = submit(['d']);
    expect(f.batches).toEqual([['a'], ['b', 'c'], ['d']]);
    f.pending[2]!.resolve();
    await expect(next).resolves.toBeUndefined();
  });

  it('keeps a batch within maxItems without splitting a submission', async () => {
    const f = controlledFlush();
    const submit = createGroupCommit(f.flush, 3);
    const all = [submit(['a']), submit(['b', 'c']), submit(['d', 'e']), submit(['f', 'g', 'h', 'i'])];
    for (let i = 0; i < 4; i++) {
      f.pending[i]!.resolve();
      await f.settled();
    }
    await Promise.all(all);
    expect(f.batches).toEqual([['a'], ['b', 'c'], ['d', 'e'], ['f', 'g', 'h', 'i']]);
  });

  it('runs a batch under none of its callers\' deadlines', async () => {
    let seen: unknown = 'not called';
    const submit = createGroupCommit(async () => {
      seen = currentCallLimits();
    }, 10);
    await runWithCallLimits({ deadline: Date.now() - 1 }, () => submit(['a']));
    expect(seen).toEqual({});
  });
});

describe('group commit with a batch size policy', () => {
  it('takes only as many waiting items as the policy allows, and the rest in the next flush', async () => {
    const f = controlledFlush();
    const powerOfTwo = (n: number) => 2 ** Math.floor(Math.log2(n));
    const submit = createGroupCommit(f.flush, 100, powerOfTwo);
    const all = [submit(['a']), ...['b', 'c', 'd', 'e', 'f', 'g'].map((x) => submit([x]))];
    for (let i = 0; i < 3; i++) {
      f.pending[i]!.resolve();
      await f.settled();
    }
    await Promise.all(all);
    expect(f.batches).toEqual([['a'], ['b', 'c', 'd', 'e'], ['f', 'g']]);
  });
});
