import type { AuditService } from '../../domain/audit-service.js';
import { AuditServiceService, type AuditEvent } from '../../gen/vault/v1/audit_service.js';
import type { StoredAuditEvent } from '../../storage/storage.js';
import { defineService } from '../api-method.js';

/** vault.v1.AuditService. */
export function auditServiceMethods(audit: AuditService) {
  return defineService(AuditServiceService, {
    async listAuditEvents(context, request) {
      const events = await audit.list(context, {
        action: request.action,
        actorId: request.actorId,
        resourceId: request.resourceId,
        from: request.from,
        to: request.to,
        limit: request.limit,
        offset: request.offset,
        pageSize: request.pageSize,
        pageToken: request.pageToken,
      });
      return { events: events.items.map(toEvent), count: events.items.length, nextPageToken: events.nextPageToken };
    },
    async verifyAuditChain(context) {
      const verification = await audit.verify(context);
      return {
        chainValid: verification.chainValid,
        eventsVerified: verification.eventsVerified,
        eventsChecked: verification.eventsChecked,
        brokenAtEventId: verification.brokenAtEventId,
        scheme: { ...verification.scheme },
      };
    },
  });
}

function toEvent(e: StoredAuditEvent): AuditEvent {
  return {
    id: e.id,
    action: e.action,
    actorId: e.actorId,
    actorType: e.actorType,
    resourceType: e.resourceType,
    resourceId: e.resourceId,
    vaultId: e.vaultId,
    outcome: e.outcome,
    details: e.details ?? undefined,
    requestId: e.requestId,
    createdAt: e.createdAt,
    sequence: String(e.chainIndex ?? 0),
    hash: e.hash ?? '',
  };
}
