import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthenticated } from '../domain/errors.js';
import type { Principal } from '../domain/principal.js';
import { API_KEY_PREFIX } from '../domain/api-key.js';

/** Turns the credential a call carries into a Principal, or refuses with UNAUTHENTICATED. */
export interface Authenticator {
  /**
   * `authorization` is the raw header / metadata value, e.g. `Bearer abc`; `clientAddress` the
   * caller's IP as the transport resolved it, which failed attempts are counted against.
   */
  authenticate(authorization: string | undefined, requestId: string, clientAddress?: string): Promise<Principal>;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Extracts the token from an `Authorization: Bearer <token>` value. */
export function bearerToken(authorization: string | undefined): string {
  if (!authorization) throw unauthenticated('missing credentials: send "authorization: Bearer <token>"');
  const match = BEARER.exec(authorization);
  if (!match) throw unauthenticated('malformed credentials: expected "authorization: Bearer <token>"');
  return match[1]!;
}

/**
 * A constant-time check against one fixed secret (the root token): hashing first makes the
 * lengths equal, and the secret's own digest is computed once rather than on every call.
 */
export function matchesSecret(expected: string): (candidate: string) => boolean {
  const want = digest(expected);
  return (candidate) => timingSafeEqual(digest(candidate), want);
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Why a refused call failed, from the credential's shape alone: a closed set, safe as a metric label. */
export type AuthFailureReason = 'missing_credentials' | 'malformed_credentials' | 'invalid_api_key' | 'invalid_token' | 'invalid_credentials';

export function authFailureReason(authorization: string | undefined): AuthFailureReason {
  if (!authorization) return 'missing_credentials';
  const match = BEARER.exec(authorization);
  if (!match) return 'malformed_credentials';
  const credential = match[1]!;
  if (credential.startsWith(API_KEY_PREFIX)) return 'invalid_api_key';
  if (/^[\w-]+\.[\w-]+\.[\w-]+$/.test(credential)) return 'invalid_token';
  return 'invalid_credentials';
}
