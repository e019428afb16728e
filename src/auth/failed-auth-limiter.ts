import { RateLimiterMemory } from 'rate-limiter-flexible';
import { auditEvent } from '../domain/audit-event.js';
import type { AuthAttemptSource, AuthFailureGuard } from '../domain/auth-failure-guard.js';
import { resourceExhausted } from '../domain/errors.js';
import { ANONYMOUS } from '../domain/principal.js';
import type { JsonObject, Storage } from '../storage/storage.js';

export interface FailedAuthLimits {
  /** Failed authentications one client address may make per window before it is refused. */
  perAddress: number;
  /** Failed authentications naming one agent (from any address) per window before it is refused. */
  perAgent: number;
  windowSeconds: number;
}

export const DEFAULT_FAILED_AUTH_LIMITS: FailedAuthLimits = { perAddress: 100, perAgent: 300, windowSeconds: 60 };

export const TOO_MANY_FAILED_AUTHENTICATIONS = 'TOO_MANY_FAILED_AUTHENTICATIONS';
/** Addresses tracked for aggregated audit at once; past this, what is pending is written early. */
const MAX_PENDING_SOURCES = 50_000;

export interface FailedAuthLimiter extends AuthFailureGuard {
  /** Writes the aggregated audit events of windows that have ended (run periodically). */
  flushEnded(): Promise<void>;
  /** Writes every pending aggregated event, also of the current window (at shutdown). */
  flushAll(): Promise<void>;
}

interface Tally {
  windowStart: number;
  failed: number;
  limited: number;
  requestId: string;
  agentIds: Set<string>;
}

/**
 * Fixed windows on the injected clock: counters live in rate-limiter-flexible memory limiters
 * under "<source>#<window>" keys (expiring after two windows), so the clock decides the window
 * and tests need no sleeps. Limits are per instance: N instances behind a balancer allow up to
 * N times the limit (rate-limiter-flexible's shared stores would make them global).
 *
 * Audit: the first failure of each address and window is recorded at once, with its request id;
 * the rest of that window are counted and written as one `auth.failed` event with the count
 * (`details.count`, and `details.limited` for attempts refused with 429) when the window ends.
 */
export function createFailedAuthLimiter({
  appendAudit,
  now,
  limits = DEFAULT_FAILED_AUTH_LIMITS,
}: {
  appendAudit: Storage['appendAudit'];
  now: () => Date;
  limits?: FailedAuthLimits;
}): FailedAuthLimiter {
  const windowMs = limits.windowSeconds * 1000;
  const duration = limits.windowSeconds * 2;
  const byAddress = new RateLimiterMemory({ keyPrefix: 'auth-fail-address', points: limits.perAddress, duration });
  const byAgent = new RateLimiterMemory({ keyPrefix: 'auth-fail-agent', points: limits.perAgent, duration });
  const pending = new Map<string, Tally>();

  const windowOf = (at: number) => Math.floor(at / windowMs);
  const dimensions = (source: AuthAttemptSource) =>
    [
      source.address === undefined ? undefined : { limiter: byAddress, key: source.address, limit: limits.perAddress },
      source.agentId ? { limiter: byAgent, key: source.agentId, limit: limits.perAgent } : undefined,
    ].filter((d) => d !== undefined);

  async function emit(address: string, tally: Tally, count: number) {
    const details: JsonObject = {
      count,
      client_address: address,
      window_start: new Date(tally.windowStart * windowMs).toISOString(),
      window_seconds: limits.windowSeconds,
    };
    if (tally.limited > 0) details.limited = tally.limited;
    const agents = [...tally.agentIds];
    await appendAudit([
      auditEvent({ principal: ANONYMOUS, requestId: tally.requestId }, now(), {
        action: 'auth.failed',
        resourceType: 'token',
        resourceId: agents.length === 1 ? agents[0]! : '',
        outcome: 'failure',
        details,
      }),
    ]);
  }

  async function flush(which: (tally: Tally) => boolean) {
    for (const [address, tally] of [...pending]) {
      if (!which(tally)) continue;
      pending.delete(address);
      if (tally.failed > 0 || tally.limited > 0) await emit(address, tally, tally.failed);
    }
  }

  async function note(source: AuthAttemptSource, kind: 'failed' | 'limited', requestId: string) {
    const address = source.address ?? 'unknown';
    const current = windowOf(now().getTime());
    let tally = pending.get(address);
    if (tally && tally.windowStart !== current) {
      pending.delete(address);
      if (tally.failed > 0 || tally.limited > 0) await emit(address, tally, tally.failed);
      tally = undefined;
    }
    if (!tally) {
      if (pending.size >= MAX_PENDING_SOURCES) await flush(() => true);
      tally = { windowStart: current, failed: 0, limited: 0, requestId, agentIds: new Set() };
      pending.set(address, tally);
      if (kind === 'failed') {
        await emit(address, { ...tally, agentIds: new Set(source.agentId ? [source.agentId] : []) }, 1);
        return;
      }
    }
    tally[kind]++;
    tally.requestId = requestId;
    if (source.agentId && tally.agentIds.size < 2) tally.agentIds.add(source.agentId);
  }

  return {
    async admit(source, requestId) {
      const at = now().getTime();
      const window = windowOf(at);
      for (const { limiter, key, limit } of dimensions(source)) {
        const used = await limiter.get(`${key}#${window}`);
        if (used && used.consumedPoints >= limit) {
          const retryAfter = Math.max(1, Math.ceil(((window + 1) * windowMs - at) / 1000));
          await note(source, 'limited', requestId);
          throw resourceExhausted(
            TOO_MANY_FAILED_AUTHENTICATIONS,
            `too many failed authentications from this ${limiter === byAddress ? 'address' : 'agent id'}; retry after ${retryAfter} s`,
            retryAfter,
          );
        }
      }
    },

    async fail(source, requestId) {
      const window = windowOf(now().getTime());
      for (const { limiter, key } of dimensions(source)) await limiter.penalty(`${key}#${window}`, 1);
      await note(source, 'failed', requestId);
    },

    flushEnded: () => {
      const current = windowOf(now().getTime());
      return flush((tally) => tally.windowStart < current);
    },
    flushAll: () => flush(() => true),
  };
}
