import { runOutsideCalls } from './call-deadline.js';

/**
 * Coalesces concurrent reads into shared round trips: up to `inFlight` batches run at once; a
 * read that finds one free is sent at once with whatever waits (a lone call waits for nothing),
 * and reads arriving while all are busy form the next batch, of at most `maxItems`, which starts
 * as soon as one ends. Each read gets its own result, or its own error when `run` gives one in
 * its place; a batch that fails as a whole fails every read in it.
 *
 * On a loopback or LAN database a round trip costs the server and the client a syscall and a
 * wake-up each way, more than a primary-key lookup itself: N reads in one statement pay that once.
 */
export function createBatchedReads<T, R>(
  run: (items: readonly T[]) => Promise<ReadonlyArray<R | Error>>,
  { maxItems, inFlight }: { maxItems: number; inFlight: number },
): (item: T) => Promise<R> {
  interface Waiting {
    item: T;
    resolve: (result: R) => void;
    reject: (error: unknown) => void;
  }
  const waiting: Waiting[] = [];
  let running = 0;

  async function runBatch(batch: Waiting[]): Promise<void> {
    try {
      const results = await run(batch.map((w) => w.item));
      if (results.length !== batch.length) throw new Error(`a batched read returned ${results.length} results for ${batch.length} reads`);
      batch.forEach((w, i) => {
        const result = results[i]!;
        if (result instanceof Error) w.reject(result);
        else w.resolve(result);
      });
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }

  async function drain(): Promise<void> {
    running += 1;
    try {
      while (waiting.length > 0) await runBatch(waiting.splice(0, maxItems));
    } finally {
      running -= 1;
    }
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      // A batch serves many calls, so it runs under none of their deadlines or cancellations.
      if (running < inFlight) void runOutsideCalls(drain);
    });
}
