import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect as connectTls } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createTestPki } from '../support/test-pki.js';

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

/** The serial number of the certificate a new TLS connection to 127.0.0.1:port is served. */
function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
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
    // The operator chose this token: it is not echoed.
    expect(stderr).not.toContain('process-test-root-token');
    expect(stderr).toContain('Root token:  the one in VAULT_ROOT_TOKEN');
    const base = `http://127.0.0.1:${started.httpPort}`;
    expect(await (await fetch(`${base}/v1/health`)).json()).toMatchObject({ status: 'healthy' });

    const created = await fetch(`${base}/v1/vaults`, { method: 'POST', headers: { authorization: 'Bearer process-test-root-token', 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(created.status).toBe(201);
    const exited = exitOf(child);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/v1/health`)).rejects.toThrow();
  });

  it('prints a generated root token, which then works, and stops on SIGINT', async () => {
    const child = startProcess({});
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += String(chunk)));
    const started = await logLine(child, 'vault started');
    for (let i = 0; i < 40 && !stderr.includes('export VAULT_TOKEN'); i++) await new Promise((r) => setTimeout(r, 50));
    const token = /Root token: {2}(\S+) {2}\(generated/.exec(stderr)?.[1];
    expect(token).toBeDefined();
    const vaults = await fetch(`http://127.0.0.1:${started.httpPort}/v1/vaults`, { headers: { authorization: `Bearer ${token}` } });
    expect(vaults.status).toBe(200);
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

  it('refuses to listen on a non-loopback address without TLS, saying how to fix it', async () => {
    const child = startProcess({ VAULT_HOST: '0.0.0.0' });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += String(chunk)));
    expect(await exitOf(child)).toBe(2);
    expect(stderr).toMatch(/VAULT_HOST="0\.0\.0\.0" is not a loopback address/);
    expect(stderr).toMatch(/set VAULT_TLS_CERT_FILE and VAULT_TLS_KEY_FILE, or VAULT_TLS_DISABLE=true/);
  });

  it('serves TLS on both ports and, on SIGHUP, serves a certificate swapped on disk to new connections', async () => {
    const pki = await createTestPki();
    try {
      const ca = await pki.ca('process');
      const first = await ca.server('first');
      const second = await ca.server('second');
      const certFile = join(pki.dir, 'tls.crt');
      const keyFile = join(pki.dir, 'tls.key');
      await copyFile(first.certFile, certFile);
      await copyFile(first.keyFile, keyFile);
      const child = startProcess({ VAULT_TLS_CERT_FILE: certFile, VAULT_TLS_KEY_FILE: keyFile });
      const started = await logLine(child, 'vault started');
      const ports = [Number(started.grpcPort), Number(started.httpPort)];
      for (const port of ports) expect(await servedSerial(port, ca.cert)).toBe(first.serial);

      await writeFile(certFile, second.cert);
      await writeFile(keyFile, second.key);
      const reloaded = logLine(child, 'TLS certificate reloaded');
      child.kill('SIGHUP');
      expect(await reloaded).toMatchObject({ certificate: { serialNumber: second.serial } });
      // The log line comes after both listeners took the new context; poll anyway, bounded.
      for (const port of ports) {
        const deadline = Date.now() + 10_000;
        let serial = await servedSerial(port, ca.cert);
        while (serial !== second.serial && Date.now() < deadline) serial = await servedSerial(port, ca.cert);
        expect(serial).toBe(second.serial);
      }

      const exited = exitOf(child);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await pki.remove();
    }
  });
});
