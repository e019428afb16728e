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
}

/** What an append learns before it writes: the number it got and the path's newest version. */
export interface AppendContext {
  /** The number this version will have (previous highest + 1, never reused). */
  version: number;
  /** The newest version that is not deleted, or null for a new (or deleted) path. */
  previous: SecretVersionRecord | null;
}

/** Which version a read wants. */
export type VersionSelector = { kind: 'latest' } | { kind: 'number'; version: number };

/**
 * The state of a path as one read sees it. `latest` resolution picks the newest version that is
 * neither disabled nor deleted; `number` picks that version whatever its state.
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
