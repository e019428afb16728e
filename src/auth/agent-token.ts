import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKey, type Keyring } from '../crypto/keyring.js';

/** What an agent token asserts. `gen` is the agent's credential generation at issue time. */
export interface AgentTokenClaims {
  sub: string;
  gen: number;
  iat: number;
  exp: number;
}

/**
 * Short-lived agent tokens: compact JWTs (HS256) signed with a key every instance derives from
 * the master key, so any instance verifies any token without asking another. The header names
 * the master key id, so tokens survive a master key rotation for their short life.
 */
export interface AgentTokens {
  issue(claims: AgentTokenClaims): string;
  /** The claims of a well-signed, unexpired token, or null. Never throws on hostile input. */
  verify(token: string, nowSeconds: number): AgentTokenClaims | null;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export function createAgentTokens(keyring: Keyring): AgentTokens {
  const signingKey = (keyId: string) => {
    const master = keyring.byId(keyId);
    return master && deriveKey(master, 'agent-token');
  };
  const sign = (key: Uint8Array, input: string) => createHmac('sha256', key).update(input).digest();

  return {
    issue(claims) {
      const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: keyring.current.id }));
      const payload = b64url(JSON.stringify({ iss: 'vault', ...claims }));
      const input = `${header}.${payload}`;
      return `${input}.${b64url(sign(signingKey(keyring.current.id)!, input))}`;
    },

    verify(token, nowSeconds) {
      const parts = token.split('.');
      if (parts.length !== 3 || token.length > 2048) return null;
      const [header, payload, signature] = parts as [string, string, string];
      try {
        const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
        if (alg !== 'HS256' || typeof kid !== 'string') return null;
        const key = signingKey(kid);
        if (!key) return null;
        const expected = sign(key, `${header}.${payload}`);
        const given = Buffer.from(signature, 'base64url');
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<AgentTokenClaims>;
        if (typeof claims.sub !== 'string' || !Number.isInteger(claims.gen) || typeof claims.exp !== 'number' || typeof claims.iat !== 'number') return null;
        if (claims.exp <= nowSeconds) return null;
        return { sub: claims.sub, gen: claims.gen!, iat: claims.iat, exp: claims.exp };
      } catch {
        return null;
      }
    },
  };
}
