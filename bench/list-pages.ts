/**
 * The cost of a keyset page at the end of a long list against the first one: 20,000 secrets in
 * one vault, ListSecrets' storage query for the first page of 100 and for the last, alternated so
 * load on the machine hits both alike. VAULT_BENCH_DATABASE_URL is required (an empty database).
 */
import { randomUUID } from 'node:crypto';
import { createConnection } from 'mysql2/promise';
import { createMysqlStorage } from '../src/storage/mysql/mysql-store.js';

const url = process.env.VAULT_BENCH_DATABASE_URL;
if (!url) throw new Error('set VAULT_BENCH_DATABASE_URL=mysql://user:pw@127.0.0.1:3306/db');
const COUNT = 20_000;
const PAGE = 100;
const storage = await createMysqlStorage({ url, poolSize: 2 });
const vaultId = randomUUID();
await storage.vaults.create({ id: vaultId, name: 'bench', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date() }, []);

// Rows as the store writes them, inserted in bulk: the listing is measured, not the writing.
const paths = Array.from({ length: COUNT }, (_, i) => `bench/${String(i).padStart(6, '0')}`);
const sql = await createConnection(url);
for (let from = 0; from < COUNT; from += 1000) {
  const chunk = paths.slice(from, from + 1000);
  await sql.query('INSERT INTO secrets (vault_id, path, last_version, deleted) VALUES ?', [chunk.map((p) => [Buffer.from(vaultId), Buffer.from(p), 1, 0])]);
  await sql.query(
    'INSERT INTO secret_versions (vault_id, path, version, id, type, metadata, ciphertext, created_by, created_at, expires_at, max_access_count) VALUES ?',
    [chunk.map((p) => [Buffer.from(vaultId), Buffer.from(p), 1, Buffer.from(randomUUID()), 'generic', '{"owner":"bench"}', Buffer.alloc(1100), 'root', new Date(), null, 0])],
  );
}
await sql.end();

const first = () => storage.secrets.listLatest(vaultId, '', { limit: PAGE + 1 });
const last = () => storage.secrets.listLatest(vaultId, '', { after: paths[COUNT - PAGE - 1], limit: PAGE + 1 });
if ((await first()).length !== PAGE + 1 || (await last()).length !== PAGE) throw new Error('unexpected page sizes');

const ROUNDS = 400;
const times = { first: [] as number[], last: [] as number[] };
for (let i = 0; i < 50; i++) await Promise.all([first(), last()]);
for (let i = 0; i < ROUNDS; i++) {
  for (const [name, op] of i % 2 ? ([['first', first], ['last', last]] as const) : ([['last', last], ['first', first]] as const)) {
    const started = performance.now();
    await op();
    times[name].push(performance.now() - started);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [f, l] = [median(times.first), median(times.last)];
console.log(`${COUNT} secrets, page of ${PAGE}: first page p50 ${f.toFixed(3)} ms, last page p50 ${l.toFixed(3)} ms (last/first ${(l / f).toFixed(2)})`);
await storage.close();
