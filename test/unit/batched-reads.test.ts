import { describe, expect, it } from 'vitest';
import { createBatchedReads } from '../../src/storage/batched-reads.js';
import { currentCallLimits, runWithCallLimits } from '../../src/storage/call-deadline.js';

/** A batch runner that records each batch and answers only when the test says so. */
function controlledRun() {
  const batches: string[][] = [];
  const pending: { answer: (results: Array<string | Error>) => void; fail: (e: Error) => void; items: readonly string[] }[] = [];
  const run = (items: readonly string[]) => {
    batches.push([...items]);
    return new Promise<Array<string | Error>>((answer, fail) => pending.push({ answer, fail, items }));
  };
  const settled = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  const echo = (i: number) => pending[i]!.answer(pending[i]!.items.map((item) => item.toUpperCase()));
  return { batches, pending, run, settled, echo };
}

describe('batched reads', () => {
  it('sends a lone read at once, without waiting for company', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 1 });
    const a = read('a');
    expect(r.batches).toEqual([['a']]);
    r.echo(0);
    await expect(a).resolves.toBe('A');
  });

  it('sends the reads that arrived while every batch was busy together, each getting its own result', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 1 });
    const first = read('a');
    const later = ['b', 'c', 'd'].map(read);
    expect(r.batches).toEqual([['a']]);
    r.echo(0);
    await first;
    await r.settled();
    expect(r.batches).toEqual([['a'], ['b', 'c', 'd']]);
    r.echo(1);
    await expect(Promise.all(later)).resolves.toEqual(['B', 'C', 'D']);
  });

  it('runs up to inFlight batches at once, and no more', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 2 });
    const reads = ['a', 'b', 'c', 'd'].map(read);
    expect(r.batches).toEqual([['a'], ['b']]);
    r.echo(1);
    await r.settled();
    expect(r.batches).toEqual([['a'], ['b'], ['c', 'd']]);
    r.echo(0);
    r.echo(2);
    await expect(Promise.all(reads)).resolves.toEqual(['A', 'B', 'C', 'D']);
  });

  it('takes at most maxItems reads into one batch', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 2, inFlight: 1 });
    const reads = ['a', 'b', 'c', 'd', 'e'].map(read);
    r.echo(0);
    await r.settled();
    r.echo(1);
    await r.settled();
    r.echo(2);
    await expect(Promise.all(reads)).resolves.toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(r.batches).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
  });

  it('fails only the read whose result is an error', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 1 });
    void read('a');
    const b = read('b');
    const c = read('c');
    r.echo(0);
    await r.settled();
    r.pending[1]!.answer([new Error('b is gone'), 'C']);
    await expect(b).rejects.toThrow('b is gone');
    await expect(c).resolves.toBe('C');
  });

  it('fails every read of a failed batch with its error, and goes on with the next batch', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 1 });
    const a = read('a');
    const b = read('b');
    r.pending[0]!.fail(new Error('connection lost'));
    await expect(a).rejects.toThrow('connection lost');
    await r.settled();
    r.echo(1);
    await expect(b).resolves.toBe('B');
  });

  it('refuses a batch answer of the wrong length rather than pairing results with the wrong reads', async () => {
    const r = controlledRun();
    const read = createBatchedReads(r.run, { maxItems: 16, inFlight: 1 });
    const a = read('a');
    r.pending[0]!.answer([]);
    await expect(a).rejects.toThrow(/returned 0 results for 1 reads/);
  });

  it("runs a batch under none of the submitting call's limits", async () => {
    let seen: unknown = 'unset';
    const read = createBatchedReads(
      async (items: readonly string[]) => {
        seen = currentCallLimits().deadline;
        return items;
      },
      { maxItems: 16, inFlight: 1 },
    );
    await runWithCallLimits({ deadline: Date.now() + 60_000 }, () => read('a'));
    expect(seen).toBeUndefined();
  });
});
