import type { AgentTokens } from './agent-tokens.js';
import { hashApiKey, looksLikeApiKey } from './api-key.js';
import { agentCanAuthenticate } from './agent-authentication.js';
import type { Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import type { AuthFailureGuard } from './auth-failure-guard.js';
import { unauthenticated } from './errors.js';
import type { CallContext } from './principal.js';

export interface IssuedToken {
  accessToken: string;
  expiresIn: number;
  agentId: string;
}

/**
 * Exchanges an agent's API key for a short-lived token. Every failure (unknown key, agent_id of
 * another agent, inactive, expired) gives the same UNAUTHENTICATED answer and is counted and
 * audited by `failures`, which refuses an address or agent id with too many recent failures.
 */
export function createTokenExchange({
  storage,
  tokens,
  failures,
  now,
}: {
  storage: Pick<Storage, 'agents' | 'appendAudit'>;
  tokens: AgentTokens;
  /** Limits and audits failed exchanges, like failed authentications. */
  failures: AuthFailureGuard;
  now: () => Date;
}) {
  return {
    async exchange(context: CallContext, input: { apiKey: string; agentId: string }): Promise<IssuedToken> {
      const at = now();
      const source = { address: context.clientAddress, agentId: input.agentId ? input.agentId.slice(0, 64) : undefined };
      await failures.admit(source, context.requestId);
      const agent = looksLikeApiKey(input.apiKey) ? await storage.agents.getByKeyHash(hashApiKey(input.apiKey)) : null;
      if (!agent || (input.agentId && input.agentId !== agent.id) || !agentCanAuthenticate(agent, at)) {
        await failures.fail(source, context.requestId);
        throw unauthenticated('invalid agent credentials');
      }
      const iat = Math.floor(at.getTime() / 1000);
      // A token never outlives the agent.
      const exp = Math.min(iat + agent.tokenTtlSeconds, agent.expiresAt ? Math.floor(agent.expiresAt.getTime() / 1000) : Infinity);
      const accessToken = await tokens.issue({ sub: agent.id, gen: agent.credentialGeneration, iat, exp });
      await storage.appendAudit([
        auditEvent({ principal: { type: 'agent', id: agent.id }, requestId: context.requestId }, at, { action: 'token.issue', resourceType: 'token', resourceId: agent.id }),
      ]);
      return { accessToken, expiresIn: exp - iat, agentId: agent.id };
    },
  };
}

export type TokenExchange = ReturnType<typeof createTokenExchange>;
