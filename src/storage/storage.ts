import type {
  AgentChanges,
  AgentRecord,
  AppendContext,
  AppendOptions,
  AuditFilter,
  ChainHead,
  ChainLinker,
  CreatedPosition,
  KeysetPage,
  PolicyChanges,
  PolicyRecord,
  StoredAuditEvent,
  AuditRecord,
  NewSecretVersion,
  DueRotation,
  ExpiredVersion,
  PathSchedule,
  PromoteOutcome,
  SecretLookup,
  SecretVersionRecord,
  VaultRecord,
  VersionSelector,
} from './records.js';

export type * from './records.js';

/**
 * The storage seam. Two implementations (memory and MySQL) pass one contract suite
 * (`test/contract/storage-contract.ts`). Each method is atomic on its own: the MySQL store runs it
 * as one transaction, retried as a whole on deadlock or a multi-primary commit conflict, so a
 * callback given to a method may run more than once and must have no side effects but its result.
 *
 * Every method that changes state takes the audit events that record the change; they are
 * written in the same transaction, so nothing changes unrecorded.
 */
export interface Storage {
  readonly vaults: VaultStore;
  readonly secrets: SecretStore;
  readonly keyCanaries: KeyCanaryStore;
  readonly sealed: SealedBlobStore;
  readonly sealedKeys: SealedKeyStore;
  readonly agents: AgentStore;
  readonly policies: PolicyStore;
  readonly audit: AuditStore;
  readonly leases: LeaseStore;
  readonly idempotency: IdempotencyStore;
  /** Writes audit events on their own, e.g. for a read or a refused call. */
  appendAudit(events: AuditRecord[]): Promise<void>;
  /**
   * Resolves when the backing store answers and can serve (on a Galera node: ready and Synced),
   * without queueing behind calls; rejects otherwise, saying why.
   */
  ping(): Promise<void>;
  /** Cheap numbers for monitoring, read when metrics are scraped. */
  stats(): Promise<StorageStats>;
  close(): Promise<void>;
}

export interface StorageStats {
  /** The connection pool right now; absent for a store without one. */
  pool?: { size: number; inUse: number; waiting: number };
  /** When the oldest audit event not yet linked into the chain was written; null if none is pending. */
  oldestUnsealedAuditAt: Date | null;
}

/** Why a store ran a transaction again; told to an observer (metrics), never part of a result. */
export type RetryCause = 'deadlock' | 'lock_wait_timeout' | 'cluster_not_ready' | 'connection_lost';

export interface VaultStore {
  create(vault: VaultRecord, audit: AuditRecord[]): Promise<void>;
  get(id: string): Promise<VaultRecord | null>;
  /** Oldest first (created_at, then id). */
  list(page?: KeysetPage<CreatedPosition>): Promise<VaultRecord[]>;
  /** Removes the vault and everything in it. False if there was no such vault. */
  delete(id: string, audit: AuditRecord[]): Promise<boolean>;
}

export interface SecretStore {
  /**
   * Appends the next version of a path. `build` is called inside the transaction with the
   * number the version gets and the path's newest live version; it returns the new version's
   * fields (so the ciphertext can bind the version number) or throws to abort with nothing
   * written. Numbers are gapless and unique per path under any concurrency, and continue after a
   * delete. Also clears the path's deleted state. Throws VaultMissingError (storage-errors.ts)
   * when the vault does not exist, so callers need no separate existence check.
   */
  append(
    vaultId: string,
    path: string,
    build: (context: AppendContext) => NewSecretVersion,
    audit: (version: SecretVersionRecord) => AuditRecord[],
    options?: AppendOptions,
  ): Promise<SecretVersionRecord>;

  /**
   * A scheduled rotation: in one transaction, claims the due time with a conditional update
   * (`next_rotation_at = nextAt WHERE next_rotation_at = dueAt`), so of any number of instances
   * trying the same due time exactly one gets it, then appends like `append` and records
   * last_rotated_at. Null (nothing written) when the due time was already claimed, the schedule
   * changed, or the path was deleted.
   */
  rotateDue(
    due: { vaultId: string; path: string; dueAt: Date; nextAt: Date; at: Date; stage?: AppendOptions['stage'] },
    build: (context: AppendContext) => NewSecretVersion,
    audit: (version: SecretVersionRecord) => AuditRecord[],
  ): Promise<SecretVersionRecord | null>;

