import type { AuditRecord, AuditStore, ChainHead, Lease, StoredAuditEvent } from '../storage.js';
import { LeaseLostError } from '../storage-errors.js';

/**
 * The in-memory audit trail; `record` is what every store calls with a change's events.
 * `holds` tells whether a fenced seal's lease is still current.
 */
export function createMemoryAuditStore(holds: (lease: Lease) => boolean = () => false) {
  const events: StoredAuditEvent[] = [];
  // The same objects as in `events`, awaiting a link, so sealing never rescans the whole trail.
  const pending: StoredAuditEvent[] = [];
  let head: ChainHead | null = null;
  let nextSeq = 1;
  const copy = (e: StoredAuditEvent): StoredAuditEvent => structuredClone(e);

  const store: AuditStore = {
    async list(filter) {
      return events
        .filter(
          (e) =>
            (!filter.action || e.action === filter.action) &&
            (!filter.actorId || e.actorId === filter.actorId) &&
            (!filter.resourceId || e.resourceId === filter.resourceId) &&
            (!filter.from || e.createdAt.getTime() >= filter.from.getTime()) &&
            (!filter.to || e.createdAt.getTime() < filter.to.getTime()) &&
            (filter.beforeSeq === undefined || e.seq < filter.beforeSeq),
        )
        .reverse()
        .slice(filter.offset, filter.offset + filter.limit)
        .map(copy);
    },
    async seal(link, max, fence) {
      if (fence && !holds(fence)) throw new LeaseLostError(fence.name);
      const batch = pending.splice(0, max);
      for (const event of batch) {
        const chainIndex = (head?.chainIndex ?? 0) + 1;
        const { hash, keyId } = link(head?.hash ?? '', event, chainIndex);
        Object.assign(event, { chainIndex, hash, keyId });
        head = { chainIndex, hash, eventId: event.id };
      }
      return batch.length;
    },
    async readChain(after, limit) {
      return events
        .filter((e) => e.chainIndex !== null && e.chainIndex > after)
        .sort((a, b) => a.chainIndex! - b.chainIndex!)
        .slice(0, limit)
        .map(copy);
    },
    async head() {
      return head && { ...head };
    },
  };

  return {
    store,
    /** The raw rows, for tests that tamper with them as an attacker with database access would. */
    rows: events,
    oldestPendingAt: () => pending[0]?.createdAt ?? null,
    record(records: AuditRecord[]) {
      for (const r of records) {
        const event: StoredAuditEvent = { ...structuredClone(r), seq: nextSeq++, chainIndex: null, hash: null, keyId: null };
        events.push(event);
        pending.push(event);
      }
    },
  };
}
