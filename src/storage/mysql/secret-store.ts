import type { AppendOptions, SecretStore, SecretVersionRecord } from '../storage.js';
import { VaultMissingError } from '../storage-errors.js';
import { insertAuditEvents } from './audit-log.js';
import { duplicateKey, isMissingParent } from './constraint-errors.js';
import { asStored } from './row-mapping.js';
import {
  bumpCounter,
  claimDueRotation,
  claimNextVersion,
  makeCurrent,
  insertVersion,
  lockLivePath,
  markDeleted,
  markExpiryRecorded,
  newestLiveVersion,
  requireNewestVersion,
  selectLiveVersions,
  selectDueRotations,
  selectUnrecordedExpiries,
  selectLookup,
  selectCurrentLookups,
  selectLatestReadable,
  isSettled,
  selectSchedule,
  selectNewestPerPath,
  selectVersion,
  spendRead,
  updateDisabled,
  updateSchedule,
} from './secret-queries.js';
import { isGaleraPool, type Sql } from './pool.js';
import { inTransaction, joinedCallTransaction, withConnection, type Database } from './transaction.js';
import { createKeyedQueue } from '../keyed-queue.js';
import { createBatchedReads } from '../batched-reads.js';
import { currentCallLimits, requireCallAlive, type CallLimits } from '../call-deadline.js';
import type { SecretLookup } from '../records.js';

/**
 * Concurrent latest-version reads share a statement: up to 16 in one, two statements at a time
 * (so a read never waits for more than one batch ahead of it).
 */
const LOOKUP_BATCHING = { maxItems: 16, inFlight: 2 };

