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
 * Two layouts; both start with format(1) | id of the master key that wraps the data key(8):
 *
 * - v1, as sealed: format 1 | key id | wrap nonce(24) | wrapped data key(32+16) | value nonce(24)
 *   | sealed value(n+16). Both AEADs bind format|key id|context.
 * - v2, re-wrapped under another master key by `rewrap`: format 2 | key id | sealed-under key
 *   id(8) | wrap nonce | wrapped data key | value nonce | sealed value. Only the wrap is new
 *   (binding format 2|key id|sealed-under id|context); the value's nonce and ciphertext are the
 *   v1 bytes unchanged, still bound to format 1|sealed-under id|context, so re-wrapping never
 *   touches a value.
 */
export interface Barrier {
  seal(plaintext: Uint8Array, context: Uint8Array): Uint8Array;
  /** Throws BarrierError when the blob is malformed, its key is unknown, or it fails to open. */
  open(blob: Uint8Array, context: Uint8Array): Uint8Array;
  /**
   * The same value with its data key wrapped by the current master key instead (the blob itself
   * when it already is). Opens only the data key, never the value. Throws BarrierError like `open`
   * when the data key cannot be unwrapped.
   */
  rewrap(blob: Uint8Array, context: Uint8Array): Uint8Array;
  /** The id of the master key that wraps a blob's data key. */
  keyIdOf(blob: Uint8Array): string;
}

export class BarrierError extends Error {
  override readonly name = 'BarrierError';
}

const FORMAT_V1 = 1;
const FORMAT_REWRAPPED = 2;
const NONCE = 24;
const TAG = 16;
const DATA_KEY = 32;
const HEADER = 1 + KEY_ID_BYTES;
const WRAPPED = NONCE + DATA_KEY + TAG;
export const BARRIER_OVERHEAD = HEADER + WRAPPED + NONCE + TAG;

/** A blob cut into its parts, with the associated data each AEAD binds (before the context). */
interface Parsed {
  keyId: string;
  wrapBinding: Uint8Array;
  valueBinding: Uint8Array;
  wrapNonce: Uint8Array;
  wrapped: Uint8Array;
  /** Value nonce and sealed value: the bytes a rewrap carries over unchanged. */
  valuePart: Uint8Array;
  sealedUnder: Uint8Array;
}

function parse(blob: Uint8Array): Parsed {
  const format = blob[0];
  const header = format === FORMAT_V1 ? HEADER : format === FORMAT_REWRAPPED ? HEADER + KEY_ID_BYTES : 0;
  if (header === 0 || blob.length < BARRIER_OVERHEAD + header - HEADER) {
    throw new BarrierError('ciphertext is malformed or of an unknown format');
  }
  const sealedUnder = blob.subarray(header - KEY_ID_BYTES, header);
  return {
    keyId: bytesToHex(blob.subarray(1, HEADER)),
    wrapBinding: blob.subarray(0, header),
    valueBinding: format === FORMAT_V1 ? blob.subarray(0, HEADER) : concat(Uint8Array.of(FORMAT_V1), sealedUnder),
    wrapNonce: blob.subarray(header, header + NONCE),
    wrapped: blob.subarray(header + NONCE, header + WRAPPED),
    valuePart: blob.subarray(header + WRAPPED),
    sealedUnder,
  };
}

export function createBarrier(keyring: Keyring): Barrier {
  const masterFor = (parsed: Parsed) => {
    const master = keyring.byId(parsed.keyId);
    if (!master) throw new BarrierError(`ciphertext was sealed by master key ${parsed.keyId}, which is not configured`);
    return master;
  };
  const failed = () => new BarrierError('ciphertext failed authentication (tampered, moved or sealed by another key)');
  const unwrap = (parsed: Parsed, context: Uint8Array) => {
    const master = masterFor(parsed);
    try {
      return xchacha20poly1305(master.key, parsed.wrapNonce, concat(parsed.wrapBinding, context)).decrypt(parsed.wrapped);
    } catch {
      // The library's message says nothing useful and must not leak; the cause is always the same.
      throw failed();
    }
  };

  return {
    seal(plaintext, context) {
      const master = keyring.current;
      const header = concat(Uint8Array.of(FORMAT_V1), hexToBytes(master.id));
      const aad = concat(header, context);
      const dataKey = randomBytes(DATA_KEY);
      const wrapNonce = randomBytes(NONCE);
      const wrapped = xchacha20poly1305(master.key, wrapNonce, aad).encrypt(dataKey);
      const valueNonce = randomBytes(NONCE);
      const sealed = xchacha20poly1305(dataKey, valueNonce, aad).encrypt(plaintext);
      dataKey.fill(0);
      return concat(header, wrapNonce, wrapped, valueNonce, sealed);
    },

    open(blob, context) {
      const parsed = parse(blob);
      const dataKey = unwrap(parsed, context);
      try {
        return xchacha20poly1305(dataKey, parsed.valuePart.subarray(0, NONCE), concat(parsed.valueBinding, context)).decrypt(parsed.valuePart.subarray(NONCE));
      } catch {
        throw failed();
      } finally {
        dataKey.fill(0);
      }
    },

    rewrap(blob, context) {
      const parsed = parse(blob);
      const current = keyring.current;
      if (parsed.keyId === current.id) return blob;
      const dataKey = unwrap(parsed, context);
      const header = concat(Uint8Array.of(FORMAT_REWRAPPED), hexToBytes(current.id), parsed.sealedUnder);
      const wrapNonce = randomBytes(NONCE);
      const wrapped = xchacha20poly1305(current.key, wrapNonce, concat(header, context)).encrypt(dataKey);
      dataKey.fill(0);
      return concat(header, wrapNonce, wrapped, parsed.valuePart);
    },

    keyIdOf(blob) {
      return bytesToHex(blob.subarray(1, HEADER));
    },
  };
}

const UTF8 = new TextEncoder();

/** Encodes the parts of a row's identity unambiguously (length-prefixed) as associated data. */
export function encodeContext(...parts: Array<string | number>): Uint8Array {
  const chunks = parts.map((part) => UTF8.encode(String(part)));
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
