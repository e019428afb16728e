import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createExpiryRecorder } from '../../src/domain/expiry-recorder.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';

/** The recorder on memory storage with a hand-moved clock: a backlog, and two instances' recorders. */
describe('expiry recorder', () => {
  const start = new Date('2026-06-01T00:00:00.000Z');

  async function storageWithExpiring(count: number) {
    const storage = createMemoryStorage();
    const vaultId = randomUUID();
    await storage.vaults.create({ id: vaultId, name: 'v', description: '', createdBy: 'root', createdByType: 'root', createdAt: start }, []);
    for (let i = 0; i < count; i++) {
      await storage.secrets.append(vaultId, `p/${i}`, () => ({
        id: randomUUID(), type: 'generic', metadata: null, ciphertext: Buffer.from('x'), createdBy: 'root', createdAt: start,
        expiresAt: new Date(start.getTime() + 1000 + i), maxAccessCount: 0,
      }), () => []);
    }
    return storage;
  }
  const recorder = (storage: ReturnType<typeof createMemoryStorage>, now: () => Date) =>
    createExpiryRecorder({ storage, now, onError: (error) => { throw error; } });

  it('records a backlog past one page in one tick, as system secret.expire events, each once', async () => {
    const storage = await storageWithExpiring(250);
    let clock = start;
    const job = recorder(storage, () => clock);
    expect(await job.tick()).toBe(0);
    clock = new Date(start.getTime() + 10_000);
    expect(await job.tick()).toBe(250);
    expect(await job.tick()).toBe(0);
    const events = await storage.audit.list({ action: 'secret.expire', limit: 1000, offset: 0 });
    expect(events).toHaveLength(250);
    expect(new Set(events.map((e) => e.resourceId)).size).toBe(250);
    expect(events.every((e) => e.actorType === 'system' && e.actorId === 'system' && e.details?.version === 1)).toBe(true);
  });

  it('lets one of two instances record, and the other take over once the first gives the lease up', async () => {
    const storage = await storageWithExpiring(3);
    let clock = new Date(start.getTime() + 1000);
    const [one, two] = [recorder(storage, () => clock), recorder(storage, () => clock)];
    expect((await Promise.all([one.tick(), two.tick()])).sort()).toEqual([0, 1]);
    await one.stop();
    await two.stop();
    clock = new Date(start.getTime() + 10_000);
    expect((await Promise.all([two.tick(), one.tick()])).reduce((x, y) => x + y)).toBe(2);
    expect(await storage.audit.list({ action: 'secret.expire', limit: 10, offset: 0 })).toHaveLength(3);
  });
});
