import type { Storage } from '../storage/storage.js';
import type { SecretService } from './secret-service.js';

/** How many due rotations one tick takes on; the rest wait for the next tick. */
const DUE_PER_TICK = 100;

export interface RotationScheduler {
  /**
   * Rotates every secret whose next_rotation_at has come (by the injected clock) and returns how
   * many rotations this call made. Safe to run on every instance at once: each due time is
   * claimed by one conditional update (see SecretStore.rotateDue), so it rotates exactly once.
   */
  tick(): Promise<number>;
}

export interface RotationSchedulerDeps {
  storage: { secrets: Pick<Storage['secrets'], 'dueRotations'> };
  secrets: Pick<SecretService, 'rotateScheduled'>;
  now: () => Date;
  /** Told about a rotation that failed (ids only); it is tried again on the next tick. */
  onError: (error: unknown, where: { vaultId: string; path: string }) => void;
}

/** Finds due schedules and rotates each; the timer that calls `tick` lives in the app. */
export function createRotationScheduler({ storage, secrets, now, onError }: RotationSchedulerDeps): RotationScheduler {
  return {
    async tick() {
      const due = await storage.secrets.dueRotations(now(), DUE_PER_TICK);
      let rotated = 0;
      for (const { vaultId, path, dueAt } of due) {
        try {
          if (await secrets.rotateScheduled(vaultId, path, dueAt)) rotated += 1;
        } catch (error) {
          onError(error, { vaultId, path });
        }
      }
      return rotated;
    },
  };
}