  /** Live paths whose next_rotation_at is at or before `at`, soonest first. */
  dueRotations(at: Date, limit: number): Promise<DueRotation[]>;

  /** The path's rotation schedule; null when the path does not exist. */
  schedule(vaultId: string, path: string): Promise<PathSchedule | null>;

  /** Reads the path's state and the selected version; spends nothing. */
  lookup(vaultId: string, path: string, selector: VersionSelector): Promise<SecretLookup>;

  /**
   * Spends one read of a version with a read budget: succeeds only while the version is not
   * disabled or deleted and `accessCount < maxAccessCount`. With N reads allowed and any number
   * of concurrent callers, exactly N calls return true. `audit` may be a function of the version's
   * access count after this read (under the row lock, so exact), e.g. to record the last read.
   */
  consumeRead(vaultId: string, path: string, version: number, audit: AuditRecord[] | ((spent: { accessCount: number }) => AuditRecord[])): Promise<boolean>;

  /**
   * Versions (deleted ones included) whose expires_at is at or before `at` and whose expiry is not
   * yet recorded, soonest first.
   */
  unrecordedExpiries(at: Date, limit: number): Promise<ExpiredVersion[]>;

  /**
   * Marks a version's expiry recorded, once (a conditional update on the mark): of any number of
   * concurrent callers, one gets true and writes `audit` with the mark. A deleted version is
   * marked without `audit` (false): its path's delete already ended it. False when already marked.
   */
  recordExpiry(vaultId: string, path: string, version: number, at: Date, audit: AuditRecord[]): Promise<boolean>;

  /** Every version of a path that is not deleted, newest first; `page.after` = versions below it. */
  listVersions(vaultId: string, path: string, page?: KeysetPage<number>): Promise<SecretVersionRecord[]>;

  /**
   * The newest version of each path that is not deleted (disabled ones included), ordered by
   * path bytes, optionally only paths starting with `prefix`; `page.after` = paths after it.
   */
  listLatest(vaultId: string, prefix: string, page?: KeysetPage<string>): Promise<SecretVersionRecord[]>;

  /**
   * Sets a version's disabled flag. False if the version does not exist (or is deleted).
   * `ifVersion` (here and below): when given, the change is made only if the path's newest
   * version number is that (0: none ever), checked in the same transaction under the path's
   * counter row; otherwise VersionMismatchError (storage-errors.ts) and nothing changes.
   */
  setDisabled(
    vaultId: string,
    path: string,
    version: number,
    disabled: boolean,
    audit: AuditRecord[],
    ifVersion?: number,
  ): Promise<boolean>;

  /**
   * Makes a live, enabled version `current`; the old current becomes `previous` and the old
   * previous loses its stage. Serialised with appends on the path. `audit` is written only when
   * something changed (`promoted`).
   */
  promote(vaultId: string, path: string, version: number, audit: (outcome: { replaced: number | null }) => AuditRecord[], ifVersion?: number): Promise<PromoteOutcome>;

  /**
   * Deletes a path: every version is marked deleted, loses its stage and its ciphertext is
   * erased; numbering is kept so a later append continues it. False if the path has no live version.
   */
  delete(vaultId: string, path: string, audit: AuditRecord[], ifVersion?: number): Promise<boolean>;
}

/**
 * One small sealed value per master key that ever sealed data here. At start the service opens
 * each, so it refuses to run with keys that cannot open what is stored.
 */
export interface KeyCanaryStore {
  list(): Promise<Array<{ keyId: string; canary: Uint8Array }>>;
  /** Adds the canary of a key unless one is already stored for it. */
  add(keyId: string, canary: Uint8Array): Promise<void>;
  /** Forgets a key's canary, once the key protects nothing here (after a rewrap). */
  remove(keyId: string): Promise<void>;
}

