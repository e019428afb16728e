import type { IdempotencyStore } from '../storage.js';
import { IdempotencyKeyReusedError } from '../storage-errors.js';

interface Entry {
  fingerprint: Uint8Array;
  expiresAt: Date;
  /** Set once the call succeeded; until then `settled` resolves when it ends either way. */
  response?: Uint8Array;
  settled?: Promise<void>;
}

/**
 * Idempotency keys in memory. One process, so "in the same transaction" reduces to: the entry is
 * taken before the call runs, gets its response when the call succeeds and goes when it fails.
 * Concurrent repeats wait for the one in flight, as they wait on the claim row in MySQL.
 */
export function createMemoryIdempotencyStore(): IdempotencyStore {
  const entries = new Map<string, Entry>();
  return {
    async run(claim, work) {
      const id = Buffer.from(claim.key).toString('hex');
      for (let entry = entries.get(id); entry && entry.expiresAt > claim.at; entry = entries.get(id)) {
        if (entry.settled) {
          await entry.settled;
          continue;
        }
        if (!Buffer.from(entry.fingerprint).equals(claim.fingerprint)) throw new IdempotencyKeyReusedError();
        return { replayed: true, response: Uint8Array.from(entry.response!) };
      }
      let settle!: () => void;
      const taken: Entry = { fingerprint: Uint8Array.from(claim.fingerprint), expiresAt: claim.expiresAt, settled: new Promise((resolve) => (settle = resolve)) };
      entries.set(id, taken);
      try {
        const response = await work();
        entries.set(id, { fingerprint: taken.fingerprint, expiresAt: taken.expiresAt, response: Uint8Array.from(response) });
        return { replayed: false, response };
      } catch (error) {
        entries.delete(id);
        throw error;
      } finally {
        settle();
      }
    },
    async deleteExpired(at, limit) {
      let deleted = 0;
      for (const [id, entry] of entries) {
        if (deleted >= limit) break;
        if (entry.settled || entry.expiresAt > at) continue;
        entries.delete(id);
        deleted++;
      }
      return deleted;
    },
  };
}
