import { execFile } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVaultClient } from '../../src/client/index.js';
import { runCli } from '../../src/cli/main.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

describe('the vault CLI', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  /** Runs the CLI in this process, as `vault <args>` with the given stdin and environment. */
  async function vault(args: string[], { stdin = '', env = {} }: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    stdout.on('data', (c) => out.push(c));
    stderr.on('data', (c) => err.push(c));
    const code = await runCli(args, { stdin: Readable.from([Buffer.from(stdin)]), stdout, stderr, env: { VAULT_ADDR: t.grpcAddress, VAULT_TOKEN: TEST_ROOT_TOKEN, ...env } });
    const text = Buffer.concat(out).toString();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { code, stdout: text, stderr: Buffer.concat(err).toString(), json };
  }

  it("runs the seed's rotating-secrets page", async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'prod'])).json.id;
    expect(vaultId).toMatch(/^[0-9a-f-]{36}$/);
    const V = ['--vault', vaultId];

    // A client-supplied value, then a new one: versions 1 and 2.
    expect((await vault(['--json', 'secret', 'put', ...V, 'api-keys/openai', '--type', 'api_key'], { stdin: 'sk-proj-OLD' })).json.version).toBe(1);
    expect((await vault(['--json', 'secret', 'put', ...V, 'api-keys/openai'], { stdin: 'sk-proj-NEW' })).json.version).toBe(2);
    // Server-side rotation: version 3, value never printed.
    const rotated = await vault(['--json', 'secret', 'rotate', ...V, 'api-keys/openai', '--length', '40', '--charset', 'alphanumeric']);
    expect(rotated.code).toBe(EXIT.ok);
    expect(rotated.json).toMatchObject({ version: 3, path: 'api-keys/openai' });
    expect(rotated.stdout).not.toMatch(/"value"/);

    const table = await vault(['secret', 'versions', ...V, 'api-keys/openai']);
    expect(table.stdout.split('\n')[0]).toMatch(/^PATH\s+VERSION\s+TYPE\s+DISABLED/);
    expect((await vault(['--json', 'secret', 'versions', ...V, 'api-keys/openai'])).json.versions.map((v: any) => v.version)).toEqual([3, 2, 1]);

    const v2 = await vault(['--json', 'secret', 'get', ...V, 'api-keys/openai', '--version', '2']);
    expect(v2.json).toMatchObject({ version: 2, value: 'sk-proj-NEW' });
    const latest = await vault(['secret', 'get', ...V, 'api-keys/openai', '--raw']);
    expect(latest.stdout).toMatch(/^[A-Za-z0-9]{40}$/);

    expect((await vault(['secret', 'disable', ...V, 'api-keys/openai', '2'])).code).toBe(EXIT.ok);
    const gone = await vault(['secret', 'version', ...V, 'api-keys/openai', '2']);
    expect(gone.code).toBe(EXIT.gone);
    expect(gone.stderr).toContain('SECRET_VERSION_DISABLED');
    expect(gone.stderr).toContain("vault secret versions");
    expect(gone.stdout).toBe('');

    // An agent, its key rotated: the old key stops working, the new one works.
    const created = (await vault(['--json', 'agent', 'create', 'deploy-bot'])).json;
    expect(created.apiKey).toMatch(/^ocv_/);
    await vault(['policy', 'create', ...V, '--agent', created.agent.id, '--pattern', 'api-keys/**', '--permissions', 'read']);
    const asAgent = (key: string) => vault(['--json', 'secret', 'get', ...V, 'api-keys/openai'], { env: { VAULT_TOKEN: '', VAULT_API_KEY: key } });
    expect((await asAgent(created.apiKey)).code).toBe(EXIT.ok);
    const rekeyed = (await vault(['--json', 'agent', 'rotate-key', created.agent.id])).json;
    expect(rekeyed.apiKey).not.toBe(created.apiKey);
    const refused = await asAgent(created.apiKey);
    expect(refused.code).toBe(EXIT.unauthenticated);
    expect(refused.stderr).toContain('VAULT_API_KEY');
    expect(refused.stderr).not.toContain(created.apiKey);
    expect((await asAgent(rekeyed.apiKey)).json.value).toMatch(/^[A-Za-z0-9]{40}$/);

    const verify = await vault(['--json', 'audit', 'verify']);
    expect(verify.json.chainValid).toBe(true);
  });

  it('lists every secret of a vault, following the server\'s pages past the first 100', async () => {
    // Written through the SDK: one CLI process per secret would only make the test slow.
    const sdk = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    const paths = Array.from({ length: 120 }, (_, i) => `many/${String(i).padStart(3, '0')}`);
    let vaultId: string;
    try {
      vaultId = (await sdk.vaults.createVault({ name: 'paged' })).vault!.id;
      await Promise.all(paths.map((path) => sdk.secrets.putSecret({ vaultId, path, value: `value-${path}` })));
      // The server's default page is 100, so this needs two pages.
      expect((await sdk.secrets.listSecrets({ vaultId })).nextPageToken).not.toBe('');
    } finally {
      sdk.close();
    }

    const listed = await vault(['--json', 'secret', 'list', '--vault', vaultId]);
    expect(listed.code).toBe(EXIT.ok);
    expect(listed.json.secrets.map((s: any) => s.path)).toEqual(paths);
    expect(listed.json.nextPageToken ?? '').toBe('');
    const table = await vault(['secret', 'list', '--vault', vaultId]);
    expect(table.stdout.trim().split('\n')).toHaveLength(1 + paths.length);
  });

  it('exits with a distinct code per failure class, saying what to do', async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'codes'])).json.id;
    const notFound = await vault(['secret', 'get', '--vault', vaultId, 'missing']);
    expect(notFound.code).toBe(EXIT.notFound);
    const invalid = await vault(['secret', 'rotate', '--vault', vaultId, 'x', '--length', 'ten']);
    expect(invalid).toMatchObject({ code: EXIT.invalidInput, stderr: expect.stringContaining('--length must be a positive whole number') });
    const noVault = await vault(['secret', 'list']);
    expect(noVault).toMatchObject({ code: EXIT.invalidInput, stderr: expect.stringContaining('VAULT_VAULT_ID') });
    const unknownCommand = await vault(['secret', 'frobnicate']);
    expect(unknownCommand.code).toBe(EXIT.invalidInput);
    const down = await vault(['vault', 'list'], { env: { VAULT_ADDR: '127.0.0.1:1' } });
    expect(down).toMatchObject({ code: EXIT.unavailable, stderr: expect.stringContaining('VAULT_ADDR') });
    const anonymous = await vault(['vault', 'list'], { env: { VAULT_TOKEN: '' } });
    expect(anonymous.code).toBe(EXIT.unauthenticated);
  });

  it('changes a policy or agent only with the etag it saw with --etag, and exits 8 when it is stale', async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'etags'])).json.id;
    const V = ['--vault', vaultId];
    const { agent } = (await vault(['--json', 'agent', 'create', 'etag-bot'])).json;
    const policy = (await vault(['--json', 'policy', 'create', ...V, '--agent', agent.id, '--pattern', 'x/*', '--permissions', 'read'])).json;
    const updated = (await vault(['--json', 'policy', 'update', ...V, policy.id, '--priority', '2', '--etag', policy.etag])).json;
    expect(updated.etag).not.toBe(policy.etag);
    const stale = await vault(['policy', 'update', ...V, policy.id, '--priority', '3', '--etag', policy.etag]);
    expect(stale).toMatchObject({ code: EXIT.conflict, stderr: expect.stringContaining('ETAG_MISMATCH') });
    expect((await vault(['policy', 'delete', ...V, policy.id, '--etag', policy.etag])).code).toBe(EXIT.conflict);
    expect((await vault(['policy', 'delete', ...V, policy.id, '--etag', updated.etag])).code).toBe(EXIT.ok);
    // Deleting the policy changed the agent's etag too: it decides the agent's access.
    expect((await vault(['agent', 'rotate-key', agent.id, '--etag', agent.etag])).code).toBe(EXIT.conflict);
    const current = (await vault(['--json', 'agent', 'get', agent.id])).json.etag;
    expect((await vault(['agent', 'delete', agent.id, '--etag', current])).code).toBe(EXIT.ok);
  });

  it('writes only on the version it saw with --if-version, and exits 8 when another writer came first', async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'cas'])).json.id;
    const V = ['--vault', vaultId];
    expect((await vault(['--json', 'secret', 'put', ...V, 'db/pw', '--if-version', '0'], { stdin: 'first' })).json.version).toBe(1);
    const late = await vault(['secret', 'put', ...V, 'db/pw', '--if-version', '0'], { stdin: 'second' });
    expect(late).toMatchObject({ code: EXIT.conflict, stderr: expect.stringContaining('VERSION_MISMATCH') });
    expect((await vault(['--json', 'secret', 'rotate', ...V, 'db/pw', '--if-version', '1'])).json.version).toBe(2);
    expect((await vault(['secret', 'delete', ...V, 'db/pw', '--if-version', '1'])).code).toBe(EXIT.conflict);
    expect((await vault(['secret', 'get', ...V, 'db/pw', '--raw'])).code).toBe(EXIT.ok);
    expect((await vault(['secret', 'put', ...V, 'db/pw', '--if-version', '-1'], { stdin: 'x' })).code).toBe(EXIT.invalidInput);
  });

  it('repeats a write with --idempotency-key without writing again, and exits 8 for the key with another value', async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'idem'])).json.id;
    const V = ['--vault', vaultId];
    const first = await vault(['--json', 'secret', 'put', ...V, 'db/pw', '--idempotency-key', 'deploy-42'], { stdin: 'one' });
    const again = await vault(['--json', 'secret', 'put', ...V, 'db/pw', '--idempotency-key', 'deploy-42'], { stdin: 'one' });
    expect(again.json).toEqual(first.json);
    const other = await vault(['secret', 'put', ...V, 'db/pw', '--idempotency-key', 'deploy-42'], { stdin: 'two' });
    expect(other).toMatchObject({ code: EXIT.conflict, stderr: expect.stringContaining('IDEMPOTENCY_KEY_REUSED') });
    expect((await vault(['--json', 'secret', 'versions', ...V, 'db/pw'])).json.versions).toHaveLength(1);
  });

  it('takes the vault from VAULT_VAULT_ID and stores values from stdin byte for byte', async () => {
    const vaultId = (await vault(['--json', 'vault', 'create', 'env'])).json.id;
    const value = 'line one\nline two\n';
    await vault(['secret', 'put', 'multi/line'], { stdin: value, env: { VAULT_VAULT_ID: vaultId } });
    expect((await vault(['secret', 'get', 'multi/line', '--raw'], { env: { VAULT_VAULT_ID: vaultId } })).stdout).toBe(value);
  });

  it('works as an installed bin: npx vault --help and a --json call', async () => {
    const run = promisify(execFile);
    const bin = new URL('../../bin/vault.mjs', import.meta.url).pathname;
    const help = await run(process.execPath, [bin, 'secret', 'put', '--help']);
    expect(help.stdout).toContain('Usage: vault secret put [options] <path>');
    const listed = await run(process.execPath, [bin, '--json', 'vault', 'list'], { env: { ...process.env, VAULT_ADDR: t.grpcAddress, VAULT_TOKEN: TEST_ROOT_TOKEN } });
    expect(Array.isArray(JSON.parse(listed.stdout).vaults)).toBe(true);
    const failed = await run(process.execPath, [bin, 'vault', 'get', '00000000-0000-4000-8000-000000000000'], { env: { ...process.env, VAULT_ADDR: t.grpcAddress, VAULT_TOKEN: TEST_ROOT_TOKEN } }).catch((e) => e);
    expect(failed.code).toBe(EXIT.notFound);
  });
});
