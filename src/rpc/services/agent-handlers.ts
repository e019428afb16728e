import type { AgentService } from '../../domain/agent-service.js';
import { agentEtag } from '../../domain/etags.js';
import type { TokenExchange } from '../../domain/token-exchange.js';
import { AgentServiceService, type Agent } from '../../gen/vault/v1/agent_service.js';
import { AuthServiceService } from '../../gen/vault/v1/auth_service.js';
import type { AgentRecord } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.AgentService. */
export function agentServiceMethods(agents: AgentService) {
  return defineService(AgentServiceService, {
    async createAgent(context, request) {
      const { agent, apiKey } = await agents.create(context, {
        name: request.name,
        description: request.description,
        scopes: request.scopes,
        expiresAt: request.expiresAt,
        tokenTtlSeconds: request.tokenTtlSeconds,
      });
      return { agent: toAgent(agent), apiKey };
    },
    async listAgents(context, request) {
      const page = await agents.list(context, { pageSize: request.pageSize, pageToken: request.pageToken });
      return { agents: page.items.map(toAgent), nextPageToken: page.nextPageToken };
    },
    async getAgentSelf(context) {
      return { agent: toAgent(await agents.getSelf(context)) };
    },
    async getAgent(context, request) {
      return { agent: toAgent(await agents.get(context, request.agentId)) };
    },
    async updateAgent(context, request) {
      const agent = await agents.update(context, request.agentId, {
        name: request.name,
        description: request.description,
        isActive: request.isActive,
        expiresAt: request.expiresAt,
        tokenTtlSeconds: request.tokenTtlSeconds,
        etag: request.etag,
      });
      return { agent: toAgent(agent) };
    },
    async deleteAgent(context, request) {
      await agents.delete(context, request.agentId, request.etag);
      return {};
    },
    async rotateAgentKey(context, request) {
      const { agent, apiKey } = await agents.rotateKey(context, request.agentId, request.etag);
      return { agent: toAgent(agent), apiKey };
    },
  });
}

/** vault.v1.AuthService: public, the API key in the body is the credential. */
export function authServiceMethods(exchange: TokenExchange) {
  return defineService(
    AuthServiceService,
    {
      async createAgentToken(context, request) {
        const issued = await exchange.exchange(context, { apiKey: request.apiKey, agentId: request.agentId });
        return { accessToken: issued.accessToken, tokenType: 'Bearer', expiresIn: issued.expiresIn, agentId: issued.agentId };
      },
    },
    { public: ['createAgentToken'] },
  );
}

function toAgent(a: AgentRecord): Agent {
  return {
    id: a.id,
    name: a.name,
    description: a.description,
    authMethod: 'api_key',
    scopes: a.scopes,
    isActive: a.isActive,
    tokenTtlSeconds: a.tokenTtlSeconds,
    createdAt: a.createdAt,
    expiresAt: a.expiresAt ?? undefined,
    lastActiveAt: a.lastActiveAt ?? undefined,
    // The hosted API spells created_by as a UUID: root has none, so it is left unset.
    createdBy: a.createdBy === 'root' ? undefined : a.createdBy,
    etag: agentEtag(a),
  };
}
