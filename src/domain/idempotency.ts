import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Storage } from '../storage/storage.js';
import { IdempotencyKeyReusedError } from '../storage/storage-errors.js';
import { alreadyExists, IDEMPOTENCY_KEY_REUSED, invalidArgument } from './errors.js';
import { createLeasedJob } from './leased-job.js';
import type { CallContext } from './principal.js';

export const IDEMPOTENCY_EXPIRY_LEASE = 'idempotency-expiry';
export const DEFAULT_IDEMPOTENCY_RETENTION_SECONDS = 24 * 3600;
/** Keys deleted per statement by the expiry sweep: short statements, short locks. */
const EXPIRY_BATCH = 1000;

/** One call that carries an idempotency key. */
export interface IdempotentCall {
  /** The fully-qualified method name: a key is scoped to (caller, method). */
  method: string;
  key: string;
  /** The request in a canonical encoding, without its key. */
  request: Uint8Array;
}

export interface Idempotency {
  /**
   * Runs `work` (the call, returning its encoded response) unless this caller already made this
   * call with this key within the retention: then the first call's response, with nothing done.
   * The key with a different request is ALREADY_EXISTS, reason IDEMPOTENCY_KEY_REUSED; a call
   * that fails keeps no key.
   */
  run(context: CallContext, call: IdempotentCall, work: () => Promise<Uint8Array>): Promise<{ response: Uint8Array; replayed: boolean }>;
  /** Deletes expired keys, in batches, as the expiry lease's holder; 0 when another instance holds it. */
  expire(): Promise<number>;
  /** Gives the expiry lease up (on shutdown). */
  stop(): Promise<void>;
}

/**
 * The rules of idempotency keys, for every method that takes one. The request is kept only as a
 * keyed hash (HMAC with a key derived from the master key): it holds secret values, which a plain
 * hash would let anyone with the table test guesses against.
 */
export function createIdempotency({
  storage,
  now,
  retentionSeconds = DEFAULT_IDEMPOTENCY_RETENTION_SECONDS,
  fingerprintKey = randomBytes(32),
  holder = `idempotency-expiry:${randomUUID()}`,
}: {
  storage: Pick<Storage, 'idempotency' | 'leases'>;
  now: () => Date;
  retentionSeconds?: number;
  /** Share one across instances (app.ts derives it from the master key), so they agree on "the same request". */
  fingerprintKey?: Uint8Array;
  holder?: string;
}): Idempotency {
  const sweeper = createLeasedJob({ leases: storage.leases, name: IDEMPOTENCY_EXPIRY_LEASE, holder });
  return {
    async run(context, call, work) {
      requireIdempotencyKey(call.key);
      const at = now();
      const claim = {
        key: createHash('sha256').update(JSON.stringify([context.principal.type, context.principal.id, call.method, call.key])).digest(),
        fingerprint: createHmac('sha256', fingerprintKey).update(call.request).digest(),
        at,
        expiresAt: new Date(at.getTime() + retentionSeconds * 1000),
      };
      try {
        return await storage.idempotency.run(claim, work);
      } catch (error) {
        if (!(error instanceof IdempotencyKeyReusedError)) throw error;
        throw alreadyExists(
          IDEMPOTENCY_KEY_REUSED,
          'this request_id (Idempotency-Key) was already used for a different request to this method; nothing was changed. Use a new key for a new request',
        );
      }
    },
    async expire() {
      // Not fenced: deleting a row that expired is right whoever does it; the lease only saves work.
      const deleted = await sweeper.run(async () => {
        for (let total = 0; ; ) {
          const deleted = await storage.idempotency.deleteExpired(now(), EXPIRY_BATCH);
          total += deleted;
          if (deleted < EXPIRY_BATCH) return total;
        }
      });
      return deleted ?? 0;
    },
    stop: () => sweeper.release(),
  };
}

/** 1 to 128 printable ASCII characters (space to tilde), so a key is safe to compare, store and show. */
export function requireIdempotencyKey(key: string): void {
  if (key.length === 0 || key.length > 128) throw invalidArgument(`request_id (Idempotency-Key) must be 1 to 128 characters, got ${key.length}`);
  const bad = /[^\x20-\x7e]/.exec(key);
  if (bad) throw invalidArgument(`request_id (Idempotency-Key) must be printable ASCII; character ${bad.index + 1} is not`);
}
