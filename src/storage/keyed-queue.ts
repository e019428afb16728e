/**
 * Runs work for the same key one at a time, in arrival order, on this instance; different keys
 * run concurrently. The MySQL secret store queues each path's writes here: writers from one
 * instance then never conflict with each other on the path's counter row, so on a multi-primary
 * cluster only writers on other nodes can make a commit fail certification (and those are
 * retried). On one server it saves the lock waits. Nothing is held between calls: a key's entry
 * goes when its last work settles.
 */
export function createKeyedQueue() {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(key: string, work: () => Promise<T>): Promise<T> {
      const before = tails.get(key) ?? Promise.resolve();
      const result = before.then(work, work);
      const tail = result.then(
        () => {},
        () => {},
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    /** Keys with work queued or running (for tests and metrics). */
    size: () => tails.size,
  };
}
