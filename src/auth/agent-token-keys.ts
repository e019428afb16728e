import { deriveKey, type Keyring } from '../crypto/keyring.js';

/** One HS256 key for agent tokens, named in the token header by `kid`. */
export interface AgentTokenKey {
  readonly kid: string;
  readonly secret: Uint8Array;
}

/**
 * The keys agent tokens are signed and verified with, derived once from the master keys: every
 * instance with the same master keys derives the same keys, so any instance verifies any token.
 * The first key signs; every key verifies the tokens whose header names its kid (the master key's
 * id), so tokens signed before a master key rotation keep verifying while the old key is configured.
 */
export function deriveAgentTokenKeys(keyring: Keyring): AgentTokenKey[] {
  const current = keyring.current.id;
  const ids = [current, ...keyring.ids().filter((id) => id !== current)];
  return ids.map((kid) => ({ kid, secret: deriveKey(keyring.byId(kid)!, 'agent-token') }));
}