/** Where a sealed blob lives; the domain rebuilds the blob's associated data from it. */
export type SealedRef =
  | { kind: 'secret_version'; vaultId: string; path: string; version: number }
  | { kind: 'sealed_key'; purpose: string; keyId: string };
export type SealedKind = SealedRef['kind'];

export interface SealedBlob {
  ref: SealedRef;
  blob: Uint8Array;
}

/**
 * Every stored blob sealed under a master key (secret values and sealed keys; canaries have their
 * own store), so they can be re-wrapped under a new one. A blob starts with a format byte and
 * the 8-byte id of the master key wrapping it (crypto/barrier.ts): the only part storage reads.
 */
export interface SealedBlobStore {
  /** How many blobs each master key id (hex) wraps, per kind; kinds with none are left out. */
  countByKey(): Promise<Array<{ keyId: string; kind: SealedKind; count: number }>>;
  /**
   * Up to `limit` blobs of `kind` not wrapped by `keyId`, in a stable order, starting after
   * `after` (a ref this returned) or at the start.
   */
  listNotWrappedBy(kind: SealedKind, keyId: string, limit: number, after: SealedRef | null): Promise<SealedBlob[]>;
  /**
   * Replaces the blob at `ref` only if it still is `expected` (one conditional write): false when
   * it changed or went meanwhile, e.g. another instance re-wrapped it or the secret was deleted.
   */
  replace(ref: SealedRef, expected: Uint8Array, next: Uint8Array): Promise<boolean>;
}

/** Keys kept sealed under the master key, e.g. a retired master key's audit-chain key. */
export interface SealedKeyStore {
  list(purpose: string): Promise<Array<{ keyId: string; blob: Uint8Array }>>;
  /** Adds the sealed key unless one is stored for (purpose, keyId) already. */
  add(purpose: string, keyId: string, blob: Uint8Array): Promise<void>;
}

/**
 * A check on the current record (an etag compare-and-set, domain/etags.ts), run by a change
 * under the record's row lock in the change's own transaction, before anything is written. It
 * throws to refuse; the change then writes nothing.
 */
export type Precondition<T> = (current: T) => void;

export interface AgentStore {
  create(agent: AgentRecord, audit: AuditRecord[]): Promise<void>;
  get(id: string): Promise<AgentRecord | null>;
  /** The agent whose current key has this SHA-256 hash. */
  getByKeyHash(keyHash: Uint8Array): Promise<AgentRecord | null>;
  /** Oldest first (created_at, then id). */
  list(page?: KeysetPage<CreatedPosition>): Promise<AgentRecord[]>;
  /**
   * Applies the changes; bumps the credential generation when `isActive` changes, so tokens
   * issued before a deactivation never work again. Null if there is no such agent.
   */
  update(id: string, changes: AgentChanges, audit: AuditRecord[], precondition?: Precondition<AgentRecord>): Promise<AgentRecord | null>;
  /** Replaces the key hash and bumps the credential generation. Null if there is no such agent. */
  rotateKey(id: string, keyHash: Uint8Array, audit: AuditRecord[], precondition?: Precondition<AgentRecord>): Promise<AgentRecord | null>;
  /** Removes the agent and every policy naming it. False if there was no such agent. */
  delete(id: string, audit: AuditRecord[], precondition?: Precondition<AgentRecord>): Promise<boolean>;
  /** Records a successful authentication time (best effort, no audit). */
  touch(id: string, at: Date): Promise<void>;
}

/**
 * Policies per vault. Creating, updating or deleting a policy whose principal is an agent bumps
 * that agent's credential generation in the same transaction.
 */
export interface PolicyStore {
  create(policy: PolicyRecord, audit: AuditRecord[]): Promise<void>;
  /** Oldest first (created_at, then id). */
  list(vaultId: string, page?: KeysetPage<CreatedPosition>): Promise<PolicyRecord[]>;
  /** The policies of one vault naming one principal. */
  listFor(vaultId: string, principalId: string): Promise<PolicyRecord[]>;
  update(vaultId: string, id: string, changes: PolicyChanges, audit: AuditRecord[], precondition?: Precondition<PolicyRecord>): Promise<PolicyRecord | null>;
  delete(vaultId: string, id: string, audit: AuditRecord[], precondition?: Precondition<PolicyRecord>): Promise<boolean>;
}

