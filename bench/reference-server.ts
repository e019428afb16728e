/**
 * The reference for `npm run bench`: a bare grpc-js server on the same MariaDB doing only the work
 * a vault call cannot avoid, so the vault's figures can be read as a fraction of what the database
 * allows. It serves SecretService's GetSecret and PutSecret (same messages, same client) and
 * nothing else: no authentication, no policies, no audit, no stages, no validation.
 *  - read: one SELECT on primary keys (path row joined to its newest version) and a decrypt;
 *  - write: an encrypt, then a counter bump, one INSERT and a COMMIT.
 *
 * Run as its own process by bench/run.ts: REF_DATABASE_URL, REF_PORT, REF_POOL_SIZE.
 */
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { createPool, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { randomBytes, randomUUID } from 'node:crypto';
import { SecretServiceService, type GetSecretRequest, type GetSecretResponse, type PutSecretRequest, type PutSecretResponse } from '../src/gen/vault/v1/secret_service.js';

const url = process.env.REF_DATABASE_URL;
if (!url) throw new Error('REF_DATABASE_URL is required');
const pool = createPool({ uri: url, connectionLimit: Number(process.env.REF_POOL_SIZE ?? 16) });
const key = randomBytes(32);
const NONCE = 24;

await pool.query(`CREATE TABLE IF NOT EXISTS ref_paths (
  vault_id VARBINARY(64) NOT NULL, path VARBINARY(512) NOT NULL, last_version INT NOT NULL,
  PRIMARY KEY (vault_id, path)) ENGINE=InnoDB`);
await pool.query(`CREATE TABLE IF NOT EXISTS ref_versions (
  vault_id VARBINARY(64) NOT NULL, path VARBINARY(512) NOT NULL, version INT NOT NULL,
  ciphertext MEDIUMBLOB NOT NULL, created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (vault_id, path, version)) ENGINE=InnoDB`);

function fail(callback: sendUnaryData<never>, error: unknown) {
  callback({ code: status.INTERNAL, details: error instanceof Error ? error.message : String(error) }, null);
}

async function get(request: GetSecretRequest): Promise<GetSecretResponse> {
  const [rows] = await pool.execute<RowDataPacket[]>(
    `SELECT v.version, v.ciphertext, v.created_at FROM ref_paths p
     JOIN ref_versions v ON v.vault_id = p.vault_id AND v.path = p.path AND v.version = p.last_version
     WHERE p.vault_id = ? AND p.path = ?`,
    [Buffer.from(request.vaultId), Buffer.from(request.path)],
  );
  const row = rows[0];
  if (!row) throw Object.assign(new Error('not found'), { code: status.NOT_FOUND });
  const sealed = row.ciphertext as Buffer;
  const value = xchacha20poly1305(key, sealed.subarray(0, NONCE)).decrypt(sealed.subarray(NONCE));
  return {
    secret: {
      id: '', path: request.path, type: 'generic', value: Buffer.from(value).toString('utf8'), version: row.version as number,
      createdBy: 'root', createdAt: row.created_at as Date,
    },
  };
}

async function put(request: PutSecretRequest): Promise<PutSecretResponse> {
  const nonce = randomBytes(NONCE);
  const ciphertext = Buffer.concat([nonce, xchacha20poly1305(key, nonce).encrypt(Buffer.from(request.value))]);
  const connection = await pool.getConnection();
  try {
    await connection.query('START TRANSACTION');
    const [bumped] = await connection.execute<ResultSetHeader>(
      `INSERT INTO ref_paths (vault_id, path, last_version) VALUES (?, ?, 1)
       ON DUPLICATE KEY UPDATE last_version = LAST_INSERT_ID(last_version + 1)`,
      [Buffer.from(request.vaultId), Buffer.from(request.path)],
    );
    const version = bumped.affectedRows === 1 ? 1 : bumped.insertId;
    const createdAt = new Date();
    await connection.execute('INSERT INTO ref_versions (vault_id, path, version, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)', [
      Buffer.from(request.vaultId), Buffer.from(request.path), version, ciphertext, createdAt,
    ]);
    await connection.query('COMMIT');
    return { secret: { id: randomUUID(), path: request.path, type: 'generic', version, createdAt } };
  } catch (error) {
    await connection.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    connection.release();
  }
}

const server = new Server();
server.addService(SecretServiceService, {
  getSecret: (call: ServerUnaryCall<GetSecretRequest, GetSecretResponse>, callback: sendUnaryData<GetSecretResponse>) =>
    get(call.request).then((r) => callback(null, r), (e: unknown) => fail(callback, e)),
  putSecret: (call: ServerUnaryCall<PutSecretRequest, PutSecretResponse>, callback: sendUnaryData<PutSecretResponse>) =>
    put(call.request).then((r) => callback(null, r), (e: unknown) => fail(callback, e)),
} as never);
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${process.env.REF_PORT ?? 0}`, ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
);
console.log(JSON.stringify({ listening: port }));
process.on('SIGTERM', () => server.tryShutdown(() => void pool.end().then(() => process.exit(0))));
// A clean stop on SIGTERM lets `node --cpu-prof` write its profile.
