import { StorageContentionError, StorageOverloadedError, StorageUnavailableError } from '../storage/storage-errors.js';
import type { StoredAuditEvent } from '../storage/storage.js';
import type { AccessControl } from './access-control.js';
import type { ChangeFeed } from './change-feed.js';
import { invalidArgument, notFound, outOfRange, permissionDenied, unavailable, VaultError } from './errors.js';
import type { CallContext } from './principal.js';
import type { VaultService } from './vault-service.js';
import { MAX_PATH_BYTES, quote, requirePath, requireUuid } from './validation.js';

export type SecretChangeType =
  | 'version_created'
  | 'version_disabled'
  | 'version_enabled'
  | 'version_promoted'
  | 'version_expired'
  | 'version_budget_spent'
  | 'secret_deleted';

/** A committed change to a secret as watchers see it: which version, who, when; never a value. */
export interface SecretChange {
  cursor: string;
  type: SecretChangeType;
  vaultId: string;
  path: string;
  /** 0 for secret_deleted (every version). */
  version: number;
  /** `root`, `system` or `agent:<id>`. */
  actor: string;
  time: Date;
  /** version_created only. */
  how: '' | 'put' | 'rotate' | 'scheduled';
  /** version_created only: `pending` when staged. */
  stage: '' | 'pending';
  /** version_promoted only: the version that was current (0: none). */
  replacedVersion: number;
}

export type WatchMessage = { kind: 'event'; event: SecretChange } | { kind: 'heartbeat'; cursor: string; time: Date };

export interface WatchRequest {
  vaultId: string;
  /** One exact path, or empty to follow `prefix`. */
  path: string;
  prefix: string;
  /** A cursor from an earlier event or heartbeat; empty: from now. */
  after: string;
}

/** Where a watch's messages go, and what it needs of the call carrying it. */
export interface WatchSink {
  /** Resolves when the transport can take the next message (backpressure from a slow client). */
  send(message: WatchMessage): Promise<void>;
  /** Aborted when the client has gone. */
  readonly signal: AbortSignal;
  /** The call's credential checked again, now; rejects (UNAUTHENTICATED) once it no longer authenticates. */
  reauthenticate(): Promise<CallContext>;
}

export interface SecretWatch {
  /** Streams changes to `sink` until the client leaves (resolves) or the stream must end (rejects). */
  watch(context: CallContext, request: WatchRequest, sink: WatchSink): Promise<void>;
}

const CURSOR = /^c:(0|[1-9][0-9]{0,15})$/;

/** Opaque to clients, so its form may change; today the event's chain index. */
export const encodeCursor = (chainIndex: number) => Buffer.from(`c:${chainIndex}`).toString('base64url');

export function decodeCursor(cursor: string): number {
  const match = /^[A-Za-z0-9_-]{1,32}$/.test(cursor) ? CURSOR.exec(Buffer.from(cursor, 'base64url').toString('latin1')) : null;
  const index = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(index)) throw invalidArgument(`after ${quote(cursor.slice(0, 64))} is not a cursor this vault issued: pass an event's cursor unchanged`);
  return index;
}

