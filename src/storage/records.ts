/**
 * The rows the storage layer keeps. Storage is untrusted: it only ever sees ciphertext, never a
 * secret value, key or token. Absence is a value (`null`), not an error.
 */

/** A JSON object as stored in metadata, conditions and audit details. */
export type JsonObject = { [key: string]: unknown };

export interface VaultRecord {
  id: string;
  name: string;
  description: string;
  createdBy: string;
  createdByType: string;
  createdAt: Date;
}

/**
 * A version's place in staged rotation; a path has at most one version in each stage. Writes
 * without a stage make the new version `current` (the old current becomes `previous`); a
 * `pending` version is never served as latest until it is promoted.
 */
export type SecretStage = 'current' | 'previous' | 'pending';
export const SECRET_STAGES: readonly SecretStage[] = ['current', 'previous', 'pending'];

/** One version of a secret. `ciphertext` is null once the secret has been deleted (shredded). */
export interface SecretVersionRecord {
  id: string;
  vaultId: string;
  path: string;
  version: number;
  type: string;
  metadata: JsonObject | null;
  ciphertext: Uint8Array | null;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  /** 0 = unlimited. */
  maxAccessCount: number;
  accessCount: number;
  disabled: boolean;
  /** Set when the secret was deleted while this version existed; never readable again. */
  deleted: boolean;
  /** Null for a version with no stage (superseded, or deleted). */
  stage: SecretStage | null;
}

/** The fields of a new version that the caller decides once it knows the version number. */
export interface NewSecretVersion {
  id: string;
  type: string;
  metadata: JsonObject | null;
  ciphertext: Uint8Array;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  maxAccessCount: number;
  /** Replaces the path's rotation schedule (null removes it); undefined leaves it as it is. */
  schedule?: { policy: RotationSchedule; nextRotationAt: Date } | null;
}

/** How the vault rotates a path on its own (RotationPolicy in the API), validated. */
export interface RotationSchedule {
  intervalSeconds: number;
  length: number;
  charset: string;
  stage: 'current' | 'pending';
}

/** A path's schedule as stored, for display. */
export interface PathSchedule {
  policy: RotationSchedule | null;
  nextRotationAt: Date | null;
  lastRotatedAt: Date | null;
}

/** A schedule whose time has come. */
export interface DueRotation {
  vaultId: string;
  path: string;
  /** The path's next_rotation_at as read: the rotation claims it by this exact value. */
  dueAt: Date;
  policy: RotationSchedule;
}

/** A version whose expires_at has passed and whose expiry is not yet recorded. */
export interface ExpiredVersion {
  vaultId: string;
  path: string;
  version: number;
  expiresAt: Date;
}

/** What an append learns before it writes: the number it got and the path's newest version. */
export interface AppendContext {
  /** The number this version will have (previous highest + 1, never reused). */
  version: number;
  /**
   * The newest version that is not deleted, or null for a new (or deleted) path; also null when
   * the caller said it does not need it (`AppendOptions.withPrevious`), which saves a read.
   */
  previous: SecretVersionRecord | null;
}

export interface AppendOptions {
  /** Whether `build` needs the previous version (a rotation does, a plain put does not). Default true. */
  withPrevious?: boolean;
  /**
   * The new version's stage. `current` shifts the stages (the old current becomes previous, the
   * old previous loses its stage); `pending` replaces any pending version and leaves current and
   * previous alone. Default current. An option rather than a field `build` returns: a store may
   * move the stages in the same statement that claims the version number.
   */
  stage?: 'current' | 'pending';
}

/** Which version a read wants. */
export type VersionSelector = { kind: 'latest' } | { kind: 'number'; version: number } | { kind: 'stage'; stage: SecretStage };

/** What PromoteSecretVersion did. */
export type PromoteOutcome =
  /** The version is now current; `replaced` is the number of the one that became previous. */
  | { kind: 'promoted'; version: SecretVersionRecord; replaced: number | null }
  /** The version already was current; nothing changed and nothing was recorded. */
  | { kind: 'unchanged'; version: SecretVersionRecord }
  | { kind: 'disabled' }
  /** No such version, or the path is deleted. */
  | { kind: 'missing' };

