/**
 * Times the storage calls one GetSecret makes, without gRPC, against MySQL, one at a time:
 * how close a read is to one database round trip. VAULT_BENCH_DATABASE_URL is required.
 */
import { randomUUID } from 'node:crypto';
import { createMysqlStorage } from '../src/storage/mysql/mysql-store.js';

const url = process.env.VAULT_BENCH_DATABASE_URL;
if (!url) throw new Error('set VAULT_BENCH_DATABASE_URL=mysql://user:pw@127.0.0.1:3306/db');
const storage = await createMysqlStorage({ url, poolSize: 4 });
const vaultId = randomUUID();
await storage.vaults.create({ id: vaultId, name: 'b', description: '', createdBy: 'root', createdByType: 'root', createdAt: new Date() }, []);
await storage.secrets.append(vaultId, 'p', () => ({ id: randomUUID(), type: 'generic', metadata: null, ciphertext: new Uint8Array(1100), createdBy: 'root', createdAt: new Date(), expiresAt: null, maxAccessCount: 0 }), () => []);
const event = () => ({ id: randomUUID(), action: 'secret.read', actorType: 'root', actorId: 'root', resourceType: 'secret', resourceId: 'p', vaultId, outcome: 'success', details: { version: 1 }, requestId: 'r', createdAt: new Date() });

async function time(name: string, op: () => Promise<unknown>, n = 2000) {
  for (let i = 0; i < 100; i++) await op();
  const started = performance.now();
  for (let i = 0; i < n; i++) await op();
  console.log(`${name.padEnd(30)} ${((performance.now() - started) / n).toFixed(3)} ms`);
}
await time('ping (SELECT 1)', () => storage.ping());
await time('lookup latest', () => storage.secrets.lookup(vaultId, 'p', { kind: 'latest' }));
await time('appendAudit (1 event)', () => storage.appendAudit([event()]));
await time('consumeRead', () => storage.secrets.consumeRead(vaultId, 'p', 1, [event()]));
await time('append (new version)', () => storage.secrets.append(vaultId, 'q', () => ({ id: randomUUID(), type: 'generic', metadata: null, ciphertext: new Uint8Array(1100), createdBy: 'root', createdAt: new Date(), expiresAt: null, maxAccessCount: 0 }), () => [event()]), 500);
await storage.close();
