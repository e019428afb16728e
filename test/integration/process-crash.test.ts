import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, describeWithDatabase, type TestDatabase } from '../support/database.js';

/**
 * The vault process is SIGKILLed mid-load (no graceful shutdown, no finally blocks): whatever it
 * acknowledged must survive, version numbers stay gapless, and read budgets hold across the crash.
 */
const ROOT_TOKEN = 'process-crash-root-token-0123456789';
const MASTER_KEY = randomBytes(32).toString('base64');
/** Bounds every request, so a hung call fails the test instead of timing it out. */
const REQUEST_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 30_000;

interface VaultProcess {
  child: ChildProcessWithoutNullStreams;
  base: string;
  exited: Promise<void>;
}

/** Runs `src/main.ts` as `npm start` does and resolves once it logs "vault started". */
async function startVault(databaseUrl: string): Promise<VaultProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      VAULT_DATABASE_URL: databaseUrl,
      VAULT_MASTER_KEY: MASTER_KEY,
      VAULT_ROOT_TOKEN: ROOT_TOKEN,
      VAULT_GRPC_PORT: '0',
      VAULT_HTTP_PORT: '0',
    },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += String(chunk)));
  // Reading every line also keeps the stdout pipe drained: a full pipe would block the process.
  const lines = createInterface({ input: child.stdout });
  const started = await new Promise<{ httpPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "vault started" within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`)), START_TIMEOUT_MS);
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      const parsed = JSON.parse(line) as { msg?: string; httpPort?: number };
      if (parsed.msg === 'vault started') (clearTimeout(timer), resolve({ httpPort: parsed.httpPort! }));
    });
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`exited with ${code} before starting; stderr: ${stderr}`))));
  }).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  return { child, base: `http://127.0.0.1:${started.httpPort}`, exited };
}

/** One HTTP call with the root token: the status and parsed body, or the network error's name. */
async function request(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ROOT_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

describeWithDatabase('the vault process killed with SIGKILL mid-load', () => {
  let db: TestDatabase;
  const processes: VaultProcess[] = [];

  beforeAll(async () => {
    db = (await createTestDatabase())!;
  });
  afterAll(async () => {
    for (const p of processes) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    await db?.drop();
  });

  it('loses no acknowledged write, keeps versions gapless and read budgets intact', async () => {
    const first = await startVault(db.url);
    processes.push(first);
    const vault = await request(first.base, 'POST', '/v1/vaults', { name: 'crash' });
    expect(vault.status).toBe(201);
    const secrets = `/v1/vaults/${vault.json.id}`;
    // Large enough that the readers below cannot spend it before the kill.
    const budget = 400;
    expect((await request(first.base, 'PUT', `${secrets}/secrets/crash/budgeted`, { value: 'limited', max_access_count: budget })).status).toBe(201);

    // Load: concurrent writes to one path and reads of the budgeted secret, killed part-way.
    const total = 60;
    let acknowledged = 0;
    const puts = Array.from({ length: total }, (_, i) =>
      request(first.base, 'PUT', `${secrets}/secrets/crash/counter`, { value: `crash-${i}` }).then(
        (r) => (r.status === 201 && acknowledged++, { i, status: r.status, version: r.json?.version as number | undefined }),
        () => ({ i, status: 0, version: undefined }), // connection reset or refused by the kill
      ),
    );
    // Readers spend the budget until the kill, so some reads are in flight when it lands.
    const readers = 4;
    let killed = false;
    const readsBefore = Array.from({ length: readers }, async () => {
      const statuses: number[] = [];
      while (!killed) statuses.push(await request(first.base, 'GET', `${secrets}/secrets/crash/budgeted`).then((r) => r.status, () => 0));
      return statuses;
    });
    const crashBy = Date.now() + REQUEST_TIMEOUT_MS;
    while (acknowledged < 15 && Date.now() < crashBy) await new Promise((resolve) => setTimeout(resolve, 1));
    killed = true;
    first.child.kill('SIGKILL');
    await first.exited;
    const results = await Promise.all(puts);
    const servedBefore = (await Promise.all(readsBefore)).flat().filter((s) => s === 200).length;
    expect(servedBefore).toBeLessThan(budget);

    const second = await startVault(db.url);
    processes.push(second);
    const ok = results.filter((r) => r.status === 201);
    expect(ok.length).toBeGreaterThanOrEqual(15);
    for (const { i, version } of ok) {
      const read = await request(second.base, 'GET', `${secrets}/secret-version/crash/counter/${version}`);
      expect(read).toMatchObject({ status: 200, json: { value: `crash-${i}`, version } });
    }
    // Writes cut off by the kill may or may not have committed; the numbers must be 1..N either way.
    const listed = await request(second.base, 'GET', `${secrets}/secret-versions/crash/counter`);
    const versions = (listed.json.versions as Array<{ version: number }>).map((v) => v.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: versions.length }, (_, k) => k + 1));
    expect(versions.length).toBeLessThanOrEqual(total);
    expect((await request(second.base, 'PUT', `${secrets}/secrets/crash/counter`, { value: 'after' })).json.version).toBe(versions.length + 1);

    // Reads in flight at the kill (at most one per reader) may have spent budget without being
    // answered, never the reverse: both processes together serve at most the budget, and it ends
    // spent after at most `readers` fewer reads than that.
    const readsAfter: number[] = [];
    for (let batch = 0; !readsAfter.includes(410) && batch <= budget / 20 + 1; batch++) {
      readsAfter.push(...(await Promise.all(Array.from({ length: 20 }, () => request(second.base, 'GET', `${secrets}/secrets/crash/budgeted`).then((r) => r.status)))));
    }
    expect(readsAfter.filter((s) => s !== 200 && s !== 410)).toEqual([]);
    expect(readsAfter).toContain(410);
    const served = servedBefore + readsAfter.filter((s) => s === 200).length;
    expect(served).toBeLessThanOrEqual(budget);
    expect(served).toBeGreaterThanOrEqual(budget - readers);
    // Audit events the first process wrote but never sealed are sealed by the second.
    expect((await request(second.base, 'GET', '/v1/audit/verify')).json).toMatchObject({ chain_valid: true });
  }, 90_000);
});
