import { bytesToHex } from '@noble/hashes/utils.js';
import { compareBytes } from '../path-order.js';
import type { SealedBlob, SealedBlobStore, SealedKeyStore, SealedKind, SealedRef, SecretVersionRecord } from '../storage.js';

/** A stored blob and how to write it back: the memory store's rows are mutated in place. */
interface Slot {
  ref: SealedRef;
  get(): Uint8Array | null;
  set(blob: Uint8Array): void;
}

const keyIdOf = (blob: Uint8Array) => bytesToHex(blob.subarray(1, 9));
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** Orders refs as the MySQL store's primary keys do (binary columns, then version). */
function compareRefs(a: SealedRef, b: SealedRef): number {
  if (a.kind === 'secret_version' && b.kind === 'secret_version') {
    return compareBytes(a.vaultId, b.vaultId) || compareBytes(a.path, b.path) || a.version - b.version;
  }
  if (a.kind === 'sealed_key' && b.kind === 'sealed_key') return compareBytes(a.purpose, b.purpose) || compareBytes(a.keyId, b.keyId);
  throw new TypeError('cannot order refs of different kinds');
}

/** The sealed-blob and sealed-key stores over the memory store's rows. */
export function createMemorySealedStores(versions: () => Iterable<SecretVersionRecord>) {
  const sealedKeys = new Map<string, { purpose: string; keyId: string; blob: Uint8Array }>();
  const slotKey = (purpose: string, keyId: string) => JSON.stringify([purpose, keyId]);

  function slots(kind: SealedKind): Slot[] {
    if (kind === 'secret_version') {
      return [...versions()].map((v) => ({
        ref: { kind, vaultId: v.vaultId, path: v.path, version: v.version },
        get: () => v.ciphertext,
        set: (blob) => (v.ciphertext = Uint8Array.from(blob)),
      }));
    }
    return [...sealedKeys.values()].map((k) => ({
      ref: { kind, purpose: k.purpose, keyId: k.keyId },
      get: () => k.blob,
      set: (blob) => (k.blob = Uint8Array.from(blob)),
    }));
  }
  const slotAt = (ref: SealedRef) => slots(ref.kind).find((s) => compareRefs(s.ref, ref) === 0);

  const sealed: SealedBlobStore = {
    async countByKey() {
      const counts = new Map<string, { keyId: string; kind: SealedKind; count: number }>();
      for (const kind of ['secret_version', 'sealed_key'] as const) {
        for (const slot of slots(kind)) {
          const blob = slot.get();
          if (!blob) continue;
          const keyId = keyIdOf(blob);
          const entry = counts.get(`${kind}:${keyId}`) ?? { keyId, kind, count: 0 };
          entry.count++;
          counts.set(`${kind}:${keyId}`, entry);
        }
      }
      return [...counts.values()];
    },
    async listNotWrappedBy(kind, keyId, limit, after) {
      if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('listNotWrappedBy: limit must be a positive integer');
      return slots(kind)
        .filter((s) => {
          const blob = s.get();
          return blob !== null && keyIdOf(blob) !== keyId && (!after || compareRefs(s.ref, after) > 0);
        })
        .sort((a, b) => compareRefs(a.ref, b.ref))
        .slice(0, limit)
        .map((s): SealedBlob => ({ ref: s.ref, blob: Uint8Array.from(s.get()!) }));
    },
    async replace(ref, expected, next) {
      const slot = slotAt(ref);
      const blob = slot?.get();
      if (!slot || !blob || !sameBytes(blob, expected)) return false;
      slot.set(next);
      return true;
    },
  };

  const keys: SealedKeyStore = {
    async list(purpose) {
      return [...sealedKeys.values()]
        .filter((k) => k.purpose === purpose)
        .sort((a, b) => compareBytes(a.keyId, b.keyId))
        .map((k) => ({ keyId: k.keyId, blob: Uint8Array.from(k.blob) }));
    },
    async add(purpose, keyId, blob) {
      if (!sealedKeys.has(slotKey(purpose, keyId))) sealedKeys.set(slotKey(purpose, keyId), { purpose, keyId, blob: Uint8Array.from(blob) });
    },
  };

  return { sealed, sealedKeys: keys };
}
