import { createHash, createSecretKey } from 'node:crypto';
import { decodeJwt, errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { AgentTokenClaims, AgentTokens } from '../domain/agent-tokens.js';
import type { AgentTokenKey } from './agent-token-keys.js';

export type { AgentTokenClaims, AgentTokens } from '../domain/agent-tokens.js';

const ISSUER = 'vault';
const AUDIENCE = 'vault.v1';
/** Clock skew tolerated between the instances that issue and verify a token. */
export const CLOCK_LEEWAY_SECONDS = 5;
const MAX_TOKEN_CHARS = 2048;
/** Verified tokens remembered at most (their claims, by hash); past it the memory starts afresh. */
const VERIFIED_TOKENS_KEPT = 10_000;
const BASE64URL_PART = /^[A-Za-z0-9_-]+$/;

/**
 * Compact JWTs (HS256, `jose`) with `iss` and `aud` checked and a small clock leeway. Only the
 * canonical encoding is accepted: lenient base64url decoding would otherwise accept one token
 * under several spellings (a changed unused bit in the last character, `=` padding, `+/`, junk).
 */
export function createAgentTokens(keys: readonly AgentTokenKey[]): AgentTokens {
  if (keys.length === 0) throw new Error('agent tokens need at least one key');
  // Imported once as KeyObjects: handed raw bytes, jose imports the key again on every call.
  const signing = { kid: keys[0]!.kid, secret: createSecretKey(keys[0]!.secret) };
  const byKid = new Map(keys.map((k) => [k.kid, createSecretKey(k.secret)]));
  const verified = new Map<string, AgentTokenClaims>();

  return {
    async issue(claims) {
      return new SignJWT({ gen: claims.gen })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: signing.kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(claims.sub)
        .setIssuedAt(claims.iat)
        .setExpirationTime(claims.exp)
        .sign(signing.secret);
    },

    async verify(token, nowSeconds) {
      if (token.length > MAX_TOKEN_CHARS) return null;
      // A token whose signature was checked once needs no second check (its claims cannot change);
      // only its lifetime is judged again. Kept under a hash, not the token itself. Only canonical
      // tokens are ever kept, so a hit needs no canonical-encoding check either.
      const digest = createHash('sha256').update(token).digest('base64url');
      const known = verified.get(digest);
      if (known) {
        if (known.exp > nowSeconds - CLOCK_LEEWAY_SECONDS) return known;
        verified.delete(digest);
        return null;
      }
      if (!isCanonicalCompact(token)) return null;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(
          token,
          (header) => {
            const secret = typeof header.kid === 'string' ? byKid.get(header.kid) : undefined;
            if (!secret) throw new errors.JWSSignatureVerificationFailed('unknown key id');
            return secret;
          },
          {
            algorithms: ['HS256'],
            issuer: ISSUER,
            audience: AUDIENCE,
            requiredClaims: ['sub', 'iat', 'exp'],
            clockTolerance: CLOCK_LEEWAY_SECONDS,
            currentDate: new Date(nowSeconds * 1000),
          },
        ));
      } catch {
        return null;
      }
      const { sub, gen, iat, exp } = payload as JWTPayload & { gen?: unknown };
      if (typeof sub !== 'string' || !Number.isSafeInteger(gen) || typeof iat !== 'number' || typeof exp !== 'number') return null;
      const claims = { sub, gen: gen as number, iat, exp };
      if (verified.size >= VERIFIED_TOKENS_KEPT) verified.clear();
      verified.set(digest, claims);
      return claims;
    },
  };
}

/** Three base64url parts, each exactly as the encoder writes it (no padding, unused bits zero). */
function isCanonicalCompact(token: string): boolean {
  const parts = token.split('.');
  return parts.length === 3 && parts.every((part) => BASE64URL_PART.test(part) && Buffer.from(part, 'base64url').toString('base64url') === part);
}

/** Three base64url parts: a compact JWS, as our tokens are. */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/**
 * The agent a token says it is for, without checking it: only to count failed attempts per agent
 * id. Undefined when the token does not even parse.
 */

export function claimedAgentId(token: string): string | undefined {
  // Not a JWT (the root token, an API key): skip decoding, which would throw and catch per call.
  if (token.length > MAX_TOKEN_CHARS || !JWT_SHAPE.test(token)) return undefined;
  try {
    const { sub } = decodeJwt(token);
    return typeof sub === 'string' && sub.length <= 64 ? sub : undefined;
  } catch {
    return undefined;
  }
}
