import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { randomBytes } from 'node:crypto';
import { hexToBytes, bytesToHex } from '@noble/hashes/utils.js';
import { KEY_ID_BYTES, type Keyring } from './keyring.js';

/**
 * Envelope encryption between the domain and storage (after Vault's barrier): every value gets
 * a fresh data key, the data key is wrapped by the current master key, and both AEADs bind the
 * caller's `context` (the row's identity) as associated data, so a ciphertext copied to another
 * row fails to open instead of returning another row's secret.
 *
 * Layout: format(1) | master key id(8) | wrap nonce(24) | wrapped data key(32+16)
 *         | value nonce(24) | sealed value(n+16)
 */
export interface Barrier {
  seal(plaintext: Uint8Array, context: Uint8Array): Uint8Array;
  /** Throws BarrierError when the blob is malformed, its key is unknown, or it fails to open. */
  open(blob: Uint8Array, context: Uint8Array): Uint8Array;
  /** The id of the master key that sealed a blob. */
  keyIdOf(blob: Uint8Array): string;
}

export class BarrierError extends Error {
  override readonly name = 'BarrierError';
}

const FORMAT_V1 = 1;
const NONCE = 24;
const TAG = 16;
const DATA_KEY = 32;
const HEADER = 1 + KEY_ID_BYTES;
const WRAPPED = NONCE + DATA_KEY + TAG;
export const BARRIER_OVERHEAD = HEADER + WRAPPED + NONCE + TAG;

export function createBarrier(keyring: Keyring): Barrier {
  const withHeader = (header: Uint8Array, context: Uint8Array) => concat(header, context);

  return {
    seal(plaintext, context) {
      const master = keyring.current;
      const header = concat(Uint8Array.of(FORMAT_V1), hexToBytes(master.id));
      const aad = withHeader(header, context);
      const dataKey = randomBytes(DATA_KEY);
      const wrapNonce = randomBytes(NONCE);
      const wrapped = xchacha20poly1305(master.key, wrapNonce, aad).encrypt(dataKey);
      const valueNonce = randomBytes(NONCE);
      const sealed = xchacha20poly1305(dataKey, valueNonce, aad).encrypt(plaintext);
      dataKey.fill(0);
      return concat(header, wrapNonce, wrapped, valueNonce, sealed);
    },

    open(blob, context) {
      if (blob.length < BARRIER_OVERHEAD || blob[0] !== FORMAT_V1) {
        throw new BarrierError('ciphertext is malformed or of an unknown format');
      }
      const keyId = this.keyIdOf(blob);
      const master = keyring.byId(keyId);
      if (!master) throw new BarrierError(`ciphertext was sealed by master key ${keyId}, which is not configured`);
      const aad = withHeader(blob.subarray(0, HEADER), context);
      let offset = HEADER;
      const take = (n: number) => blob.subarray(offset, (offset += n));
      const wrapNonce = take(NONCE);
      const wrapped = take(DATA_KEY + TAG);
      const valueNonce = take(NONCE);
      const sealed = blob.subarray(offset);
      try {
        const dataKey = xchacha20poly1305(master.key, wrapNonce, aad).decrypt(wrapped);
        const plaintext = xchacha20poly1305(dataKey, valueNonce, aad).decrypt(sealed);
        dataKey.fill(0);
        return plaintext;
      } catch {
        // The library's message says nothing useful and must not leak; the cause is always the same.
        throw new BarrierError('ciphertext failed authentication (tampered, moved or sealed by another key)');
      }
    },

    keyIdOf(blob) {
      return bytesToHex(blob.subarray(1, HEADER));
    },
  };
}

/** Encodes the parts of a row's identity unambiguously (length-prefixed) as associated data. */
export function encodeContext(...parts: Array<string | number>): Uint8Array {
  const chunks = parts.map((part) => new TextEncoder().encode(String(part)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + 4 + c.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const chunk of chunks) {
    view.setUint32(offset, chunk.length);
    out.set(chunk, offset + 4);
    offset += 4 + chunk.length;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
