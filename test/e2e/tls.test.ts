import { credentials, Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { copyFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { connect as connectHttp2 } from 'node:http2';
import { connect as connectTls, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VaultServiceClient } from '../../src/gen/vault/v1/vault_service.js';
import { TlsFilesError } from '../../src/tls/server-tls.js';
import { startTestApp, TEST_ROOT_TOKEN, unary, type TestApp } from '../support/test-app.js';
import { createTestPki, type Issued, type TestCa, type TestPki } from '../support/test-pki.js';

/** Client-side TLS material: the CA to trust and, for mTLS, a certificate and key. */
interface ClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

function rootMetadata(): Metadata {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${TEST_ROOT_TOKEN}`);
  return metadata;
}

/** A CreateVault call over a fresh gRPC channel with these credentials; closes the channel after. */
async function createVaultOverGrpc(port: number, channelCredentials: ChannelCredentials): Promise<string> {
  const client = new VaultServiceClient(`127.0.0.1:${port}`, channelCredentials);
  try {
    const response = await new Promise<{ vault?: { id: string } }>((resolve, reject) =>
      client.createVault({ name: 'tls', description: '' }, rootMetadata(), { deadline: Date.now() + 10_000 }, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
    return response.vault!.id;
  } finally {
    client.close();
  }
}

const grpcTls = ({ ca, cert, key }: ClientTls) => credentials.createSsl(ca, key ?? null, cert ?? null);

interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  served: PeerCertificate;
  /** The TLS socket the request went over (for checking a keep-alive connection is reused). */
  socket: object;
}

/** One HTTPS request to 127.0.0.1 with the root token. */
function httpsCall(port: number, path: string, tls: ClientTls, options: { agent?: Agent; method?: string; body?: string } = {}): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}` },
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        agent: options.agent ?? false,
      },
      (res) => {
        const socket = res.socket as import('node:tls').TLSSocket;
        const served = socket.getPeerCertificate();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, served, socket }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** The certificate a new TLS connection to `port` is served (ALPN h2, as gRPC clients ask). */
function servedCertificate(port: number, tls: ClientTls): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca: tls.ca, cert: tls.cert, key: tls.key, ALPNProtocols: ['h2'] }, () => {
      const served = socket.getPeerCertificate();
      socket.end();
      resolve(served);
    });
    socket.on('error', reject);
  });
}

/** The error of a call that must fail; fails the test if it succeeds. */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

