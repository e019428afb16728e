import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorInfo } from '../../src/gen/google/rpc/error_details.js';
import { Status } from '../../src/gen/google/rpc/status.js';
import { startTestApp, TEST_ROOT_TOKEN, unary, type TestApp } from '../support/test-app.js';

const run = promisify(execFile);

/** Runs `buf curl` (a Go gRPC client with grpcurl's reflection rules) against the service. */
async function bufCurl(t: TestApp, args: string[]) {
  const { stdout } = await run('node_modules/.bin/buf', ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args], { timeout: 20_000 });
  return stdout;
}

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: ServiceError) => error,
  );
}

describe('gRPC transport', () => {
  let t: TestApp;
  let vaultId: string;

  beforeAll(async () => {
    t = await startTestApp();
    const { vault } = await unary(t.clients.vaults, t.clients.vaults.createVault, { name: 'e2e', description: '' }, t.auth());
    vaultId = vault!.id;
  });
  afterAll(() => t.close());

  it('lists, describes and calls methods through server reflection', async () => {
    const url = `http://${t.grpcAddress}`;
    const services = (await bufCurl(t, ['--list-services', url])).trim().split('\n');
    expect(services).toEqual(expect.arrayContaining(['grpc.health.v1.Health', 'vault.v1.SecretService', 'vault.v1.VaultService']));
    const methods = await bufCurl(t, ['--list-methods', url]);
    for (const name of ['PutSecret', 'GetSecret', 'ListSecretVersions', 'GetSecretVersion', 'DisableSecretVersion', 'EnableSecretVersion', 'RotateSecret']) {
      expect(methods).toContain(`vault.v1.SecretService/${name}`);
    }
    const header = ['-H', `authorization: Bearer ${TEST_ROOT_TOKEN}`];
    const put = JSON.parse(
      await bufCurl(t, [...header, '-d', JSON.stringify({ vault_id: vaultId, path: 'reflect/me', value: 'v', type: 'note' }), `${url}/vault.v1.SecretService/PutSecret`]),
    );
    expect(put.secret).toMatchObject({ path: 'reflect/me', type: 'note', version: 1 });
    const got = JSON.parse(await bufCurl(t, [...header, '-d', JSON.stringify({ vault_id: vaultId, path: 'reflect/me' }), `${url}/vault.v1.SecretService/GetSecret`]));
    expect(got.secret.value).toBe('v');
    // Older clients speak grpc.reflection.v1alpha.
    const alpha = await bufCurl(t, ['--reflect-protocol', 'grpc-v1alpha', '--list-methods', url]);
    expect(alpha).toContain('vault.v1.VaultService/CreateVault');
  });

  it('serves grpc.health.v1 without a token', async () => {
    const health = JSON.parse(await bufCurl(t, ['-d', '{}', `http://${t.grpcAddress}/grpc.health.v1.Health/Check`]));
    expect(health).toEqual({ status: 'SERVING' });
    const system = await unary(t.clients.system, t.clients.system.getHealth, {});
    expect(system.status).toBe('healthy');
  });

  it('answers UNAUTHENTICATED without a token or with a wrong one', async () => {
    const request = { vaultId, path: 'p' };
    const missing = await rejection(unary(t.clients.secrets, t.clients.secrets.getSecret, request));
    expect(missing.code).toBe(status.UNAUTHENTICATED);
    const wrong = await rejection(unary(t.clients.secrets, t.clients.secrets.getSecret, request, t.auth('not-the-root-token')));
    expect(wrong.code).toBe(status.UNAUTHENTICATED);
    const malformed = new Metadata();
    malformed.set('authorization', TEST_ROOT_TOKEN);
    expect((await rejection(unary(t.clients.secrets, t.clients.secrets.getSecret, request, malformed))).code).toBe(status.UNAUTHENTICATED);
  });

  it('reports gone versions as FAILED_PRECONDITION with a google.rpc.ErrorInfo reason', async () => {
    const put = { vaultId, path: 'gone/one', value: 'x', type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 };
    await unary(t.clients.secrets, t.clients.secrets.putSecret, put, t.auth());
    await unary(t.clients.secrets, t.clients.secrets.disableSecretVersion, { vaultId, path: 'gone/one', version: 1 }, t.auth());
    const error = await rejection(unary(t.clients.secrets, t.clients.secrets.getSecretVersion, { vaultId, path: 'gone/one', version: 1 }, t.auth()));
    expect(error.code).toBe(status.FAILED_PRECONDITION);
    expect(error.details).toBe('version 1 of secret "gone/one" is disabled');
    const details = Status.decode(error.metadata.get('grpc-status-details-bin')[0] as Buffer);
    expect(details.code).toBe(status.FAILED_PRECONDITION);
    expect(details.details[0]!.typeUrl).toBe('type.googleapis.com/google.rpc.ErrorInfo');
    const info = ErrorInfo.decode(details.details[0]!.value);
    expect(info).toMatchObject({ reason: 'SECRET_VERSION_DISABLED', domain: 'vault', metadata: { path: 'gone/one', version: '1', vault_id: vaultId } });
  });

  it('answers INVALID_ARGUMENT with a message naming the field', async () => {
    const error = await rejection(
      unary(t.clients.secrets, t.clients.secrets.rotateSecret, { vaultId, path: 'x', length: 7, charset: '', type: '', metadata: undefined }, t.auth()),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/^length must be a whole number from 8 to 1024/);
  });

  it('logs one line per call with method, code and caller, and never a value or token', async () => {
    const canary = 'canary-value-7f3a9c';
    await unary(t.clients.secrets, t.clients.secrets.putSecret, { vaultId, path: 'log/me', value: canary, type: '', metadata: undefined, expiresAt: undefined, maxAccessCount: 0 }, t.auth());
    const read = new Metadata();
    read.set('authorization', `Bearer ${TEST_ROOT_TOKEN}`);
    read.set('x-request-id', 'req-log-check-1');
    await unary(t.clients.secrets, t.clients.secrets.getSecret, { vaultId, path: 'log/me' }, read);
    const line = t.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'req-log-check-1');
    expect(line).toMatchObject({ method: 'vault.v1.SecretService.GetSecret', transport: 'grpc', code: 'OK', caller: 'root:root' });
    expect(typeof line.durationMs).toBe('number');
    const all = t.logs.join('\n');
    expect(all).not.toContain(canary);
    expect(all).not.toContain(Buffer.from(canary).toString('base64'));
    expect(all).not.toContain(TEST_ROOT_TOKEN);
  });
});
