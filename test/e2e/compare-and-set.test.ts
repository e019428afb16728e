import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { createTestDatabase, describeWithDatabase } from '../support/database.js';
import { startTestApp, unary, type TestApp } from '../support/test-app.js';

/**
 * Compare-and-set (`if_version`; REST ETag / If-Match / If-None-Match): a write with a stale
 * version changes nothing and says so (FAILED_PRECONDITION VERSION_MISMATCH, HTTP 412); the right
 * one succeeds; of concurrent writers with the same version, across instances, exactly one wins.
 */
const rejection = (call: Promise<unknown>) => call.then(() => expect.unreachable('the call succeeded'), (e: ServiceError) => e);
const reasonOf = (error: ServiceError) => ErrorInfo.decode(Status.decode(error.metadata.get('grpc-status-details-bin')[0] as Buffer).details[0]!.value);

function compareAndSetOn(label: string, env: () => Promise<Record<string, string>>) {
  describe(`compare-and-set on ${label}`, () => {
    let t: TestApp;
    let vaultId: string;
    beforeAll(async () => {
      t = await startTestApp(await env());
      vaultId = (await t.http('POST', '/v1/vaults', { body: { name: `cas-${label}` } })).json.id;
    });
    afterAll(async () => t?.close());

    const put = (path: string, value: string, ifVersion?: number) =>
      unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path, value, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0, ifVersion }, t.auth());
    const versions = async (path: string) =>
      (await unary(t.clients.secrets, t.clients.secrets.listSecretVersions, { vaultId, path, pageSize: 0, pageToken: '' }, t.auth())).versions.map((v) => [v.version, v.isDisabled]);

    it('creates only when the path has no version for if_version 0, and writes only on the newest version seen', async () => {
      expect((await put('grpc/a', 'one', 0)).secret!.version).toBe(1);
      const again = await rejection(put('grpc/a', 'other', 0));
      expect(again.code).toBe(status.FAILED_PRECONDITION);
      expect(again.details).toMatch(/has newest version 1, not 0/);
      expect(reasonOf(again)).toMatchObject({ reason: 'VERSION_MISMATCH', metadata: { expected_version: '0', current_version: '1', path: 'grpc/a' } });
      expect((await put('grpc/a', 'two', 1)).secret!.version).toBe(2);
      expect(reasonOf(await rejection(put('grpc/a', 'stale', 1))).reason).toBe('VERSION_MISMATCH');
      expect((await unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path: 'grpc/a' }, t.auth())).secret!.value).toBe('two');
      // Without if_version nothing is checked, as before.
      expect((await put('grpc/a', 'three')).secret!.version).toBe(3);
    });

    it('guards rotate, disable, enable, promote and delete the same way', async () => {
      await put('grpc/ops', 'v1');
      const rotate = (ifVersion: number) =>
        unary(t.clients.secrets, t.clients.secrets.rotateSecret, { vaultId, path: 'grpc/ops', length: 16, charset: '', type: '', metadata: undefined, stage: '', expiresAt: undefined, maxAccessCount: undefined, ifVersion }, t.auth());
      expect(reasonOf(await rejection(rotate(0))).reason).toBe('VERSION_MISMATCH');
      expect((await rotate(1)).secret!.version).toBe(2);
      const disable = (ifVersion: number) => unary(t.clients.secrets, t.clients.secrets.disableSecretVersion, { vaultId, path: 'grpc/ops', version: 1, ifVersion }, t.auth());
      expect(reasonOf(await rejection(disable(1))).reason).toBe('VERSION_MISMATCH');
      expect(await versions('grpc/ops')).toEqual([[2, false], [1, false]]);
      await disable(2);
      const enable = (ifVersion: number) => unary(t.clients.secrets, t.clients.secrets.enableSecretVersion, { vaultId, path: 'grpc/ops', version: 1, ifVersion }, t.auth());
      expect(reasonOf(await rejection(enable(1))).reason).toBe('VERSION_MISMATCH');
      await enable(2);
      const promote = (ifVersion: number) => unary(t.clients.secrets, t.clients.secrets.promoteSecretVersion, { vaultId, path: 'grpc/ops', version: 1, ifVersion }, t.auth());
      expect(reasonOf(await rejection(promote(1))).reason).toBe('VERSION_MISMATCH');
      expect((await promote(2)).secret!.stage).toBe('current');
      const remove = (ifVersion: number) => unary(t.clients.secrets, t.clients.secrets.deleteSecret, { vaultId, path: 'grpc/ops', ifVersion }, t.auth());
      expect(reasonOf(await rejection(remove(1))).reason).toBe('VERSION_MISMATCH');
      expect(await versions('grpc/ops')).toEqual([[2, false], [1, false]]);
      await remove(2);
      expect(reasonOf(await rejection(versions('grpc/ops'))).reason).toBe('SECRET_DELETED');
    });

    it('refuses a negative if_version as INVALID_ARGUMENT', async () => {
      expect((await rejection(put('grpc/neg', 'x', -1))).code).toBe(status.INVALID_ARGUMENT);
    });

    it('speaks ETag, If-Match and If-None-Match over REST, with 412 on a miss', async () => {
      const url = `/v1/vaults/${vaultId}/secrets/rest/a`;
      const created = await t.http('PUT', url, { body: { value: 'one' }, headers: { 'If-None-Match': '*' } });
      expect(created.status).toBe(201);
      expect(created.headers.get('etag')).toBe('"1"');
      const exists = await t.http('PUT', url, { body: { value: 'again' }, headers: { 'If-None-Match': '*' } });
      expect(exists.status).toBe(412);
      expect(exists.json.details[0]).toMatchObject({ reason: 'VERSION_MISMATCH' });

      const read = await t.http('GET', url);
      expect(read.headers.get('etag')).toBe('"1"');
      const written = await t.http('PUT', url, { body: { value: 'two' }, headers: { 'If-Match': read.headers.get('etag')! } });
      expect(written.status).toBe(201);
      expect(written.headers.get('etag')).toBe('"2"');
      // A writer that still holds the first ETag loses, and nothing changes.
      expect((await t.http('PUT', url, { body: { value: 'lost update' }, headers: { 'If-Match': '"1"' } })).status).toBe(412);
      expect((await t.http('GET', url)).json.value).toBe('two');

      // Query parameters on the body-less writes.
      expect((await t.http('POST', `/v1/vaults/${vaultId}/secret-version/rest/a/1/disable?if_version=1`)).status).toBe(412);
      expect((await t.http('POST', `/v1/vaults/${vaultId}/secret-version/rest/a/1/disable?if_version=2`)).status).toBe(204);
      expect((await t.http('DELETE', url, { headers: { 'If-Match': '"1"' } })).status).toBe(412);
      expect((await t.http('DELETE', url, { headers: { 'If-Match': '"2"' } })).status).toBe(204);
    });

    it('answers 400 for precondition headers it cannot honour', async () => {
      const url = `/v1/vaults/${vaultId}/secrets/rest/bad`;
      const refused: Array<Record<string, string>> = [{ 'If-Match': '3' }, { 'If-Match': '*' }, { 'If-Match': '"1", "2"' }, { 'If-Match': '"1"', 'If-None-Match': '*' }];
    for (const headers of refused) {
        const res = await t.http('PUT', url, { body: { value: 'x' }, headers });
        expect(res.status, JSON.stringify(headers)).toBe(400);
        expect(res.json.message).toMatch(/If-/);
      }
      const contradicting = await t.http('PUT', url, { body: { value: 'x', if_version: 4 }, headers: { 'If-Match': '"5"' } });
      expect(contradicting.status).toBe(400);
      expect(contradicting.json.message).toMatch(/if_version is 4/);
    });
  });
}

