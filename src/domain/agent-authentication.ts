import type { AgentRecord } from '../storage/storage.js';

/** Whether an agent may authenticate at all right now: active and not past its expiry. */
export function agentCanAuthenticate(agent: AgentRecord, at: Date): boolean {
  return agent.isActive && (!agent.expiresAt || agent.expiresAt.getTime() > at.getTime());
}
