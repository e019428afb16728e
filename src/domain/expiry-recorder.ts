import { randomUUID } from 'node:crypto';
import type { Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { createLeasedJob } from './leased-job.js';
import { SYSTEM } from './principal.js';

export const EXPIRY_RECORDER_LEASE = 'secret-expiry';
/** Expired versions read per query; a tick goes on until a page comes back short, or for this many pages. */
const EXPIRED_PER_PAGE = 100;
const PAGES_PER_TICK = 10;

/**
 * Nothing happens to a version when its expires_at passes (reads just start refusing it), so this
 * job writes it down: one `secret.expire` audit event per expired version, actor `system`, which
 * the change feed shows watchers as `version_expired`. Disabled and pending versions expire like
 * any other; a deleted one is only marked, as its path's delete already ended it.
 */
export interface ExpiryRecorder {
  /**
   * Records every version expired by the injected clock and not yet recorded, as the lease's
   * holder; returns how many it recorded (0 when another instance holds the lease).
   */
  tick(): Promise<number>;
  /** Gives the lease up (on shutdown). */
  stop(): Promise<void>;
}

export function createExpiryRecorder({
  storage,
  now,
  holder = `secret-expiry:${randomUUID()}`,
  onError,
}: {
  storage: { secrets: Pick<Storage['secrets'], 'unrecordedExpiries' | 'recordExpiry'>; leases: Storage['leases'] };
  now: () => Date;
  holder?: string;
  /** Told about a version whose record failed (ids only); it is tried again on the next tick. */
  onError: (error: unknown, where: { vaultId: string; path: string; version: number }) => void;
}): ExpiryRecorder {
  // Not fenced: each record is claimed by a conditional update (SecretStore.recordExpiry), which
  // keeps it to once even when two instances overlap; the lease only saves the others the scan.
  const job = createLeasedJob({ leases: storage.leases, name: EXPIRY_RECORDER_LEASE, holder });
  return {
    async tick() {
      const context = { principal: SYSTEM, requestId: `expiry-${randomUUID()}` };
      const recorded = await job.run(async () => {
        let total = 0;
        for (let page = 1; ; page++) {
          const at = now();
          const expired = await storage.secrets.unrecordedExpiries(at, EXPIRED_PER_PAGE);
          let failed = false;
          for (const { vaultId, path, version } of expired) {
            const event = auditEvent(context, at, { action: 'secret.expire', resourceType: 'secret', resourceId: path, vaultId, details: { version } });
            try {
              if (await storage.secrets.recordExpiry(vaultId, path, version, at, [event])) total += 1;
            } catch (error) {
              failed = true;
              onError(error, { vaultId, path, version });
            }
          }
          // A failed row would come back first in the next page: leave it to the next tick. A
          // backlog (after an upgrade, or an outage) is worked off a bounded slice per tick.
          if (failed || expired.length < EXPIRED_PER_PAGE || page === PAGES_PER_TICK) return total;
        }
      });
      return recorded ?? 0;
    },
    stop: () => job.release(),
  };
}
