import { runOutsideCalls } from '../storage/call-deadline.js';
import type { AuditStore, StoredAuditEvent } from '../storage/storage.js';
import { resourceExhausted } from './errors.js';

/**
 * The sealed audit chain, tailed once per instance for all of its watchers.
 *
 * The chain is one gapless sequence in commit order (the sealer links events in order under one
 * lease), the same on every instance, so "chain index > n" means exactly the events after n: a
 * watcher that remembers the last index it was given resumes anywhere with nothing missed and
 * nothing twice. One timer reads the chain every `pollMs` (one query per tick however many
 * watchers there are, and none while there are none) and hands each batch to every watcher that
 * is up to date. A watcher that starts behind, or falls behind because it does not keep up, reads
 * the chain on its own until it reaches the tailer, then joins the shared feed again.
 */
export interface ChangeFeed {
  /**
   * Starts a subscription after chain index `after`, given the chain's `head` as just read (where
   * an idle tailer starts); RESOURCE_EXHAUSTED when the instance has its maximum.
   */
  subscribe(after: number, head: number): Subscription;
  /** The index of the newest sealed event (0: none). */
  head(): Promise<number>;
  /** How many subscriptions are open (metrics, tests). */
  readonly size: number;
  /** Ends every subscription (their `next` resolves with `closed`) and stops the timer. */
  close(): void;
}

export interface Subscription {
  /** The chain index of the last event `next` returned (or the start). */
  readonly position: number;
  /**
   * The events after `position`, in chain order, as soon as there are any; an empty batch after
   * `waitMs` without any, and `closed: true` once the feed or the subscription is closed.
   */
  next(waitMs: number): Promise<{ events: StoredAuditEvent[]; closed: boolean }>;
  close(): void;
}

/** Chain events read per query, by the tailer and by a watcher catching up. */
const PAGE = 500;
/** Events a subscription may hold unread before it falls back to reading the chain itself. */
const MAX_BUFFERED = 5000;

interface Subscriber {
  /** Chain index of the last event handed to the consumer. */
  consumed: number;
  /** Chain index of the last event in `buffer` (= consumed when empty); meaningful while live. */
  received: number;
  buffer: StoredAuditEvent[];
  /** True while it must read the chain itself to catch up with the tailer. */
  behind: boolean;
  closed: boolean;
  wake: (() => void) | undefined;
}

export function createChangeFeed({
  audit,
  pollMs = 250,
  maxSubscribers = 1000,
  onError,
}: {
  audit: Pick<AuditStore, 'readChain' | 'head'>;
  pollMs?: number;
  maxSubscribers?: number;
  /** A failed read of the chain; the tailer retries from where it was. */
  onError: (error: unknown) => void;
}): ChangeFeed {
  const subscribers = new Set<Subscriber>();
  /** The tailer's position: the last index it has read; undefined while it is idle. */
  let tail: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  let closed = false;

  const wake = (s: Subscriber) => {
    const w = s.wake;
    s.wake = undefined;
    w?.();
  };

  async function tick() {
    timer = undefined;
    ticking = true;
    try {
      for (let from = tail; from !== undefined && subscribers.size > 0; ) {
        const events = await audit.readChain(from, PAGE);
        // The feed went idle or was restarted elsewhere while the query ran: drop the batch.
        if (tail !== from) break;
        if (events.length > 0) publish(from, events);
        if (events.length < PAGE) break;
        from = tail;
      }
    } catch (error) {
      onError(error);
    } finally {
      ticking = false;
      if (subscribers.size > 0 && !closed) schedule();
      else tail = undefined;
    }
  }

  /** Hands events (from..last] to every subscriber that has seen everything up to `from`. */
  function publish(from: number, events: StoredAuditEvent[]) {
    const last = events[events.length - 1]!.chainIndex!;
    tail = last;
    for (const s of subscribers) {
      if (s.behind) continue;
      if (s.received < from) {
        // It missed a batch (joined while it was being read): it catches up on its own.
        s.behind = true;
      } else {
        const fresh = events.filter((e) => e.chainIndex! > s.received);
        s.buffer.push(...fresh);
        s.received = Math.max(s.received, last);
        if (s.buffer.length > MAX_BUFFERED) {
          // A consumer this slow reads the chain at its own pace instead of holding memory.
          s.buffer = [];
          s.received = s.consumed;
          s.behind = true;
        }
      }
      wake(s);
    }
  }

  function ensureTailing(from: number) {
    if (tail === undefined) tail = from;
    if (timer === undefined && !ticking && !closed) schedule();
  }

  // The first watcher's call starts the tailer, which serves every watcher: it runs as no call's
  // part, so that call's cancellation or deadline never reaches the shared reads.
  const schedule = () => runOutsideCalls(() => (timer = setTimeout(() => void tick(), pollMs)));

  /** Waits `ms`, or less when the tailer has something for `s` or it is closed. */
  const pause = (s: Subscriber, ms: number) =>
    new Promise<void>((resolve) => {
      const timeout = setTimeout(resolve, ms);
      s.wake = () => {
        clearTimeout(timeout);
        resolve();
      };
    });

  return {
    get size() {
      return subscribers.size;
    },

    async head() {
      return (await audit.head())?.chainIndex ?? 0;
    },

    subscribe(after, head) {
      if (closed) throw resourceExhausted('SHUTTING_DOWN', 'the server is shutting down; reconnect to another instance', 1);
      if (subscribers.size >= maxSubscribers) {
        throw resourceExhausted('TOO_MANY_WATCHERS', `this instance already serves its maximum of ${maxSubscribers} watch streams; retry later or on another instance`, 1);
      }
      const s: Subscriber = { consumed: after, received: after, buffer: [], behind: false, closed: false, wake: undefined };
      subscribers.add(s);
      ensureTailing(head);
      // Starting before the tailer: read the gap from the chain before joining the shared feed.
      if (after < tail!) s.behind = true;

      const close = () => {
        if (s.closed) return;
        s.closed = true;
        subscribers.delete(s);
        wake(s);
      };

      async function catchUp(): Promise<StoredAuditEvent[]> {
        const events = await audit.readChain(s.consumed, PAGE);
        if (events.length > 0) s.consumed = events[events.length - 1]!.chainIndex!;
        // Caught up: from here on every tailer batch starts at or before this position.
        if (events.length < PAGE && tail !== undefined && s.consumed >= tail) {
          s.behind = false;
          s.received = s.consumed;
        }
        return events;
      }

      return {
        get position() {
          return s.consumed;
        },
        close,
        async next(waitMs) {
          const done = () => ({ events: [], closed: true });
          if (s.closed || closed) return done();
          if (s.behind) {
            try {
              const events = await catchUp();
              if (events.length > 0 || !s.behind) return { events, closed: false };
            } catch (error) {
              onError(error);
            }
            // Nothing readable yet, or the database is away: wait a tick before reading again.
            await pause(s, Math.min(waitMs, pollMs));
            return s.closed || closed ? done() : { events: [], closed: false };
          }
          if (s.buffer.length === 0) await pause(s, waitMs);
          if (s.closed || closed) return done();
          const events = s.buffer;
          s.buffer = [];
          if (events.length > 0) s.consumed = events[events.length - 1]!.chainIndex!;
          return { events, closed: false };
        },
      };
    },

    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      for (const s of [...subscribers]) {
        s.closed = true;
        subscribers.delete(s);
        wake(s);
      }
    },
  };
}
