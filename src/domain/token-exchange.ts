import type { AgentTokens } from './agent-tokens.js';
import { hashApiKey, looksLikeApiKey } from './api-key.js';
import { agentCanAuthenticate } from './agent-authentication.js';
import type { Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { unauthenticated } from './errors.js';
import { ANONYMOUS, type CallContext } from './principal.js';

export interface IssuedToken {
  accessToken: string;
  expiresIn: number;
  agentId: string;
}

/**
 * Exchanges an agent's API key for a short-lived token. Every failure (unknown key, agent_id of
 * another agent, inactive, expired) gives the same UNAUTHENTICATED answer and an audit event.
 */
export function createTokenExchange({ storage, tokens, now }: { storage: Pick<Storage, 'agents' | 'appendAudit'>; tokens: AgentTokens; now: () => Date }) {
  return {
    async exchange(context: CallContext, input: { apiKey: string; agentId: string }): Promise<IssuedToken> {
      const at = now();
      const agent = looksLikeApiKey(input.apiKey) ? await storage.agents.getByKeyHash(hashApiKey(input.apiKey)) : null;
      if (!agent || (input.agentId && input.agentId !== agent.id) || !agentCanAuthenticate(agent, at)) {
        await storage.appendAudit([
          auditEvent({ principal: ANONYMOUS, requestId: context.requestId }, at, { action: 'auth.failed', resourceType: 'token', resourceId: input.agentId.slice(0, 64), outcome: 'failure' }),
        ]);
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
