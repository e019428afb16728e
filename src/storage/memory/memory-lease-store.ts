import type { Lease, LeaseStore } from '../storage.js';
import { checkLeaseRequest } from '../lease-names.js';

interface LeaseRow {
  holder: string;
  fencing: number;
  expiresAt: number;
}

/** Leases in one process (dev mode, tests), by an injectable clock. */
export function createMemoryLeaseStore(now: () => number = Date.now) {
  const rows = new Map<string, LeaseRow>();

  const store: LeaseStore = {
    async acquire(name, holder, ttlMs) {
      checkLeaseRequest(name, holder, ttlMs);
      const at = now();
      const row = rows.get(name);
      if (row && row.holder !== holder && row.expiresAt > at) return null;
      const fencing = !row ? 1 : row.holder === holder ? row.fencing : row.fencing + 1;
      rows.set(name, { holder, fencing, expiresAt: at + ttlMs });
      return { name, holder, fencing, validUntil: at + ttlMs };
    },
    async release(lease) {
      const row = rows.get(lease.name);
      if (row && holds(row, lease, now())) row.expiresAt = now();
    },
  };

  return {
    store,
    /** True while `lease` is current: the check a fenced write makes before it changes anything. */
    holds(lease: Lease): boolean {
      const row = rows.get(lease.name);
      return row !== undefined && holds(row, lease, now());
    },
  };
}

function holds(row: LeaseRow, lease: Lease, at: number): boolean {
  return row.holder === lease.holder && row.fencing === lease.fencing && row.expiresAt > at;
}