/**
 * The audit trail. Events are written unsealed with the change they record (no lock shared by
 * every call); `seal` then links pending events into one HMAC chain in a short transaction of its
 * own, so only sealers contend, and an edited or deleted sealed row breaks the chain.
 */
export interface AuditStore {
  /** Newest first (by seq). */
  list(filter: AuditFilter): Promise<StoredAuditEvent[]>;
  /**
   * Seals up to `max` pending events in commit order; returns how many it sealed. With `fence`,
   * the seal commits only while that lease is still held with that fencing number, and throws
   * LeaseLostError (storage-errors.ts), writing nothing, otherwise.
   */
  seal(link: ChainLinker, max: number, fence?: Lease): Promise<number>;
  /** Sealed events with chainIndex > `after`, in chain order. */
  readChain(after: number, limit: number): Promise<StoredAuditEvent[]>;
  /** The last sealed link as the head row records it, or null for an empty chain. */
  head(): Promise<ChainHead | null>;
}

/**
 * Idempotency keys: a call's change and the response it answered commit together, so a repeat of
 * the call replays that response instead of changing anything again.
 */
export interface IdempotencyStore {
  /**
   * Runs `work` (the call: its store calls and the encoded response it returns) unless the claim's
   * key is already taken. On MySQL, `work` runs in one transaction that begins by inserting the
   * claim row and that every store call made inside `work` joins, so the change, its audit events
   * and the stored response commit together or not at all; like any transaction it may run more
   * than once. A concurrent call with the same key waits on that row until the first commits (then
   * replays it) or rolls back (then runs itself). A key whose row has expired by `claim.at` is
   * free again. Throws IdempotencyKeyReusedError (storage-errors.ts) when the key is taken with
   * another fingerprint; whatever `work` throws is rethrown with nothing kept.
   */
  run(claim: IdempotencyClaim, work: () => Promise<Uint8Array>): Promise<IdempotentOutcome>;
  /** Deletes up to `limit` keys that expired at or before `at`; returns how many. */
  deleteExpired(at: Date, limit: number): Promise<number>;
}

export interface IdempotencyClaim {
  /** 32 bytes naming (caller, method, key); the key itself is not kept. */
  key: Uint8Array;
  /** 32 bytes: a keyed hash of the request without its key. */
  fingerprint: Uint8Array;
  at: Date;
  expiresAt: Date;
}

export interface IdempotentOutcome {
  /** True when `response` is the stored answer of an earlier call, and `work` did not run. */
  replayed: boolean;
  response: Uint8Array;
}

/**
 * A cluster-wide lease (Kubernetes' Lease, with Kleppmann's fencing tokens): one row per name
 * with a holder, an expiry and a fencing number that grows every time the lease changes holder.
 * Expiry is judged by the store's clock (the database's, for MySQL), never an instance's, so
 * instances with skewed clocks still agree. A holder renews by acquiring again well before
 * `validUntil`, and passes the lease with every write it makes as the holder, so the store can
 * refuse the write of a holder that lost it (see AuditStore.seal).
 */
export interface LeaseStore {
  /**
   * Claims `name` for `holder` for `ttlMs`, or renews it when `holder` already has it (the fencing
   * number stays). Null while another holder's lease has not expired. Safe from any number of
   * instances on any nodes of a multi-primary cluster: at most one holder gets an unexpired lease.
   */
  acquire(name: string, holder: string, ttlMs: number): Promise<Lease | null>;
  /** Gives the lease up so another holder may claim it at once; a no-op when it is no longer held. */
  release(lease: Lease): Promise<void>;
}

export interface Lease {
  name: string;
  holder: string;
  /** Grows by at least one on every change of holder; a write carrying an older number is stale. */
  fencing: number;
  /**
   * By the caller's clock (Date.now() ms): the lease certainly holds until then, since it was
   * measured from before the claim was sent. Renew well before it.
   */
  validUntil: number;
}