function callGone(limits: CallLimits): Error | undefined {
  try {
    requireCallAlive(limits);
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

/** Each method is one transaction (or one autocommit read); see secret-queries.ts for the SQL. */
export function createSecretStore(db: Database): SecretStore {
  const queue = createKeyedQueue();
  const currentLookups = createBatchedReads<{ vaultId: string; path: string; limits: CallLimits }, SecretLookup>(
    async (reads) => {
      // A read whose caller stopped waiting is answered as such and not sent.
      const gone = reads.map((r) => callGone(r.limits));
      const alive = reads.filter((_, i) => gone[i] === undefined);
      const found = alive.length === 0 ? [] : await withConnection(db, (sql) => selectCurrentLookups(sql, alive), {});
      let next = 0;
      return gone.map((error) => error ?? found[next++]!);
    },
    LOOKUP_BATCHING,
  );
  const lastVersions = createVersionMemory();
  /**
   * A plain write (no previous version needed) on one server, outside a call transaction, goes in
   * one round trip when this instance knows the path's last number: see tryPredicted.
   */
  const predictable = (options: AppendOptions | undefined) => options?.withPrevious === false && !isGaleraPool(db.pool) && !joinedCallTransaction(db);
  // One write of a path at a time per instance (storage/keyed-queue.ts). Not inside a call
  // transaction: it holds its locks past this write, so a later write of the same call queued
  // behind a writer waiting for those locks would wait forever; it waits on the row lock instead.
  const onPath = <T>(vaultId: string, path: string, work: () => Promise<T>) =>
    joinedCallTransaction(db) ? work() : queue.run(pathKey(vaultId, path), work);
  return {
    // Counter bump, previous version, build, insert and audit commit together or not at all; a
    // retry after a deadlock calls build and audit again, which the interface allows.
    append: (vaultId, path, build, audit, options) =>
      onPath(vaultId, path, async () => {
        const predicted = predictable(options) ? lastVersions.next(vaultId, path) : undefined;
        const guessed = predicted === undefined ? null : await tryPredicted(() => inTransaction(db, (sql) => appendIn(sql, vaultId, path, build, audit, options, predicted)));
        const created = guessed ?? (await inTransaction(db, (sql) => appendIn(sql, vaultId, path, build, audit, options)));
        // Only a committed number is remembered: a call transaction may still roll back.
        if (!joinedCallTransaction(db)) lastVersions.saw(vaultId, path, created.version);
        return created;
      }).catch((error: unknown) => {
        // The counter row's foreign key is the vault check: no extra query on every write.
        throw isMissingParent(error) ? new VaultMissingError(vaultId) : error;
      }),

    // The claim comes first: it locks the counter row, so the append below cannot deadlock with it.
    rotateDue: (due, build, audit) =>
      onPath(due.vaultId, due.path, async () => {
        const created = await inTransaction(db, async (sql) => {
          if (!(await claimDueRotation(sql, due))) return null;
          return appendIn(sql, due.vaultId, due.path, build, audit, { stage: due.stage });
        });
        // So the next plain write of the path guesses its number right.
        if (created && !joinedCallTransaction(db)) lastVersions.saw(due.vaultId, due.path, created.version);
        return created;
      }),

    dueRotations: (at, limit) => withConnection(db, (sql) => selectDueRotations(sql, at, limit)),

    schedule: (vaultId, path) => withConnection(db, (sql) => selectSchedule(sql, vaultId, path)),

    lookup: async (vaultId, path, selector) => {
      // The hot read: batched with other calls' unless it must see this call's own transaction.
      if (selector.kind === 'latest' && !joinedCallTransaction(db)) {
        const current = await currentLookups({ vaultId, path, limits: currentCallLimits() });
        return isSettled(current) ? current : withConnection(db, (sql) => selectLatestReadable(sql, vaultId, path));
      }
      return withConnection(db, (sql) => selectLookup(sql, vaultId, path, selector));
    },

    // Not queued per path like the writes: a budgeted read touches only its version's row, so
    // concurrent readers just take turns on that row lock (held from the UPDATE to the COMMIT).
    // The record follows the spend, since it may depend on the count the spend reached.
    consumeRead: (vaultId, path, version, audit) =>
      inTransaction(db, async (sql) => {
        const accessCount = await spendRead(sql, vaultId, path, version);
        if (accessCount === null) return false;
        await insertAuditEvents(sql, typeof audit === 'function' ? audit({ accessCount }) : audit);
        return true;
      }),

    unrecordedExpiries: (at, limit) => withConnection(db, (sql) => selectUnrecordedExpiries(sql, at, limit)),

    // One row, no path lock: the mark's condition is the claim. A live version is recorded with its
    // event; failing that, a deleted one is marked silently so it leaves the scan.
    recordExpiry: (vaultId, path, version, at, audit) =>
      inTransaction(db, async (sql) => {
        if (await markExpiryRecorded(sql, vaultId, path, version, at, false)) {
          await insertAuditEvents(sql, audit);
          return true;
        }
        await markExpiryRecorded(sql, vaultId, path, version, at, true);
        return false;
      }),

    listVersions: (vaultId, path, page) => withConnection(db, (sql) => selectLiveVersions(sql, vaultId, path, page)),

    listLatest: (vaultId, prefix, page) => withConnection(db, (sql) => selectNewestPerPath(sql, vaultId, prefix, page)),

    setDisabled: (vaultId, path, version, disabled, audit, ifVersion) =>
      onPath(vaultId, path, () =>
        inTransaction(db, async (sql) => {
          await requireNewestVersion(sql, vaultId, path, ifVersion);
          if (!(await updateDisabled(sql, vaultId, path, version, disabled))) return false;
          await insertAuditEvents(sql, audit);
          return true;
        }),
      ),

    // The counter row lock first, as in append, so promotions and appends of a path take turns.
    promote: (vaultId, path, version, audit, ifVersion) =>
      onPath(vaultId, path, () =>
        inTransaction(db, async (sql) => {
          await requireNewestVersion(sql, vaultId, path, ifVersion);
          if (!(await lockLivePath(sql, vaultId, path))) return { kind: 'missing' } as const;
          const found = await selectVersion(sql, vaultId, path, version);
          if (!found || found.deleted) return { kind: 'missing' } as const;
          if (found.disabled) return { kind: 'disabled' } as const;
          if (found.stage === 'current') return { kind: 'unchanged', version: found } as const;
          const current = await selectLookup(sql, vaultId, path, { kind: 'stage', stage: 'current' });
          const replaced = current.version?.version ?? null;
          await makeCurrent(sql, vaultId, path, version);
          await insertAuditEvents(sql, audit({ replaced }));
          return { kind: 'promoted', version: { ...found, stage: 'current' }, replaced } as const;
        }),
      ),

    delete: (vaultId, path, audit, ifVersion) =>
      onPath(vaultId, path, () =>
        inTransaction(db, async (sql) => {
          await requireNewestVersion(sql, vaultId, path, ifVersion);
          if (!(await markDeleted(sql, vaultId, path))) return false;
          await insertAuditEvents(sql, audit);
          return true;
        }),
      ),
  };
}

/** Counter bump with the stage shift, previous version (if wanted), build, insert, schedule and audit, on the caller's transaction. */
async function appendIn(
  sql: Sql,
  vaultId: string,
  path: string,
  build: Parameters<SecretStore['append']>[2],
  audit: Parameters<SecretStore['append']>[3],
  { withPrevious = true, stage = 'current' }: AppendOptions = {},
  predicted?: number,
): Promise<SecretVersionRecord> {
  let version: number;
  if (predicted === undefined) version = await claimNextVersion(sql, vaultId, path, stage);
  else {
    await bumpCounter(sql, vaultId, path, stage);
    version = predicted;
  }
  const previous = withPrevious ? await newestLiveVersion(sql, vaultId, path) : null;
  const fields = predicted === undefined ? build({ version, previous }) : buildForGuess(build, { version, previous });
  const created: SecretVersionRecord = {
    id: fields.id,
    vaultId,
    path,
    version,
    type: fields.type,
    // As it will read back, so the returned record equals a later lookup.
    metadata: asStored(fields.metadata),
    // A view, not a copy: the sealed bytes are this call's own.
    ciphertext: Buffer.from(fields.ciphertext.buffer, fields.ciphertext.byteOffset, fields.ciphertext.byteLength),
    createdBy: fields.createdBy,
    createdAt: new Date(fields.createdAt),
    expiresAt: fields.expiresAt && new Date(fields.expiresAt),
    maxAccessCount: fields.maxAccessCount,
    accessCount: 0,
    disabled: false,
    deleted: false,
    stage,
  };
  await insertVersion(sql, created);
  if (fields.schedule !== undefined) await updateSchedule(sql, vaultId, path, fields.schedule);
  await insertAuditEvents(sql, audit(created));
  return created;
}

/**
 * Runs an append that sealed its value for a predicted number: the last number this instance saw
 * committed on the path, plus one. Its counter bump then needs no answer, and the whole
 * transaction (START, bump, version row, audit, COMMIT) goes in one round trip with the counter
 * row locked only while the server runs it. Null when the number was taken, for a normal append.
 *
 * Why a wrong guess cannot commit: the counter only grows, and only a committed append moves it,
 * so the bump yields the predicted number or a higher one; a higher one means a committed append
 * took the predicted number, whose version row exists, so this INSERT of it fails on the primary
 * key, and on one server that error ends the batch before its COMMIT (transaction-sql.ts), and
 * the transaction is rolled back. (Not on Galera, nor in a call transaction, whose earlier
 * statements a failed one does not undo: `predictable` keeps those out.)
 */
async function tryPredicted(append: () => Promise<SecretVersionRecord>): Promise<SecretVersionRecord | null> {
  try {
    return await append();
  } catch (error) {
    if (duplicateKey(error) === 'PRIMARY' || error instanceof RefusedGuess) return null;
    throw error;
  }
}

/**
 * `build` may refuse a number (a compare-and-set sees the wrong predecessor), and a guessed one
 * may be wrong: its refusal is not the answer, the normal append's is. (Build is pure, so one
 * that refuses the right number refuses it again there.)
 */
function buildForGuess(build: Parameters<SecretStore['append']>[2], context: Parameters<Parameters<SecretStore['append']>[2]>[0]) {
  try {
    return build(context);
  } catch (error) {
    throw new RefusedGuess({ cause: error });
  }
}

class RefusedGuess extends Error {
  constructor(options: { cause: unknown }) {
    super('the append refused a guessed version number', options);
  }
}

/** One path as a map key (NUL cannot occur in a vault id). */
const pathKey = (vaultId: string, path: string) => `${vaultId}\u0000${path}`;

/** The last version number this instance saw committed per path, for the newest 10,000 paths. */
function createVersionMemory(capacity = 10_000) {
  const last = new Map<string, number>();
  return {
    next(vaultId: string, path: string): number | undefined {
      const seen = last.get(pathKey(vaultId, path));
      return seen === undefined ? undefined : seen + 1;
    },
    saw(vaultId: string, path: string, version: number) {
      const key = pathKey(vaultId, path);
      // Deleted and set again so the map's order is by recency, and the oldest goes first.
      last.delete(key);
      last.set(key, version);
      if (last.size > capacity) last.delete(last.keys().next().value!);
    },
  };
}
