import { agentCanAuthenticate } from '../domain/agent-authentication.js';
import type { AuthFailureGuard } from '../domain/auth-failure-guard.js';
import { unauthenticated, VaultError } from '../domain/errors.js';
import { ROOT, type Principal } from '../domain/principal.js';
import type { AgentRecord, AgentStore } from '../storage/storage.js';
import { claimedAgentId, type AgentTokens } from './agent-token.js';
import { hashApiKey, looksLikeApiKey } from '../domain/api-key.js';
import { bearerToken, matchesSecret, type Authenticator } from './authenticator.js';

/** How long an instance may trust an agent record it read: revocations apply within this. */
export const AGENT_CACHE_MS = 1000;
/** last_active_at is written at most this often per agent and instance. */
const TOUCH_EVERY_MS = 60_000;

export interface CredentialAuthenticatorDeps {
  rootToken: string;
  agents: Pick<AgentStore, 'get' | 'getByKeyHash' | 'touch'>;
  tokens: AgentTokens;
  /** Limits and audits failed attempts (per client address and per agent id). */
  failures: AuthFailureGuard;
  now: () => Date;
}

/**
 * Accepts the root token, an agent's raw `ocv_` API key, or an agent token. Every failure is the
 * same UNAUTHENTICATED answer (no hint whether the agent exists) and is counted and audited by
 * `failures`; an address or agent id with too many recent failures gets RESOURCE_EXHAUSTED. The
 * credential itself is never logged or recorded.
 */
export interface CredentialAuthenticator extends Authenticator {
  /** Drops what this instance remembers about agents, after it changed one's credentials. */
  forgetAgents(): void;
}

export function createCredentialAuthenticator({ rootToken, agents, tokens, failures, now }: CredentialAuthenticatorDeps): CredentialAuthenticator {
  const byId = new Map<string, { agent: AgentRecord | null; until: number }>();
  const byKey = new Map<string, { agent: AgentRecord | null; until: number }>();
  const touched = new Map<string, number>();
  const isRootToken = matchesSecret(rootToken);

  async function cached(cache: typeof byId, key: string, load: () => Promise<AgentRecord | null>) {
    const at = now().getTime();
    const hit = cache.get(key);
    if (hit && hit.until > at) return hit.agent;
    const agent = await load();
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { agent, until: at + AGENT_CACHE_MS });
    return agent;
  }

  async function resolve(credential: string, at: Date): Promise<Principal | null> {
    if (isRootToken(credential)) return ROOT;
    let agent: AgentRecord | null;
    if (looksLikeApiKey(credential)) {
      const hash = hashApiKey(credential);
      agent = await cached(byKey, Buffer.from(hash).toString('hex'), () => agents.getByKeyHash(hash));
    } else {
      const claims = await tokens.verify(credential, Math.floor(at.getTime() / 1000));
      if (!claims) return null;
      agent = await cached(byId, claims.sub, () => agents.get(claims.sub));
      if (agent && agent.credentialGeneration !== claims.gen) return null;
    }
    if (!agent || !agentCanAuthenticate(agent, at)) return null;
    touch(agent.id, at);
    return { type: 'agent', id: agent.id, generation: agent.credentialGeneration };
  }

  function touch(agentId: string, at: Date) {
    const last = touched.get(agentId) ?? 0;
    if (at.getTime() - last < TOUCH_EVERY_MS) return;
    touched.set(agentId, at.getTime());
    agents.touch(agentId, at).catch(() => touched.delete(agentId));
  }

  return {
    forgetAgents() {
      byId.clear();
      byKey.clear();
    },

    async authenticate(authorization, requestId, clientAddress) {
      const at = now();
      let credential: string | undefined;
      let principal: Principal | null = null;
      // Made only on failure: an error (and its stack) per successful call was a cost a profile showed.
      let failure: VaultError | undefined;
      try {
        credential = bearerToken(authorization);
      } catch (error) {
        if (!(error instanceof VaultError) || error.code !== 'unauthenticated') throw error;
        failure = error;
      }
      const source = { address: clientAddress, agentId: credential === undefined ? undefined : claimedAgentId(credential) };
      await failures.admit(source, requestId);
      if (credential !== undefined) principal = await resolve(credential, at);
      if (principal) return principal;
      await failures.fail(source, requestId);
      throw failure ?? unauthenticated('invalid credentials');
    },
  };
}
