import { randomUUID } from 'node:crypto';
import type { AccessControl } from './access-control.js';
import { createLeasedJob } from './leased-job.js';
import type { Storage, StoredAuditEvent } from '../storage/storage.js';
import { AUDIT_SCHEME, type AuditChain } from './audit-chain.js';
import { invalidArgument } from './errors.js';
import { createPageTokens, requirePageSize, type Page, type PageTokens } from './paging.js';
import type { CallContext } from './principal.js';
import { requireTimestamp } from './timestamp-range.js';
import { requireIntRange } from './validation.js';

export interface AuditQuery {
  action: string;
  actorId: string;
  resourceId: string;
  from: Date | undefined;
  to: Date | undefined;
  /** The older way to page (kept for existing clients): 0 = 100; OFFSET, so deep pages cost more. */
  limit: number;
  offset: number;
  /** AIP-158 paging; `pageSize` wins over `limit` when both are given. */
  pageSize?: number;
  pageToken?: string;
}

export interface ChainVerification {
  chainValid: boolean;
  eventsVerified: number;
  eventsChecked: number;
  brokenAtEventId: string | undefined;
  scheme: typeof AUDIT_SCHEME;
}

const SEAL_BATCH = 500;
/** The lease the audit sealer runs under (storage/lease-names.ts explains names). */
export const AUDIT_SEALER_LEASE = 'audit-sealer';
const VERIFY_BATCH = 1000;

/** Reads and verifies the audit trail, and seals pending events into the chain. */
export function createAuditService({
  storage,
  access,
  chain,
  pages = createPageTokens(),
  holder = `audit-sealer:${randomUUID()}`,
}: {
  storage: Pick<Storage, 'audit' | 'leases'>;
  access: AccessControl;
  chain: AuditChain;
  pages?: PageTokens;
  /** This instance, as lease holder: one sealer at a time across the cluster. */
  holder?: string;
}) {
  const sealer = createLeasedJob({ leases: storage.leases, name: AUDIT_SEALER_LEASE, holder });

  /**
   * Links every pending event, as the sealer lease's holder; 0 without sealing when another
   * instance holds it (that one seals them). Each instance calls this periodically.
   */
  async function sealPending(): Promise<number> {
    const sealed = await sealer.run(async (fence) => {
      let total = 0;
      for (;;) {
        const batch = await storage.audit.seal(chain.link, SEAL_BATCH, fence);
        total += batch;
        if (batch < SEAL_BATCH) return total;
      }
    });
    return sealed ?? 0;
  }

  /**
   * Before a read of the trail: seal what is pending if this instance may, so a single instance
   * shows its latest events linked. Never fails the read: sealing is the background job's, and
   * contention with it (or another instance holding the lease) is no reason to refuse a listing.
   */
  const sealBeforeReading = () => sealPending().catch(() => 0);

  return {
    sealPending,
    /** Gives the sealer lease up (shutdown), so another instance takes over at once. */
    stopSealing: () => sealer.release(),

    /**
     * Newest first. Without a page token this is today's limit/offset listing; either way the
     * answer carries a next_page_token (keyset on the event's seq) when more events match.
     */
    async list(context: CallContext, query: AuditQuery): Promise<Page<StoredAuditEvent>> {
      access.requireOperator(context, 'read the audit trail');
      const size = query.pageSize ? requirePageSize(query.pageSize) : query.limit === 0 ? 100 : requireIntRange('limit', query.limit, 1, 1000);
      const offset = requireIntRange('offset', query.offset, 0, 1_000_000_000);
      const scope = {
        list: 'audit-events',
        context,
        params: [query.action, query.actorId, query.resourceId, query.from?.toISOString(), query.to?.toISOString()],
      };
      const before = pages.open(scope, query.pageToken ?? '');
      if (before !== undefined && typeof before !== 'number') throw invalidArgument('page_token is not valid for this list');
      if (before !== undefined && offset !== 0) throw invalidArgument('offset cannot be combined with page_token: the token already says where the page starts');
      await sealBeforeReading();
      const rows = await storage.audit.list({
        action: query.action || undefined,
        actorId: query.actorId || undefined,
        resourceId: query.resourceId || undefined,
        from: requireTimestamp('from', query.from),
        to: requireTimestamp('to', query.to),
        beforeSeq: before,
        limit: size + 1,
        offset,
      });
      const items = rows.slice(0, size);
      return { items, nextPageToken: rows.length > size ? pages.issue(scope, items[items.length - 1]!.seq) : '' };
    },

    /**
     * Walks the chain from the start: each event must link to the one before it with the right
     * index and hash, and the last must be the head. Stops at the first break.
     */
    async verify(context: CallContext): Promise<ChainVerification> {
      access.requireOperator(context, 'verify the audit trail');
      await sealBeforeReading();
      const result = (eventsVerified: number, eventsChecked: number, brokenAtEventId?: string): ChainVerification => ({
        chainValid: brokenAtEventId === undefined,
        eventsVerified,
        eventsChecked,
        brokenAtEventId,
        scheme: AUDIT_SCHEME,
      });
      const head = await storage.audit.head();
      let previousHash = '';
      let expectedIndex = 1;
      let lastId: string | undefined;
      for (;;) {
        const batch = await storage.audit.readChain(expectedIndex - 1, VERIFY_BATCH);
        for (const event of batch) {
          const intact = event.chainIndex === expectedIndex && event.hash !== null && event.keyId !== null && chain.verifies(previousHash, event, expectedIndex, event.keyId, event.hash);
          if (!intact) return result(expectedIndex - 1, expectedIndex, event.id);
          previousHash = event.hash!;
          lastId = event.id;
          expectedIndex++;
        }
        if (batch.length < VERIFY_BATCH) break;
      }
      const checked = expectedIndex - 1;
      // Rows cut from the end leave a head pointing past the last event.
      if (head && (head.chainIndex !== checked || head.hash !== previousHash)) return result(checked, checked, head.eventId);
      if (!head && checked > 0) return result(checked, checked, lastId);
      return result(checked, checked);
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
