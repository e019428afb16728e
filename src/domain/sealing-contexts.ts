import { encodeContext } from '../crypto/barrier.js';
import type { SealedRef } from '../storage/storage.js';

/**
 * The associated data each kind of sealed item is bound to: its identity in storage, so a blob
 * copied to another row does not open. One place, used by sealing, opening and re-wrapping.
 */
export const secretContext = (vaultId: string, path: string, version: number) => encodeContext('secret', vaultId, path, version);

export const sealedKeyContext = (purpose: string, keyId: string) => encodeContext('sealed-key', purpose, keyId);

export function contextOf(ref: SealedRef): Uint8Array {
  return ref.kind === 'secret_version' ? secretContext(ref.vaultId, ref.path, ref.version) : sealedKeyContext(ref.purpose, ref.keyId);
}
