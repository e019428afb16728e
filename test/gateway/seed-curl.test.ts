import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';
import { validateResponse } from './support/openapi.js';

const run = promisify(execFile);
const HOSTED = 'https://api.1claw.xyz';

/** The seed's curl commands, verbatim (fixtures/seed-curls.sh), in page order. */
const SEED = readFileSync(new URL('./fixtures/seed-curls.sh', import.meta.url), 'utf8')
  .split(/\n\s*\n/)
  .map((block) => block.trim())
  .filter((block) => block.startsWith('curl '));

const [PUT_OPENAI, ROTATE_DB, LIST_VERSIONS, GET_VERSION_3, DISABLE_VERSION_2, ROTATE_AGENT_KEY] = SEED as [string, string, string, string, string, string];

/** The command with its secret paths sent raw (`a/b`) or percent-encoded (`a%2Fb`). */
function withPaths(command: string, encoding: 'raw' | 'encoded'): string {
  return encoding === 'raw'
    ? command.replace(/%2F/g, '/')
    : command.replace(/api-keys\/(openai|db-password)/g, 'api-keys%2F$1');
}

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

/**
 * Runs a seed command with bash, exactly as written but for the host (the hosted API's base URL
 * becomes the test server's) and `-sS -i` after `curl` (quiet, and the status line and headers on
 * stdout). $VAULT_ID, $TOKEN and $AGENT_ID come from the environment, as in the docs.
 */
async function curl(t: TestApp, command: string, env: Record<string, string>): Promise<CurlResult> {
  expect(command).toContain(HOSTED);
  const local = command.replaceAll(HOSTED, t.httpBaseUrl).replace(/^curl /, 'curl -sS -i ');
  const { stdout } = await run('bash', ['-c', local], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TOKEN: TEST_ROOT_TOKEN, ...env }, timeout: 20_000 });
  const split = stdout.indexOf('\r\n\r\n');
  const [statusLine, ...headerLines] = stdout.slice(0, split).split('\r\n');
  const body = stdout.slice(split + 4);
  const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body, json: body ? JSON.parse(body) : undefined };
}

function expectValid(operationId: string, result: CurlResult) {
  expect(validateResponse(operationId, result.status, result.json, { strict: operationId !== 'rotateAgentKey' }), result.body).toEqual([]);
  if (result.status !== 204) expect(result.headers['content-type']).toBe('application/json; charset=utf-8');
}

describe('the seed curl commands against a running service', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  it('has the six commands of the page', () => {
    expect(SEED).toHaveLength(6);
  });

  it.each(['raw', 'encoded'] as const)('every secret command works with %s paths', async (encoding) => {
    const vault = await t.http('POST', '/v1/vaults', { body: { name: `seed-${encoding}` } });
    expect(vault.status).toBe(201);
    const env = { VAULT_ID: vault.json.id as string };
    const base = `/v1/vaults/${env.VAULT_ID}`;

    // Client-supplied rotation: each PUT is the next version.
    for (const version of [1, 2, 3]) {
      const put = await curl(t, withPaths(PUT_OPENAI, encoding), env);
      expect(put.status).toBe(201);
      expect(put.json).toEqual({ id: expect.any(String), path: 'api-keys/openai', type: 'api_key', version, created_at: expect.any(String) });
      expectValid('putSecret', put);
    }

    // Server-side rotation of an existing secret: 201, metadata only, never the value.
    expect((await t.http('PUT', `${base}/secrets/api-keys/db-password`, { body: { value: 'initial', type: 'password' } })).status).toBe(201);
    const rotated = await curl(t, withPaths(ROTATE_DB, encoding), env);
    expect(rotated.status).toBe(201);
    expect(rotated.json).toMatchObject({ path: 'api-keys/db-password', type: 'password', version: 2 });
    expect(rotated.json).not.toHaveProperty('value');
    expectValid('rotateSecret', rotated);
    expect((await t.http('GET', `${base}/secrets/api-keys%2Fdb-password`)).json.value).toMatch(/^[0-9a-f]{32}$/);

    // All versions, newest first, with is_disabled.
    const versions = await curl(t, withPaths(LIST_VERSIONS, encoding), env);
    expect(versions.status).toBe(200);
    expect(versions.json.versions.map((v: { version: number; is_disabled: boolean }) => [v.version, v.is_disabled])).toEqual([
      [3, false],
      [2, false],
      [1, false],
    ]);
    expectValid('listSecretVersions', versions);

    // One version with its value.
    const third = await curl(t, withPaths(GET_VERSION_3, encoding), env);
    expect(third.status).toBe(200);
    expect(third.json).toMatchObject({ path: 'api-keys/openai', version: 3, value: 'sk-proj-NEW...', type: 'api_key', created_by: 'root' });
    expectValid('getSecretVersion', third);

    // Disable version 2: 204 with no body, idempotent; reads of it are then 410.
    for (let i = 0; i < 2; i++) {
      const disabled = await curl(t, withPaths(DISABLE_VERSION_2, encoding), env);
      expect(disabled.status).toBe(204);
      expect(disabled.body).toBe('');
      expectValid('disableSecretVersion', disabled);
    }
    const gone = await t.http('GET', `${base}/secret-version/api-keys/openai/2`);
    expect(gone.status).toBe(410);
    expect(gone.json.details[0]).toMatchObject({ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'SECRET_VERSION_DISABLED', domain: 'vault' });
    expect((await curl(t, withPaths(LIST_VERSIONS, encoding), env)).json.versions[1]).toMatchObject({ version: 2, is_disabled: true });
  });

  it('rotates an agent key once AgentService is served, and is 404 until then', async () => {
    const served = t.app.methods.some((m) => m.fullName === 'vault.v1.AgentService.RotateAgentKey');
    if (!served) {
      const result = await curl(t, ROTATE_AGENT_KEY, { AGENT_ID: '0b7a4c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b' });
      expect(result.status).toBe(404);
      return;
    }
    const created = await t.http('POST', '/v1/agents', { body: { name: 'seed-agent' } });
    expect(created.status).toBe(201);
    const rotated = await curl(t, ROTATE_AGENT_KEY, { AGENT_ID: created.json.agent.id });
    expect(rotated.status).toBe(200);
    expect(rotated.json.api_key).toMatch(/^ocv_[A-Za-z0-9_-]{43}$/);
    expect(rotated.json.api_key).not.toBe(created.json.api_key);
    expect(rotated.json.agent).toMatchObject({ id: created.json.agent.id });
    expectValid('rotateAgentKey', rotated);
  });
});
