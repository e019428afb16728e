import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'ocv_';
const API_KEY_PATTERN = /^ocv_[A-Za-z0-9_-]{43}$/;

/** A new agent API key: `ocv_` + 32 random bytes as base64url (43 characters). */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function looksLikeApiKey(credential: string): boolean {
  return API_KEY_PATTERN.test(credential);
}

/**
 * What is stored instead of the key. The key carries 256 random bits, so a fast hash is enough
 * (no password-style stretching needed) and makes the lookup an indexed equality match.
 */
export function hashApiKey(key: string): Uint8Array {
  return createHash('sha256').update(key, 'utf8').digest();
}
