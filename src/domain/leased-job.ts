import type { Lease, LeaseStore } from '../storage/storage.js';
import { LeaseLostError } from '../storage/storage-errors.js';

/**
 * Background work that must run on one instance at a time across the whole cluster (sealing the
 * audit chain, and any later scheduled job): each run first holds the named lease, renewing it
 * once half its time has passed, and hands the lease to the work so every write it makes is
 * fenced (a holder that stalled past its lease is refused by the store, not believed). Instances
 * that do not hold it skip the run; when the holder stops or dies another takes over within one TTL.
 */
export interface LeasedJob {
  /** Runs `work` as the holder and returns its result, or undefined when another instance holds the lease. */
  run<T>(work: (fence: Lease) => Promise<T>): Promise<T | undefined>;
  /** Gives the lease up (on shutdown) so another instance takes over at once. */
  release(): Promise<void>;
}

export function createLeasedJob({
  leases,
  name,
  holder,
  ttlMs = 10_000,
  now = Date.now,
}: {
  leases: LeaseStore;
  name: string;
  holder: string;
  ttlMs?: number;
  /** The caller's clock in ms, as Lease.validUntil is. */
  now?: () => number;
}): LeasedJob {
  let lease: Lease | null = null;
  return {
    async run(work) {
      if (lease === null || lease.validUntil - now() < ttlMs / 2) lease = await leases.acquire(name, holder, ttlMs);
      if (lease === null) return undefined;
      try {
        return await work(lease);
      } catch (error) {
        if (!(error instanceof LeaseLostError)) throw error;
        lease = null;
        return undefined;
      }
    },
    async release() {
      const held = lease;
      lease = null;
      if (held) await leases.release(held);
    },
  };
}
