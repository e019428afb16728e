import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

/** A 32-byte master key and its id: the first 8 bytes of HMAC-SHA256(key, "vault key id"). */
export interface MasterKey {
  readonly id: string;
  readonly key: Uint8Array;
}

/**
 * The master keys this instance knows: one current key that seals new data, and older keys kept
 * only to open data sealed before a rotation.
 */
export interface Keyring {
  readonly current: MasterKey;
  byId(id: string): MasterKey | undefined;
  ids(): string[];
}

export const KEY_ID_BYTES = 8;

export function masterKey(key: Uint8Array): MasterKey {
  if (key.length !== 32) throw new Error(`a master key must be 32 bytes, got ${key.length}`);
  const id = bytesToHex(hmac(sha256, key, new TextEncoder().encode('vault key id')).subarray(0, KEY_ID_BYTES));
  return { id, key: Uint8Array.from(key) };
}

export function createKeyring(current: Uint8Array, old: Uint8Array[] = []): Keyring {
  const keys = [masterKey(current), ...old.map(masterKey)];
  const byId = new Map(keys.map((k) => [k.id, k]));
  return {
    current: keys[0]!,
    byId: (id) => byId.get(id),
    ids: () => [...byId.keys()],
  };
}

/** Derives a purpose-bound sub-key from the current master key (token signing, audit chain). */
export function deriveKey(master: MasterKey, purpose: string): Uint8Array {
  return hmac(sha256, master.key, new TextEncoder().encode(`vault derived key: ${purpose}`));
}
