import { randomUUID } from 'node:crypto';
import type { AuditRecord, JsonObject } from '../storage/storage.js';
import type { CallContext } from './principal.js';

/** Builds an audit event for a call. Callers pass identifiers only, never values or keys. */
export function auditEvent(
  context: CallContext,
  now: Date,
  event: { action: string; resourceType: string; resourceId: string; vaultId?: string; outcome?: string; details?: JsonObject },
): AuditRecord {
  return {
    id: randomUUID(),
    action: event.action,
    actorType: context.principal.type,
    actorId: context.principal.id,
    resourceType: event.resourceType,
    resourceId: event.resourceId,
    vaultId: event.vaultId ?? '',
    outcome: event.outcome ?? 'success',
    details: event.details ?? null,
    requestId: context.requestId,
    createdAt: now,
  };
}