export function createSecretWatch({
  feed,
  access,
  vaults,
  heartbeatMs = 15_000,
  recheckMs = 1000,
}: {
  feed: ChangeFeed;
  access: AccessControl;
  vaults: Pick<VaultService, 'require'>;
  /** A heartbeat after this long without a message. */
  heartbeatMs?: number;
  /** How often the caller's credential and policies are checked again while nothing happens. */
  recheckMs?: number;
}): SecretWatch {
  return {
    async watch(initial, request, sink) {
      const { vaultId, path, prefix } = request;
      requireUuid('vault_id', vaultId);
      if (path && prefix) throw invalidArgument('set path (one secret) or prefix (every path under it), not both');
      if (path) requirePath(path);
      if (Buffer.byteLength(prefix) > MAX_PATH_BYTES) throw invalidArgument(`prefix must be at most ${MAX_PATH_BYTES} bytes`);
      const after = request.after ? decodeCursor(request.after) : undefined;
      const follows = path ? (p: string) => p === path : (p: string) => p.startsWith(prefix);

      // The listing's rule: access is decided before anything is said about the vault.
      if (path) await access.requireSecretAccess(initial, vaultId, 'read', path);
      let readable = await access.readablePaths(initial, vaultId);
      await vaults.require(initial, vaultId);
      const head = await feed.head();
      if (after !== undefined && after > head) throw outOfRange(`after is past the newest event of this vault's change stream; resume from a cursor it sent`);
      const subscription = feed.subscribe(after ?? head, head);
      const leave = () => subscription.close();
      sink.signal.addEventListener('abort', leave);

      /** Credential and policies as of now; ends the stream when they no longer allow it. */
      const recheck = async () => {
        const context = await sink.reauthenticate();
        const next = await access.readablePaths(context, vaultId);
        if (path && !next(path)) throw permissionDenied(`${context.principal.type} ${context.principal.id} may no longer read secret ${quote(path)} in vault ${vaultId}`);
        readable = next;
      };

      const clock = Date.now;
      let lastSent = clock();
      let lastChecked = clock();
      /** Matching changes read but not yet sent: they wait for a successful recheck. */
      let held: SecretChange[] = [];
      const heartbeat = async () => {
        // Resuming from it replays what is held back, and skips only what this stream has passed.
        const position = held.length > 0 ? decodeCursor(held[0]!.cursor) - 1 : subscription.position;
        await sink.send({ kind: 'heartbeat', cursor: encodeCursor(position), time: new Date() });
        lastSent = clock();
      };
      try {
        // At once, so the client knows the stream is open and holds a cursor before any event.
        await heartbeat();
        while (!sink.signal.aborted) {
          const due = Math.min(lastSent + heartbeatMs, lastChecked + (held.length > 0 ? HELD_RETRY_MS : recheckMs));
          const { events, closed } = await subscription.next(Math.max(0, due - clock()));
          if (sink.signal.aborted) return;
          if (closed) throw unavailable('the server is stopping: reconnect (to another instance) with the last cursor received');
          for (const event of events) {
            if (event.vaultId === vaultId && event.action === 'vault.delete' && event.outcome === 'success') throw notFound(`vault ${vaultId} has been deleted`);
            const change = toChange(event);
            if (change && change.vaultId === vaultId && follows(change.path)) held.push(change);
          }
          if (held.length > 0 || clock() >= lastChecked + recheckMs) {
            lastChecked = clock();
            if (await checkedAgain(recheck)) {
              const ready = held;
              held = [];
              for (const change of ready) {
                if (!readable(change.path)) continue;
                await sink.send({ kind: 'event', event: change });
                lastSent = clock();
              }
            }
          }
          if (clock() >= lastSent + heartbeatMs) await heartbeat();
        }
      } finally {
        sink.signal.removeEventListener('abort', leave);
        subscription.close();
      }
    },
  };
}

/** How soon changes held back by a failed re-check are tried again. */
const HELD_RETRY_MS = 100;

/**
 * Runs a re-check of the caller: false when storage could not answer (the stream goes on and
 * its events wait), a throw when the caller is refused or anything else went wrong.
 */
async function checkedAgain(recheck: () => Promise<void>): Promise<boolean> {
  try {
    await recheck();
    return true;
  } catch (error) {
    const transient =
      error instanceof StorageUnavailableError ||
      error instanceof StorageOverloadedError ||
      error instanceof StorageContentionError ||
      (error instanceof VaultError && error.code === 'unavailable');
    if (transient) return false;
    throw error;
  }
}

/** The change an audit event records, or undefined for events that change no secret. */
export function toChange(event: StoredAuditEvent): SecretChange | undefined {
  if (event.resourceType !== 'secret' || event.outcome !== 'success' || event.chainIndex === null) return undefined;
  const details = event.details ?? {};
  const version = typeof details.version === 'number' ? details.version : 0;
  const base = {
    cursor: encodeCursor(event.chainIndex),
    vaultId: event.vaultId,
    path: event.resourceId,
    version,
    actor: event.actorType === 'agent' ? `agent:${event.actorId}` : event.actorType,
    time: event.createdAt,
    how: '' as const,
    stage: '' as const,
    replacedVersion: 0,
  };
  switch (event.action) {
    case 'secret.write':
    case 'secret.rotate':
      return {
        ...base,
        type: 'version_created',
        how: event.action === 'secret.write' ? 'put' : details.scheduled === true ? 'scheduled' : 'rotate',
        stage: details.stage === 'pending' ? 'pending' : '',
      };
    case 'secret.disable':
      return { ...base, type: 'version_disabled' };
    case 'secret.enable':
      return { ...base, type: 'version_enabled' };
    case 'secret.promote':
      return { ...base, type: 'version_promoted', replacedVersion: typeof details.replaced === 'number' ? details.replaced : 0 };
    case 'secret.expire':
      return { ...base, type: 'version_expired' };
    case 'secret.budget_spent':
      return { ...base, type: 'version_budget_spent' };
    case 'secret.delete':
      return { ...base, type: 'secret_deleted', version: 0 };
    default:
      return undefined;
  }
}
