import { randomBytes, randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { createPolicyAccessControl } from '../../src/domain/access-control.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createAuditChain } from '../../src/domain/audit-chain.js';
import { createAuditService } from '../../src/domain/audit-service.js';
import { VaultError } from '../../src/domain/errors.js';
import { ROOT, type CallContext } from '../../src/domain/principal.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';
import type { AuditRecord } from '../../src/storage/storage.js';

const root: CallContext = { principal: ROOT, requestId: 'r' };
const event = (i: number): AuditRecord => ({
  id: randomUUID(),
  action: 'secret.read',
  actorType: 'root',
  actorId: 'root',
  resourceType: 'secret',
  resourceId: `path/${i}`,
  vaultId: 'v',
  outcome: 'success',
  details: { version: i },
  requestId: `req-${i}`,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
});

describe('audit trail', () => {
  let storage: ReturnType<typeof createMemoryStorage>;
  let audit: ReturnType<typeof createAuditService>;
  const master = new Uint8Array(randomBytes(32));

  beforeEach(async () => {
    storage = createMemoryStorage();
    const now = () => new Date();
    const access = createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit, now });
    audit = createAuditService({ storage, access, chain: createAuditChain(createKeyring(master)) });
    await storage.appendAudit(Array.from({ length: 10 }, (_, i) => event(i + 1)));
  });

  const sealed = (index: number) => storage.auditRows.find((e) => e.chainIndex === index)!;

  it('verifies an untouched chain, including events sealed in several rounds', async () => {
    await audit.sealPending();
    await storage.appendAudit([event(11)]);
    const result = await audit.verify(root);
    expect(result).toMatchObject({ chainValid: true, eventsVerified: 11, eventsChecked: 11, brokenAtEventId: undefined });
    expect(result.scheme.algorithm).toBe('HMAC-SHA256');
  });

  it('reports the first edited event', async () => {
    await audit.sealPending();
    sealed(4).outcome = 'denied';
    sealed(7).actorId = 'someone-else';
    expect(await audit.verify(root)).toMatchObject({ chainValid: false, eventsVerified: 3, eventsChecked: 4, brokenAtEventId: sealed(4).id });
  });

  it('reports the event after a deleted one', async () => {
    await audit.sealPending();
    const next = sealed(6).id;
    storage.auditRows.splice(storage.auditRows.indexOf(sealed(5)), 1);
    expect(await audit.verify(root)).toMatchObject({ chainValid: false, eventsVerified: 4, brokenAtEventId: next });
  });

  it('reports events cut from the end', async () => {
    await audit.sealPending();
    const last = sealed(10).id;
    storage.auditRows.splice(storage.auditRows.indexOf(sealed(10)), 1);
    expect(await audit.verify(root)).toMatchObject({ chainValid: false, eventsVerified: 9, brokenAtEventId: last });
  });

  it('detects a re-hashed event: the link key is not in the database', async () => {
    await audit.sealPending();
    const forged = createAuditChain(createKeyring(new Uint8Array(randomBytes(32))));
    const row = sealed(2);
    row.action = 'secret.write';
    row.hash = forged.link(sealed(1).hash!, row, 2).hash;
    expect((await audit.verify(root)).brokenAtEventId).toBe(row.id);
  });

  it('keeps verifying after a master key rotation', async () => {
    await audit.sealPending();
    // The instance with the old key stops (and gives up the sealer lease); its successor seals.
    await audit.stopSealing();
    const rotated = createAuditService({
      storage,
      access: createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit, now: () => new Date() }),
      chain: createAuditChain(createKeyring(new Uint8Array(randomBytes(32)), [master])),
    });
    await storage.appendAudit([event(11)]);
    expect(await rotated.verify(root)).toMatchObject({ chainValid: true, eventsVerified: 11 });
  });

  it('seals on one instance at a time: the lease holder, until it stops; listing never waits for it', async () => {
    const second = createAuditService({
      storage,
      access: createPolicyAccessControl({ policies: storage.policies, appendAudit: storage.appendAudit, now: () => new Date() }),
      chain: createAuditChain(createKeyring(master)),
    });
    expect(await audit.sealPending()).toBe(10);
    await storage.appendAudit([event(11)]);
    // The first instance holds the sealer lease: the second neither seals nor fails.
    expect(await second.sealPending()).toBe(0);
    const listed = await second.list(root, { action: '', actorId: '', resourceId: 'path/11', from: undefined, to: undefined, limit: 0, offset: 0 });
    expect(listed.items.map((e) => [e.requestId, e.chainIndex])).toEqual([['req-11', null]]);
    await audit.stopSealing();
    expect(await second.sealPending()).toBe(1);
    expect(await second.verify(root)).toMatchObject({ chainValid: true, eventsVerified: 11 });
  });

  it('lists newest first with filters, and only for operators', async () => {
    const listed = (await audit.list(root, { action: '', actorId: '', resourceId: 'path/3', from: undefined, to: undefined, limit: 0, offset: 0 })).items;
    expect(listed.map((e) => e.requestId)).toEqual(['req-3']);
    expect(listed[0]!.chainIndex).toBe(3);
    const page = (await audit.list(root, { action: 'secret.read', actorId: 'root', resourceId: '', from: new Date(Date.UTC(2026, 0, 1, 0, 0, 5)), to: undefined, limit: 2, offset: 1 })).items;
    expect(page.map((e) => e.requestId)).toEqual(['req-9', 'req-8']);
    const agent: CallContext = { principal: { type: 'agent', id: 'a' }, requestId: 'r' };
    await expect(audit.verify(agent)).rejects.toBeInstanceOf(VaultError);
    await expect(audit.list(root, { action: '', actorId: '', resourceId: '', from: undefined, to: undefined, limit: 1001, offset: 0 })).rejects.toThrow(/limit/);
  });
});
