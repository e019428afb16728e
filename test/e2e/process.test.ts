import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';

/** Runs `src/main.ts` as `npm start` does, in a real process. */
function startProcess(env: Record<string, string>): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', VAULT_GRPC_PORT: '0', VAULT_HTTP_PORT: '0', ...env },
  });
}

/** Resolves with the first stdout log line that has this message. */
function logLine(child: ChildProcessWithoutNullStreams, msg: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (parsed.msg === msg) resolve(parsed);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before logging "${msg}"`)));
  });
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('the service process', () => {
  it('starts in dev mode with a banner, serves, and stops cleanly on SIGTERM', async () => {
    const child = startProcess({ VAULT_ROOT_TOKEN: 'process-test-root-token' });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += String(chunk)));
    const started = await logLine(child, 'vault started');
    expect(started).toMatchObject({ storage: 'memory', host: '127.0.0.1' });
    for (let i = 0; i < 40 && !stderr.includes('Root token'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toMatch(/DEV MODE/);
    expect(stderr).toMatch(/LOST when the process exits/);
    const base = `http://127.0.0.1:${started.httpPort}`;
    expect(await (await fetch(`${base}/v1/health`)).json()).toMatchObject({ status: 'healthy' });

    const created = await fetch(`${base}/v1/vaults`, { method: 'POST', headers: { authorization: 'Bearer process-test-root-token' }, body: '{"name":"x"}' });
    expect(created.status).toBe(201);
    const exited = exitOf(child);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/v1/health`)).rejects.toThrow();
  });

  it('stops on SIGINT too', async () => {
    const child = startProcess({});
    await logLine(child, 'vault started');
    const exited = exitOf(child);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it('refuses to start with a clear message for each bad variable', async () => {
    const child = startProcess({ VAULT_GRPC_PORT: 'abc', VAULT_DATABASE_URL: 'mysql://u:topsecret@h/db' });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += String(chunk)));
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toMatch(/VAULT_GRPC_PORT must be a whole number/);
    expect(stderr).toMatch(/VAULT_MASTER_KEY is required/);
    expect(stderr).toMatch(/VAULT_ROOT_TOKEN is required/);
    expect(stderr).not.toContain('topsecret');
  });
});