compareAndSetOn('memory', async () => ({}));

describeWithDatabase('compare-and-set across two instances on MySQL', () => {
  let a: TestApp;
  let b: TestApp;
  let vaultId: string;
  beforeAll(async () => {
    const database = (await createTestDatabase())!;
    a = await startTestApp({ VAULT_DATABASE_URL: database.url });
    b = await startTestApp({ VAULT_DATABASE_URL: database.url });
    vaultId = (await a.http('POST', '/v1/vaults', { body: { name: 'cas-race' } })).json.id;
  });
  afterAll(async () => Promise.all([a?.close(), b?.close()]));

  it('lets exactly one of ten concurrent rotations with the same if_version win', async () => {
    await a.http('PUT', `/v1/vaults/${vaultId}/secrets/race`, { body: { value: 'v1' } });
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).http('POST', `/v1/vaults/${vaultId}/secret-rotate/race`, { body: { if_version: 1 } })),
    );
    expect(outcomes.map((o) => o.status).sort()).toEqual([201, ...Array.from({ length: 9 }, () => 412)]);
    const listed = await a.http('GET', `/v1/vaults/${vaultId}/secret-versions/race`);
    expect(listed.json.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
  });
});

describeWithDatabase('compare-and-set on MySQL storage', () => {
  compareAndSetOn('mysql', async () => ({ VAULT_DATABASE_URL: (await createTestDatabase())!.url }));
});
