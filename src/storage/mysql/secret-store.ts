import type { AppendOptions, SecretStore, SecretVersionRecord } from '../storage.js';
import { VaultMissingError } from '../storage-errors.js';
import { insertAuditEvents } from './audit-log.js';
import { isMissingParent } from './constraint-errors.js';
import { asStored } from './row-mapping.js';
import {
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
  selectSchedule,
  selectNewestPerPath,
  selectVersion,
  spendRead,
  updateDisabled,
  updateSchedule,
} from './secret-queries.js';
import type { Sql } from './pool.js';
import { inTransaction, joinedCallTransaction, withConnection, type Database } from './transaction.js';
import { createKeyedQueue } from '../keyed-queue.js';

/** Each method is one transaction (or one autocommit read); see secret-queries.ts for the SQL. */
export function createSecretStore(db: Database): SecretStore {
  const queue = createKeyedQueue();
  // One write of a path at a time per instance (storage/keyed-queue.ts). Not inside a call
  // transaction: it holds its locks past this write, so a later write of the same call queued
  // behind a writer waiting for those locks would wait forever; it waits on the row lock instead.
  const onPath = <T>(vaultId: string, path: string, work: () => Promise<T>) =>
    joinedCallTransaction(db) ? work() : queue.run(`${vaultId}\u0000${path}`, work);
  return {
    // Counter bump, previous version, build, insert and audit commit together or not at all; a
    // retry after a deadlock calls build and audit again, which the interface allows.
    append: (vaultId, path, build, audit, options) =>
      onPath(vaultId, path, () => inTransaction(db, (sql) => appendIn(sql, vaultId, path, build, audit, options))),

    // The claim comes first: it locks the counter row, so the append below cannot deadlock with it.
    rotateDue: (due, build, audit) =>
      onPath(due.vaultId, due.path, () =>
        inTransaction(db, async (sql) => {
          if (!(await claimDueRotation(sql, due))) return null;
          return appendIn(sql, due.vaultId, due.path, build, audit, { stage: due.stage });
        }),
      ),

    dueRotations: (at, limit) => withConnection(db, (sql) => selectDueRotations(sql, at, limit)),

    schedule: (vaultId, path) => withConnection(db, (sql) => selectSchedule(sql, vaultId, path)),

    lookup: (vaultId, path, selector) => withConnection(db, (sql) => selectLookup(sql, vaultId, path, selector)),

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
): Promise<SecretVersionRecord> {
  const version = await claimNextVersion(sql, vaultId, path, stage).catch((error: unknown) => {
    // The counter row's foreign key is the vault check: no extra query on every write.
    throw isMissingParent(error) ? new VaultMissingError(vaultId) : error;
  });
  const previous = withPrevious ? await newestLiveVersion(sql, vaultId, path) : null;
  const fields = build({ version, previous });
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