describe('TLS on both listeners', () => {
  let pki: TestPki;
  let ca: TestCa;
  let otherCa: TestCa;
  let server: Issued;
  let apps: TestApp[] = [];

  beforeAll(async () => {
    pki = await createTestPki();
    ca = await pki.ca('vault');
    otherCa = await pki.ca('other');
    server = await ca.server('vault-server');
  });
  afterEach(async () => {
    await Promise.all(apps.map((app) => app.close()));
    apps = [];
  });
  afterAll(() => pki?.remove());

  const start = async (env: Record<string, string>) => {
    const app = await startTestApp(env);
    apps.push(app);
    return app;
  };
  const tlsEnv = (extra: Record<string, string> = {}) => ({ VAULT_TLS_CERT_FILE: server.certFile, VAULT_TLS_KEY_FILE: server.keyFile, ...extra });

  it('serves gRPC and HTTPS to a client trusting the CA, with HSTS, and refuses plaintext clients', async () => {
    const t = await start(tlsEnv());
    expect(t.app.tls?.serialNumber).toBe(server.serial);

    expect(await createVaultOverGrpc(t.app.grpcPort, grpcTls({ ca: ca.cert }))).toMatch(/.+/);
    const https = await httpsCall(t.app.httpPort, '/v1/vaults', { ca: ca.cert });
    expect(https.status).toBe(200);
    expect(https.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(https.served.serialNumber).toBe(server.serial);

    const plainGrpc = (await failure(createVaultOverGrpc(t.app.grpcPort, credentials.createInsecure()))) as ServiceError;
    expect(plainGrpc.code).toBe(status.UNAVAILABLE);
    await expect(fetch(`http://127.0.0.1:${t.app.httpPort}/v1/health`)).rejects.toThrow();
    // A client that does not trust the issuing CA refuses the server.
    expect(((await failure(createVaultOverGrpc(t.app.grpcPort, grpcTls({ ca: otherCa.cert })))) as ServiceError).code).toBe(status.UNAVAILABLE);
    expect((await failure(httpsCall(t.app.httpPort, '/v1/health', { ca: otherCa.cert }))).message).toMatch(/certificate/);
  });

  it('sends no HSTS header in plaintext', async () => {
    const t = await start({});
    const response = await t.http('GET', '/v1/health');
    expect(response.status).toBe(200);
    expect(response.headers.get('strict-transport-security')).toBeNull();
  });

  it('with a client CA, refuses clients without a certificate or with one of another CA, on both transports', async () => {
    const t = await start(tlsEnv({ VAULT_TLS_CLIENT_CA_FILE: ca.certFile }));
    const good = await ca.client('agent-1');
    const foreign = await otherCa.client('intruder');

    expect(await createVaultOverGrpc(t.app.grpcPort, grpcTls({ ca: ca.cert, cert: good.cert, key: good.key }))).toMatch(/.+/);
    expect((await httpsCall(t.app.httpPort, '/v1/vaults', { ca: ca.cert, cert: good.cert, key: good.key })).status).toBe(200);

    for (const client of [{ ca: ca.cert }, { ca: ca.cert, cert: foreign.cert, key: foreign.key }]) {
      expect(((await failure(createVaultOverGrpc(t.app.grpcPort, grpcTls(client)))) as ServiceError).code).toBe(status.UNAVAILABLE);
      await failure(httpsCall(t.app.httpPort, '/v1/health', client));
    }
  });

  it('serves a certificate swapped on disk to new connections after a reload, keeping open connections', async () => {
    // The service reads these paths; the test replaces their contents.
    const certFile = join(pki.dir, 'served.crt');
    const keyFile = join(pki.dir, 'served.key');
    await copyFile(server.certFile, certFile);
    await copyFile(server.keyFile, keyFile);
    const t = await start({ VAULT_TLS_CERT_FILE: certFile, VAULT_TLS_KEY_FILE: keyFile });
    const client = { ca: ca.cert };

    // Connections opened before the reload: an HTTPS keep-alive socket and an HTTP/2 session to the gRPC port.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = await httpsCall(t.app.httpPort, '/v1/health', client, { agent });
    expect(before.served.serialNumber).toBe(server.serial);
    const session = connectHttp2(`https://127.0.0.1:${t.app.grpcPort}`, { ca: ca.cert, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => session.once('connect', () => resolve()).once('error', reject));
    const sessionClosed = new Promise<string>((resolve) => session.once('close', () => resolve('closed')));

    const next = await ca.server('vault-server-next');
    await writeFile(certFile, next.cert);
    await writeFile(keyFile, next.key);
    expect(t.app.reloadTls()?.serialNumber).toBe(next.serial);

    expect((await servedCertificate(t.app.grpcPort, client)).serialNumber).toBe(next.serial);
    const fresh = await httpsCall(t.app.httpPort, '/v1/health', client);
    expect(fresh.served.serialNumber).toBe(next.serial);
    expect(t.app.tls?.serialNumber).toBe(next.serial);
    expect(await createVaultOverGrpc(t.app.grpcPort, grpcTls(client))).toMatch(/.+/);

    // The keep-alive socket is still the same one, on the old certificate.
    const reused = await httpsCall(t.app.httpPort, '/v1/health', client, { agent });
    expect(reused.socket).toBe(before.socket);
    expect(reused.served.serialNumber).toBe(server.serial);
    // The HTTP/2 session is still open and answers a gRPC request (UNIMPLEMENTED for an unknown method).
    const grpcStatus = await new Promise<string | undefined>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/no.such.Service/Call', 'content-type': 'application/grpc', te: 'trailers' });
      let headerStatus: string | undefined;
      stream.on('response', (headers) => (headerStatus = headers['grpc-status'] as string | undefined));
      stream.on('trailers', (trailers) => resolve((trailers['grpc-status'] as string | undefined) ?? headerStatus));
      stream.on('end', () => resolve(headerStatus));
      stream.on('error', reject);
      stream.end();
    });
    expect(grpcStatus).toBe(String(status.UNIMPLEMENTED));
    expect((session.socket as unknown as import('node:tls').TLSSocket).getPeerCertificate().serialNumber).toBe(server.serial);
    expect(await Promise.race([sessionClosed, Promise.resolve('open')])).toBe('open');
    session.close();
    agent.destroy();
  });

  it('keeps serving the current certificate when the new files are unusable, naming the variable', async () => {
    const certFile = join(pki.dir, 'broken.crt');
    const keyFile = join(pki.dir, 'broken.key');
    await copyFile(server.certFile, certFile);
    await copyFile(server.keyFile, keyFile);
    const t = await start({ VAULT_TLS_CERT_FILE: certFile, VAULT_TLS_KEY_FILE: keyFile });

    const other = await ca.server('mismatched');
    await writeFile(keyFile, other.key); // a key that does not belong to the certificate
    let caught: unknown;
    try {
      t.app.reloadTls();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TlsFilesError);
    expect((caught as Error).message).toMatch(/VAULT_TLS_KEY_FILE does not match the certificate in VAULT_TLS_CERT_FILE/);
    expect((caught as Error).message).not.toContain('PRIVATE KEY');

    await writeFile(certFile, 'not a certificate');
    expect(() => t.app.reloadTls()).toThrow(/VAULT_TLS_CERT_FILE .* holds no PEM certificate/);
    expect((await servedCertificate(t.app.grpcPort, { ca: ca.cert })).serialNumber).toBe(server.serial);
    expect((await httpsCall(t.app.httpPort, '/v1/health', { ca: ca.cert })).served.serialNumber).toBe(server.serial);
  });
});
