import { runOutsideCalls } from './call-deadline.js';

/**
 * Group commit: concurrent submissions are written together, one flush at a time. A submission
 * that finds no flush running is flushed at once (a lone call waits for nothing); those that
 * arrive meanwhile form the next batch, which starts as soon as the running flush ends. Each
 * submission resolves once the flush holding it has committed and rejects with that flush's
 * error, so a caller never goes on as if its items were written when they were not.
 *
 * A submission is never split across flushes; a batch takes whole submissions up to `maxItems`
 * (a larger single submission forms a batch of its own), or up to `batchSize(waiting items)` when
 * given: a store whose statement differs with the row count keeps to a few sizes that way.
 */
export function createGroupCommit<T>(
  flush: (items: T[]) => Promise<void>,
  maxItems: number,
  batchSize: (waiting: number) => number = (waiting) => waiting,
): (items: readonly T[]) => Promise<void> {
  interface Submission {
    items: readonly T[];
    resolve: () => void;
    reject: (error: unknown) => void;
  }
  const waiting: Submission[] = [];
  let flushing = false;

  function takeBatch(): Submission[] {
    let available = 0;
    for (const s of waiting) {
      if (available + s.items.length > maxItems) break;
      available += s.items.length;
    }
    const limit = Math.max(1, batchSize(available));
    const batch: Submission[] = [waiting.shift()!];
    let size = batch[0]!.items.length;
    while (waiting.length > 0 && size + waiting[0]!.items.length <= limit) {
      size += waiting[0]!.items.length;
      batch.push(waiting.shift()!);
    }
    return batch;
  }

  async function drain(): Promise<void> {
    flushing = true;
    try {
      while (waiting.length > 0) {
        const batch = takeBatch();
        try {
          await flush(batch.flatMap((s) => s.items));
          for (const s of batch) s.resolve();
        } catch (error) {
          for (const s of batch) s.reject(error);
        }
      }
    } finally {
      flushing = false;
    }
  }

  return (items) =>
    new Promise<void>((resolve, reject) => {
      if (items.length === 0) return resolve();
      waiting.push({ items, resolve, reject });
      // The batch serves many calls, so it runs under none of their deadlines or cancellations.
      if (!flushing) void runOutsideCalls(drain);
    });
}
