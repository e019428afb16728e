import { createHmac } from 'node:crypto';
import { deriveKey, type Keyring, type MasterKey } from '../crypto/keyring.js';
import type { AuditRecord, ChainLinker } from '../storage/storage.js';

export const AUDIT_SCHEME = {
  algorithm: 'HMAC-SHA256',
  chainStructure:
    'hash_n = HMAC-SHA256(K, hash_(n-1) || "\\n" || n || "\\n" || JSON([id, action, actor_type, actor_id, resource_type, resource_id, vault_id, outcome, details, request_id, created_at])), hash_0 = "", K derived from the master key named by key_id',
  hashField: 'hash',
  linkField: 'sequence',
  documentation: 'urn:vault:audit-chain:v1',
} as const;

/** The exact bytes an event's link covers; any edit to a stored field changes them. */
export function canonicalEvent(previousHash: string, event: AuditRecord, chainIndex: number): string {
  const body = JSON.stringify([
    event.id,
    event.action,
    event.actorType,
    event.actorId,
    event.resourceType,
    event.resourceId,
    event.vaultId,
    event.outcome,
    event.details,
    event.requestId,
    event.createdAt.toISOString(),
  ]);
  return `${previousHash}\n${chainIndex}\n${body}`;
}

/** The HMAC key of the links a master key makes. */
export const auditChainKey = (master: MasterKey) => deriveKey(master, 'audit-chain');

/**
 * Links and re-checks audit events with a key derived from the master key. Links made under a
 * master key no longer configured verify with `retiredKeys` (that key's chain key, kept sealed
 * under a current master key by a rewrap; see master-keys.ts).
 */
export function createAuditChain(keyring: Keyring, retiredKeys: ReadonlyMap<string, Uint8Array> = new Map()) {
  // Derived once per key, not once per event (the derivation is an HMAC of its own).
  const derived = new Map<string, Uint8Array | undefined>();
  const keyFor = (keyId: string) => {
    if (!derived.has(keyId)) {
      const master = keyring.byId(keyId);
      derived.set(keyId, master ? auditChainKey(master) : retiredKeys.get(keyId));
    }
    return derived.get(keyId);
  };
  const mac = (key: Uint8Array, input: string) => createHmac('sha256', key).update(input).digest('hex');

  const link: ChainLinker = (previousHash, event, chainIndex) => ({
    hash: mac(keyFor(keyring.current.id)!, canonicalEvent(previousHash, event, chainIndex)),
    keyId: keyring.current.id,
  });

  /** Whether a stored link is what its key makes of it. False when the key is unknown. */
  function verifies(previousHash: string, event: AuditRecord, chainIndex: number, keyId: string, hash: string): boolean {
    const key = keyFor(keyId);
    return key !== undefined && mac(key, canonicalEvent(previousHash, event, chainIndex)) === hash;
  }

  return { link, verifies };
}

export type AuditChain = ReturnType<typeof createAuditChain>;
