import { randomBytes } from 'node:crypto';

/** The rotation charsets, by their contract names. */
export const CHARSETS = {
  hex: '0123456789abcdef',
  base64: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
  alphanumeric: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  ascii: Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).join(''),
} as const;

export type Charset = keyof typeof CHARSETS;

export function isCharset(name: string): name is Charset {
  return Object.hasOwn(CHARSETS, name);
}

/**
 * Draws `length` characters uniformly from `alphabet` (at most 256 characters) by rejection
 * sampling: bytes at or above the largest multiple of the alphabet size are thrown away, so
 * `byte % size` has no modulo bias.
 */
export function randomString(length: number, alphabet: string, random: (n: number) => Uint8Array = randomBytes): string {
  const size = alphabet.length;
  if (size < 2 || size > 256) throw new RangeError('alphabet must have 2 to 256 characters');
  const limit = 256 - (256 % size);
  let out = '';
  while (out.length < length) {
    // Ask for a little more than needed so one draw usually suffices.
    for (const byte of random(Math.ceil((length - out.length) * 1.3) + 8)) {
      if (byte >= limit) continue;
      out += alphabet[byte % size];
      if (out.length === length) break;
    }
  }
  return out;
}