/**
 * The state of a path as one read sees it. `latest` resolution picks the current version if it is
 * not disabled, else the newest version that is neither disabled, deleted nor pending; `number`
 * and `stage` pick that version whatever its state (a stage only among live versions).
 */
export interface SecretLookup {
  /** Whether the path has ever had a version. */
  exists: boolean;
  /** Whether the path is currently deleted (no live versions since the last delete). */
  deleted: boolean;
  /** The selected version, or null when there is none. */
  version: SecretVersionRecord | null;
}

/** One audit event as written to storage. Never carries a value, key or token. */
export interface AuditRecord {
  id: string;
  action: string;
  actorType: string;
  actorId: string;
  resourceType: string;
  resourceId: string;
  vaultId: string;
  outcome: string;
  details: JsonObject | null;
  requestId: string;
  createdAt: Date;
}

/** A machine identity. Its API key is kept only as a SHA-256 hash. */
export interface AgentRecord {
  id: string;
  name: string;
  description: string;
  scopes: string[];
  isActive: boolean;
  tokenTtlSeconds: number;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastActiveAt: Date | null;
  /** SHA-256 of the current API key. */
  keyHash: Uint8Array;
  /**
   * Bumped whenever the agent's credentials or grants change (key rotation, deactivation, a
   * policy on it): tokens name the generation they were issued under, so older ones stop working.
   */
  credentialGeneration: number;
}

/** The fields UpdateAgent may change; undefined leaves a field as it is. */
export interface AgentChanges {
  name?: string;
  description?: string;
  isActive?: boolean;
  expiresAt?: Date;
  tokenTtlSeconds?: number;
}

export interface PolicyRecord {
  id: string;
  vaultId: string;
  secretPathPattern: string;
  principalType: string;
  principalId: string;
  permissions: string[];
  conditions: JsonObject | null;
  expiresAt: Date | null;
  createdBy: string;
  createdByType: string;
  createdAt: Date;
  effect: 'allow' | 'deny';
  priority: number;
}

/** The fields UpdatePolicy may change; undefined leaves a field as it is. */
export interface PolicyChanges {
  permissions?: string[];
  conditions?: JsonObject;
  expiresAt?: Date;
  effect?: 'allow' | 'deny';
  priority?: number;
}

/** An audit event as stored, with its place in the HMAC chain once sealed. */
export interface StoredAuditEvent extends AuditRecord {
  /** Position in the log from 1, in the order events were written (the audit list's keyset key). */
  seq: number;
  /** Position in the chain from 1; null until the event is sealed. */
  chainIndex: number | null;
  /** Hex HMAC over the previous hash and this event; null until sealed. */
  hash: string | null;
  /** Id of the master key the chain key was derived from; null until sealed. */
  keyId: string | null;
}

export interface AuditFilter {
  action?: string;
  actorId?: string;
  resourceId?: string;
  from?: Date;
  to?: Date;
  limit: number;
  offset: number;
  /** Only events older than this `seq` (keyset paging, newest first). */
  beforeSeq?: number;
}

/** The last sealed link of the chain. */
export interface ChainHead {
  chainIndex: number;
  hash: string;
  eventId: string;
}

/** Computes one link: called in chain order with the previous link's hash ('' for the first). */
export type ChainLinker = (previousHash: string, event: AuditRecord, chainIndex: number) => { hash: string; keyId: string };

/**
 * One keyset page: at most `limit` rows that come after `after` in the list's own order (absent:
 * from the start). A list method given no page returns everything, as before pages existed.
 */
export interface KeysetPage<K> {
  after?: K;
  limit: number;
}

/** Where a list ordered by creation time, then id, has got to. */
export interface CreatedPosition {
  createdAt: Date;
  id: string;
}
