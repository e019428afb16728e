import { status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, expect, it } from 'vitest';
import type { RotationPolicy } from '../../src/gen/vault/v1/secret_service.js';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';
import { startTestApp, unary, type TestApp } from '../support/test-app.js';

/**
 * Scheduled rotation on three instances sharing one MariaDB database, driven by one injected clock
 * and explicit scheduler ticks (no timers, no sleeps): every due time rotates exactly once, and a
 * window missed while every instance was down rotates once when one is back.
 */
describeWithDatabase('scheduled rotation across instances', () => {
  let db: TestDatabase | undefined;
  let apps: TestApp[] = [];
  let clock = 0;
  const now = () => new Date(clock);
  const start = () =>
    startTestApp({ VAULT_DATABASE_URL: db!.url, VAULT_MIN_ROTATION_INTERVAL_SECONDS: '1' }, { clock: { now, advance: () => {} }, rotationTickMs: null }).then((app) => {
      apps.push(app);
      return app;
    });
  const stopAll = async () => {
    await Promise.all(apps.map((a) => a.close()));
    apps = [];
  };
  afterEach(async () => {
    await stopAll();
    await db?.drop();
  });

  const put = (t: TestApp, vaultId: string, path: string, rotationPolicy?: RotationPolicy) =>
    unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path, value: 'initial', type: 'password', metadata: undefined, expiresAt: undefined, maxAccessCount: 0, rotationPolicy }, t.auth());
  const versions = (t: TestApp, vaultId: string, path: string) =>
    unary(t.clients.secrets, t.clients.secrets.listSecretVersions, { vaultId, path, pageSize: 0, pageToken: '' }, t.auth());
  const tickAll = async () => (await Promise.all(apps.map((a) => a.app.rotationScheduler.tick()))).reduce((x, y) => x + y, 0);

  it('rotates each scheduled secret exactly once per due time on three instances, and once after an outage', async () => {
    db = (await createTestDatabase())!;
    clock = Math.floor(Date.now() / 1000) * 1000;
    const [a] = [await start(), await start(), await start()];
    const { vault } = await unary(a!.clients.vaults, a!.clients.vaults.createVault, { name: 'scheduled', description: '' }, a!.auth());
    const vaultId = vault!.id;
    const paths = ['db/one', 'db/two', 'db/three'];
    for (const path of paths) await put(a!, vaultId, path, { intervalSeconds: 2, length: 24, charset: 'alphanumeric', stage: '' });
    await put(a!, vaultId, 'db/unscheduled');

    const listed = await versions(a!, vaultId, 'db/one');
    expect(listed.rotationPolicy).toEqual({ intervalSeconds: 2, length: 24, charset: 'alphanumeric', stage: '' });
    expect(listed.nextRotationAt).toEqual(new Date(clock + 2000));
    expect(listed.lastRotatedAt).toBeUndefined();

    // Not due yet: nothing happens, however often every instance ticks.
    clock += 1000;
    expect(await tickAll()).toBe(0);

    // 11 s at an interval of 2 s: due at +2, +4, +6, +8, +10. Every instance ticks each second.
    const rotationsPerTick: number[] = [];
    for (let second = 2; second <= 11; second++) {
      clock += 1000;
      rotationsPerTick.push(await tickAll());
      expect(await tickAll()).toBe(0); // the same due time never rotates twice
    }
    expect(rotationsPerTick).toEqual([3, 0, 3, 0, 3, 0, 3, 0, 3, 0]);
    for (const path of paths) {
      const { versions: list, lastRotatedAt, nextRotationAt } = await versions(a!, vaultId, path);
      expect(list.map((v) => v.version)).toEqual([6, 5, 4, 3, 2, 1]);
      expect(list.map((v) => v.stage)).toEqual(['current', 'previous', '', '', '', '']);
      expect(lastRotatedAt).toEqual(new Date(clock - 1000));
      expect(nextRotationAt).toEqual(new Date(clock + 1000));
    }
    expect((await versions(a!, vaultId, 'db/unscheduled')).versions).toHaveLength(1);

    // Rotations are audited as the system actor, and the value follows the policy.
    const audit = await unary(a!.clients.audit, a!.clients.audit.listAuditEvents, { action: 'secret.rotate', actorId: '', resourceId: 'db/one', from: undefined, to: undefined, limit: 50, offset: 0, pageSize: 0, pageToken: '' }, a!.auth());
    expect(audit.events.map((e) => [e.actorType, e.actorId])).toEqual(Array.from({ length: 5 }, () => ['system', 'system']));
    const read = await unary(a!.clients.secrets, a!.clients.secrets.getSecret, { vaultId, path: 'db/one' }, a!.auth());
    expect(read.secret!.value).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(read.secret!.createdBy).toBe('system');

    // Every instance stops; 10 s later one comes back: one catch-up rotation, then the interval again.
    await stopAll();
    clock += 10_000;
    const back = await start();
    expect(await back.app.rotationScheduler.tick()).toBe(3);
    expect(await back.app.rotationScheduler.tick()).toBe(0);
    const after = await versions(back, vaultId, 'db/two');
    expect(after.versions[0]!.version).toBe(7);
    expect(after.nextRotationAt).toEqual(new Date(clock + 2000));
    clock += 2000;
    expect(await back.app.rotationScheduler.tick()).toBe(3);
  });

  it('validates the policy, can stage scheduled rotations as pending, and forgets a schedule on delete', async () => {
    db = (await createTestDatabase())!;
    clock = Math.floor(Date.now() / 1000) * 1000;
    const a = await start();
    const { vault } = await unary(a.clients.vaults, a.clients.vaults.createVault, { name: 'scheduled', description: '' }, a.auth());
    const vaultId = vault!.id;
    const refused = (policy: RotationPolicy) =>
      put(a, vaultId, 'p', policy).then(
        () => status.OK,
        (error: ServiceError) => error.code,
      );
    expect(await refused({ intervalSeconds: -2, charset: '', stage: '' })).toBe(status.INVALID_ARGUMENT);
    expect(await refused({ intervalSeconds: 5, charset: 'emoji', stage: '' })).toBe(status.INVALID_ARGUMENT);
    expect(await refused({ intervalSeconds: 5, length: 4, charset: '', stage: '' })).toBe(status.INVALID_ARGUMENT);
    expect(await refused({ intervalSeconds: 5, charset: '', stage: 'previous' })).toBe(status.INVALID_ARGUMENT);
    await expect(versions(a, vaultId, 'p')).rejects.toMatchObject({ code: status.NOT_FOUND });

    await put(a, vaultId, 'p', { intervalSeconds: 5, charset: 'hex', stage: 'pending' });
    // A put without rotation_policy leaves the schedule as it is.
    await put(a, vaultId, 'p');
    clock += 5000;
    expect(await a.app.rotationScheduler.tick()).toBe(1);
    const staged = await versions(a, vaultId, 'p');
    expect(staged.versions.map((v) => [v.version, v.stage])).toEqual([[3, 'pending'], [2, 'current'], [1, 'previous']]);
    expect(staged.rotationPolicy).toMatchObject({ intervalSeconds: 5, length: 32, charset: 'hex', stage: 'pending' });

    // interval 0 removes the schedule; so does a delete.
    await put(a, vaultId, 'p', { intervalSeconds: 0, charset: '', stage: '' });
    clock += 5000;
    expect(await a.app.rotationScheduler.tick()).toBe(0);
    expect((await versions(a, vaultId, 'p')).rotationPolicy).toBeUndefined();
    await put(a, vaultId, 'q', { intervalSeconds: 5, charset: '', stage: '' });
    await unary(a.clients.secrets, a.clients.secrets.deleteSecret, { vaultId, path: 'q' }, a.auth());
    clock += 5000;
    expect(await a.app.rotationScheduler.tick()).toBe(0);
    await put(a, vaultId, 'q');
    clock += 5000;
    expect(await a.app.rotationScheduler.tick()).toBe(0);

    // Over REST, the hosted API's rotation_policy field sets it; the minimum interval holds.
    const rest = await a.http('PUT', `/v1/vaults/${vaultId}/secrets/r`, { body: { value: 'x', rotation_policy: { interval_seconds: 3, charset: 'base64' } } });
    expect(rest.status).toBe(201);
    const listed = await a.http('GET', `/v1/vaults/${vaultId}/secret-versions/r`);
    expect(listed.json).toMatchObject({ rotation_policy: { interval_seconds: 3, length: 32, charset: 'base64', stage: '' }, next_rotation_at: new Date(clock + 3000).toISOString().replace('.000Z', 'Z') });
    const ignored = await a.http('PUT', `/v1/vaults/${vaultId}/secrets/s`, { body: { value: 'x', rotation_policy: { enabled: true, days: 30 } } });
    expect(ignored.status).toBe(201);
    expect((await a.http('GET', `/v1/vaults/${vaultId}/secret-versions/s`)).json).not.toHaveProperty('rotation_policy');
  });
});
