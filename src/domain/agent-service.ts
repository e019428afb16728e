import { randomUUID } from 'node:crypto';
import type { AccessControl } from './access-control.js';
import { generateApiKey, hashApiKey } from './api-key.js';
import type { AgentChanges, AgentRecord, Storage } from '../storage/storage.js';
import { auditEvent } from './audit-event.js';
import { agentEtag, etagPrecondition, requireEtag } from './etags.js';
import { invalidArgument, notFound, permissionDenied } from './errors.js';
import { createdKey, createdPosition, createPageTokens, isCreatedKey, listPage, type Page, type PageRequest, type PageTokens } from './paging.js';
import type { CallContext } from './principal.js';
import { requireFuture, requireIntRange, requireText, requireUuid } from './validation.js';

export const DEFAULT_TOKEN_TTL_SECONDS = 900;
export const TOKEN_TTL_RANGE = { min: 60, max: 86_400 } as const;

export interface CreateAgentInput {
  name: string;
  description: string;
  scopes: string[];
  expiresAt: Date | undefined;
  tokenTtlSeconds: number | undefined;
}

export interface UpdateAgentInput {
  name?: string;
  description?: string;
  isActive?: boolean;
  expiresAt?: Date;
  tokenTtlSeconds?: number;
  /** Compare-and-set: change the agent only if this is still its etag. */
  etag?: string;
}

/** Agents: machine identities with an API key (shown once) that operators manage. */
export interface AgentService {
  create(context: CallContext, input: CreateAgentInput): Promise<{ agent: AgentRecord; apiKey: string }>;
  get(context: CallContext, agentId: string): Promise<AgentRecord>;
  getSelf(context: CallContext): Promise<AgentRecord>;
  /** One page of agents, oldest first. */
  list(context: CallContext, page?: PageRequest): Promise<Page<AgentRecord>>;
  update(context: CallContext, agentId: string, input: UpdateAgentInput): Promise<AgentRecord>;
  /** `etag`, when given: only if it is still the agent's etag (here and in rotateKey). */
  delete(context: CallContext, agentId: string, etag?: string): Promise<void>;
  rotateKey(context: CallContext, agentId: string, etag?: string): Promise<{ agent: AgentRecord; apiKey: string }>;
}

export interface AgentServiceDeps {
  storage: Pick<Storage, 'agents'>;
  access: AccessControl;
  now: () => Date;
  /** Told after this instance changed an agent's credentials, so its caches drop them at once. */
  onCredentialsChanged?: () => void;
  pages?: PageTokens;
}

export function createAgentService({ storage, access, now, onCredentialsChanged = () => {}, pages = createPageTokens() }: AgentServiceDeps): AgentService {
  const event = (context: CallContext, action: string, agentId: string, at = now()) =>
    auditEvent(context, at, { action, resourceType: 'agent', resourceId: agentId });
  const missing = (agentId: string) => notFound(`agent ${agentId} does not exist`);
  const ifEtag = (agentId: string, etag: string | undefined) => etagPrecondition('agent', agentId, requireEtag(etag), agentEtag);

  function validScopes(scopes: string[]): string[] {
    if (scopes.length > 32) throw invalidArgument('scopes must have at most 32 entries');
    for (const scope of scopes) requireText('each scope', scope, { min: 1, max: 64 });
    return scopes;
  }

  return {
    async create(context, input) {
      access.requireOperator(context, 'create agents');
      const at = now();
      const apiKey = generateApiKey();
      const agent: AgentRecord = {
        id: randomUUID(),
        name: requireText('name', input.name.trim(), { min: 1, max: 128 }),
        description: requireText('description', input.description, { max: 1024 }),
        scopes: validScopes(input.scopes),
        isActive: true,
        tokenTtlSeconds: requireIntRange('token_ttl_seconds', input.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS, TOKEN_TTL_RANGE.min, TOKEN_TTL_RANGE.max),
        createdBy: context.principal.id,
        createdAt: at,
        expiresAt: requireFuture('expires_at', input.expiresAt, at),
        lastActiveAt: null,
        keyHash: hashApiKey(apiKey),
        credentialGeneration: 1,
      };
      await storage.agents.create(agent, [event(context, 'agent.create', agent.id, at)]);
      return { agent, apiKey };
    },

    async get(context, agentId) {
      access.requireOperator(context, 'read agents');
      requireUuid('agent_id', agentId);
      return (await storage.agents.get(agentId)) ?? Promise.reject(missing(agentId));
    },

    async getSelf(context) {
      if (context.principal.type !== 'agent') throw permissionDenied('only an agent has a record of its own; operators use GetAgent');
      return (await storage.agents.get(context.principal.id)) ?? Promise.reject(missing(context.principal.id));
    },

    async list(context, page = { pageSize: 0, pageToken: '' }) {
      access.requireOperator(context, 'list agents');
      return listPage(pages, { list: 'agents', context, params: [] }, page, {
        fetch: (after, limit) => storage.agents.list({ after: createdPosition(after), limit }),
        keyOf: createdKey,
        isKey: isCreatedKey,
      });
    },

    async update(context, agentId, input) {
      access.requireOperator(context, 'update agents');
      requireUuid('agent_id', agentId);
      const precondition = ifEtag(agentId, input.etag);
      const at = now();
      const changes: AgentChanges = {
        name: input.name === undefined ? undefined : requireText('name', input.name.trim(), { min: 1, max: 128 }),
        description: input.description === undefined ? undefined : requireText('description', input.description, { max: 1024 }),
        isActive: input.isActive,
        expiresAt: requireFuture('expires_at', input.expiresAt, at) ?? undefined,
        tokenTtlSeconds:
          input.tokenTtlSeconds === undefined
            ? undefined
            : requireIntRange('token_ttl_seconds', input.tokenTtlSeconds, TOKEN_TTL_RANGE.min, TOKEN_TTL_RANGE.max),
      };
      const updated = await storage.agents.update(agentId, changes, [event(context, 'agent.update', agentId, at)], precondition);
      if (!updated) throw missing(agentId);
      onCredentialsChanged();
      return updated;
    },

    async delete(context, agentId, etag) {
      access.requireOperator(context, 'delete agents');
      requireUuid('agent_id', agentId);
      const precondition = ifEtag(agentId, etag);
      if (!(await storage.agents.delete(agentId, [event(context, 'agent.delete', agentId)], precondition))) throw missing(agentId);
      onCredentialsChanged();
    },

    async rotateKey(context, agentId, etag) {
      access.requireOperator(context, 'rotate agent keys');
      requireUuid('agent_id', agentId);
      const precondition = ifEtag(agentId, etag);
      const apiKey = generateApiKey();
      const agent = await storage.agents.rotateKey(agentId, hashApiKey(apiKey), [event(context, 'agent.key_rotated', agentId)], precondition);
      if (!agent) throw missing(agentId);
      onCredentialsChanged();
      return { agent, apiKey };
    },
  };
}
