import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateResponse } from './support/openapi.js';
import { startTestApp, TEST_ROOT_TOKEN, type HttpResult, type TestApp } from '../support/test-app.js';

const run = promisify(execFile);

/** The error body every failure carries: google.rpc.Status JSON plus RFC 7807 fields. */
function expectErrorBody(result: HttpResult, status: number, code: number, title: string) {
  expect(result.status, result.text).toBe(status);
  expect(result.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(result.json).toEqual({ code, message: expect.any(String), details: expect.any(Array), type: 'about:blank', title, status, detail: result.json.message });
  expect(result.text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/); // never a stack trace
}

/** Sends raw bytes on a new connection and returns everything the server answers until it closes or goes quiet. */
function raw(port: number, bytes: string | Buffer, quietMs = 300): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const quiet = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, quietMs);
    };
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      quiet();
    });
    socket.on('close', finish);
    socket.on('error', finish);
    socket.write(bytes, quiet);
  });
}

describe('HTTP gateway', () => {
  let t: TestApp;
  let vaultId: string;
  let port: number;

  beforeAll(async () => {
    t = await startTestApp({ VAULT_MAX_REQUEST_BYTES: '2048' });
    port = t.app.httpPort;
    vaultId = (await t.http('POST', '/v1/vaults', { body: { name: 'http' } })).json.id;
    await t.http('PUT', `/v1/vaults/${vaultId}/secrets/api-keys/openai`, { body: { value: 'sk-1', type: 'api_key' } });
  });
  afterAll(() => t.close());

  describe('status codes', () => {
    it('answers 201 for a PUT, 200 for a read and 204 with no body for a disable and a delete', async () => {
      const put = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/codes/one`, { body: { value: 'x' } });
      expect(put.status).toBe(201);
      expect((await t.http('GET', `/v1/vaults/${vaultId}/secrets/codes%2Fone`)).status).toBe(200);
      for (const [method, path] of [
        ['POST', `/v1/vaults/${vaultId}/secret-version/codes%2Fone/1/disable`],
        ['POST', `/v1/vaults/${vaultId}/secret-version-disable/codes/one/1`],
        ['POST', `/v1/vaults/${vaultId}/secret-version/codes/one/1/enable`],
        ['DELETE', `/v1/vaults/${vaultId}/secrets/codes/one`],
      ] as const) {
        const result = await t.http(method, path);
        expect(result.status, `${method} ${path}`).toBe(204);
        expect(result.text).toBe('');
        expect(result.headers.get('content-type')).toBeNull();
      }
      expectErrorBody(await t.http('GET', `/v1/vaults/${vaultId}/secrets/codes/one`), 410, 9, 'Gone');
    });

    it('answers 401 with WWW-Authenticate: Bearer without a token or with a wrong one', async () => {
      for (const token of [null, 'wrong-token']) {
        const result = await t.http('GET', `/v1/vaults/${vaultId}/secrets/api-keys/openai`, { token });
        expectErrorBody(result, 401, 16, 'Unauthorized');
        expect(result.headers.get('www-authenticate')).toBe('Bearer');
      }
      const malformed = await t.http('GET', '/v1/vaults', { token: null, headers: { authorization: TEST_ROOT_TOKEN } });
      expectErrorBody(malformed, 401, 16, 'Unauthorized');
    });

    it('answers 404 for an unknown route, in the same error shape', async () => {
      for (const path of ['/v1/nope', '/', '/v2/vaults', `/v1/vaults/${vaultId}/secretz/a`, '/v1/health/extra']) {
        expectErrorBody(await t.http('GET', path), 404, 5, 'Not Found');
      }
    });

    it('answers 405 with an Allow header for a wrong method on a known path', async () => {
      const patch = await t.http('PATCH', `/v1/vaults/${vaultId}/secrets/api-keys/openai`, { body: {} });
      expectErrorBody(patch, 405, 12, 'Method Not Allowed');
      expect(patch.headers.get('allow')).toBe('DELETE, GET, HEAD, PUT');
      const del = await t.http('DELETE', '/v1/vaults');
      expectErrorBody(del, 405, 12, 'Method Not Allowed');
      expect(del.headers.get('allow')).toBe('GET, HEAD, POST');
      const post = await t.http('POST', '/v1/health');
      expect(post.headers.get('allow')).toBe('GET, HEAD');
    });

    it('answers HEAD on a GET route like GET, without a body', async () => {
      for (const path of ['/v1/health', '/v1/vaults', `/v1/vaults/${vaultId}/secrets`, '/v1/vaults/not-a-uuid']) {
        const get = await t.http('GET', path);
        const answer = await raw(port, `HEAD ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_ROOT_TOKEN}\r\nConnection: close\r\n\r\n`);
        const [head, body] = answer.split('\r\n\r\n');
        expect(head, path).toMatch(new RegExp(`^HTTP/1\\.1 ${get.status} `));
        expect(head).toContain(`Content-Length: ${Buffer.byteLength(get.text)}`);
        expect(body).toBe('');
      }
    });

    it('answers 415 for a body that is not JSON by its Content-Type, and takes JSON, +json, curl -d and none', async () => {
      const path = `/v1/vaults/${vaultId}/secrets/ctype/a`;
      for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/jsonx', 'text/json']) {
        const refused = await t.http('PUT', path, { body: { value: 'x' }, headers: { 'content-type': type } });
        expectErrorBody(refused, 415, 3, 'Unsupported Media Type');
        expect(refused.json.message).toMatch(/must be JSON/);
      }
      expect((await t.http('GET', path)).status).toBe(404);
      for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/merge-patch+json', 'application/x-www-form-urlencoded']) {
        const accepted = await t.http('PUT', path, { body: { value: type }, headers: { 'content-type': type } });
        expect(accepted.status, `${type}: ${accepted.text}`).toBe(201);
      }
      const none = await fetch(`${t.httpBaseUrl}${path}`, { method: 'PUT', headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}` }, body: Buffer.from('{"value":"none"}') });
      expect(none.status).toBe(201);
      // A Content-Type without a body is not a body to refuse.
      expect((await t.http('GET', path, { headers: { 'content-type': 'text/plain' } })).status).toBe(200);
    });

    it('answers 413 for a body over the limit, declared or streamed, and keeps serving', async () => {
      const big = { value: 'x'.repeat(4096) };
      expectErrorBody(await t.http('PUT', `/v1/vaults/${vaultId}/secrets/big`, { body: big }), 413, 8, 'Payload Too Large');
      // Streamed without a Content-Length (chunked).
      const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(
          { port, host: '127.0.0.1', method: 'PUT', path: `/v1/vaults/${vaultId}/secrets/big`, headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}`, 'transfer-encoding': 'chunked' } },
          (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode!, body }));
          },
        );
        req.on('error', reject);
        for (let i = 0; i < 8; i++) req.write('x'.repeat(1024));
        req.end();
      });
      expect(chunked.status).toBe(413);
      expect(JSON.parse(chunked.body)).toMatchObject({ code: 8, status: 413 });
      // curl sends `Expect: 100-continue` for large bodies: the 413 comes before the body is sent.
      const file = join(await mkdtemp(join(tmpdir(), 'gateway-413-')), 'body.json');
      await writeFile(file, JSON.stringify({ value: 'x'.repeat(64 * 1024) }));
      const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '-H', 'Expect: 100-continue', '-H', `Authorization: Bearer ${TEST_ROOT_TOKEN}`];
      const { stdout } = await run('curl', [...args, '--data-binary', `@${file}`, `${t.httpBaseUrl}/v1/vaults/${vaultId}/secrets/big`]);
      expect(stdout).toBe('413');
      await rm(dirname(file), { recursive: true });
      expect((await t.http('GET', '/v1/health')).status).toBe(200);
    });

    it.each([
      ['malformed JSON', 'PUT', '/secrets/a', '{"value": "x"', 'not valid JSON'],
      ['a wrong type', 'PUT', '/secrets/a', '{"value": 5}', 'value'],
      ['a wrong type for an int32', 'POST', '/secret-rotate/api-keys/openai', '{"length": "x"}', 'length'],
      ['a fractional int32', 'POST', '/secret-rotate/api-keys/openai', '{"length": 32.5}', 'length'],
      ['a non-object body', 'PUT', '/secrets/a', '[1,2]', 'must be a JSON object'],
      ['a field under both of its names', 'PUT', '/secrets/a', '{"value":"x","max_access_count":1,"maxAccessCount":2}', 'max_access_count'],
      ['metadata that is not an object', 'PUT', '/secrets/a', '{"value":"x","metadata":"m"}', 'Struct'],
      ['an invalid timestamp', 'PUT', '/secrets/a', '{"value":"x","expires_at":"tomorrow"}', 'RFC 3339'],
      ['a body that is not UTF-8', 'PUT', '/secrets/a', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]), 'UTF-8'],
      ['a non-numeric version', 'GET', '/secret-version/api-keys/openai/three', undefined, 'version must be a whole number, got "three"'],
      ['an out-of-range version', 'GET', '/secret-version/api-keys/openai/99999999999', undefined, 'version'],
      ['malformed percent-encoding', 'GET', '/secrets/api-keys%zzopenai', undefined, 'malformed percent-encoding'],
      ['percent-encoding that is not UTF-8', 'GET', '/secrets/api-keys%FFopenai', undefined, 'UTF-8'],
      ['malformed percent-encoding in the query', 'GET', '?prefix=%E0%A4%A', undefined, 'malformed percent-encoding'],
    ])('answers 400 for %s', async (_what, method, suffix, body, problem) => {
      const path = suffix.startsWith('?') ? `/v1/vaults/${vaultId}/secrets${suffix}` : `/v1/vaults/${vaultId}${suffix}`;
      const response = await fetch(`${t.httpBaseUrl}${path}`, { method, headers: { authorization: `Bearer ${TEST_ROOT_TOKEN}`, 'content-type': 'application/json' }, body });
      const text = await response.text();
      const result = { status: response.status, headers: response.headers, text, json: JSON.parse(text) };
      expectErrorBody(result, 400, 3, 'Bad Request');
      expect(result.json.message).toContain(problem);
      // ts-proto's lenient fromJSON would have turned {"length":"x"} into NaN; nothing was created.
    });

    it('ignores unknown fields, and accepts lowerCamelCase names', async () => {
      const put = await t.http('PUT', `/v1/vaults/${vaultId}/secrets/lenient`, { body: { value: 'x', maxAccessCount: 2, notAField: { deep: true }, expiresAt: '2999-01-01T00:00:00Z' } });
      expect(put.status).toBe(201);
      expect(put.json).toMatchObject({ path: 'lenient', version: 1, expires_at: '2999-01-01T00:00:00Z' });
      expect(put.json).not.toHaveProperty('notAField');
    });
  });

  describe('HTTP hygiene', () => {
    it('echoes a client x-request-id in the response and the log line, and makes one up otherwise', async () => {
      const ok = await t.http('GET', `/v1/vaults/${vaultId}`, { headers: { 'x-request-id': 'req-ok-123' } });
      expect(ok.headers.get('x-request-id')).toBe('req-ok-123');
      const failed = await t.http('GET', `/v1/vaults/${vaultId}/secrets/no/such`, { headers: { 'x-request-id': 'req-404-456' } });
      expect(failed.status).toBe(404);
      expect(failed.headers.get('x-request-id')).toBe('req-404-456');
      const unrouted = await t.http('GET', '/v1/nowhere', { headers: { 'x-request-id': 'req-route-789' } });
      expect(unrouted.headers.get('x-request-id')).toBe('req-route-789');
      const unsafe = await t.http('GET', '/v1/health', { headers: { 'x-request-id': 'not safe to log!' } });
      expect(unsafe.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

      const lines = t.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(lines).toContainEqual(expect.objectContaining({ requestId: 'req-ok-123', transport: 'http', method: 'vault.v1.VaultService.GetVault', code: 'OK' }));
      expect(lines).toContainEqual(expect.objectContaining({ requestId: 'req-404-456', transport: 'http', code: 'NOT_FOUND' }));
      expect(lines).toContainEqual(expect.objectContaining({ requestId: 'req-route-789', transport: 'http', httpStatus: 404 }));
    });

    it('never logs values or tokens', async () => {
      await t.http('PUT', `/v1/vaults/${vaultId}/secrets/logged`, { body: { value: 'sk-do-not-log-me' } });
      await t.http('GET', `/v1/vaults/${vaultId}/secrets/logged`);
      await t.http('PUT', `/v1/vaults/${vaultId}/secrets/logged`, { body: '{"value": "sk-do-not-log-me-either' });
      const all = t.logs.join('\n');
      expect(all).not.toContain('sk-do-not-log-me');
      expect(all).not.toContain(TEST_ROOT_TOKEN);
    });

    it('sends JSON as application/json; charset=utf-8 with no-store caching', async () => {
      const result = await t.http('GET', `/v1/vaults/${vaultId}/secrets/api-keys/openai`);
      expect(result.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(result.headers.get('cache-control')).toBe('no-store');
      expect(Number(result.headers.get('content-length'))).toBe(Buffer.byteLength(result.text));
    });

    it('keeps the connection alive across requests', async () => {
      const request = `GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n`;
      const answer = await raw(port, request + request);
      expect(answer.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
      expect(answer).toContain('Connection: keep-alive');
    });

    it('answers 431 for huge headers and 400 for garbage, in the JSON error shape', async () => {
      const huge = await raw(port, `GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      expect(huge).toMatch(/^HTTP\/1\.1 431 /);
      expect(huge).toContain('"status":431');
      const garbage = await raw(port, 'NOT HTTP AT ALL\r\n\r\n');
      expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
      expect(garbage).toContain('"code":3');
      expect((await t.http('GET', '/v1/health')).status).toBe(200);
    });
  });

  describe('hostile input', () => {
    // Random bodies on every route and method: test/e2e/fuzz.test.ts.
    it('never answers 5xx for random paths and queries', async () => {
      const piece = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('%', '%2F', '%zz', '%FF', '..', '.', '', ':', ':disable', '{x}', '**', 'secrets', 'secret-version', vaultId, '3'));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), fc.array(piece, { maxLength: 8 }), fc.string({ maxLength: 20 }), async (method, pieces, query) => {
          const path = `/v1/vaults/${pieces.map((p) => p.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c)).replace(/[#?]/g, '')).join('/')}?${encodeURI(query).replace(/#/g, '')}`;
          const answer = await raw(port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_ROOT_TOKEN}\r\nConnection: close\r\n\r\n`, 1000);
          expect(answer, path).toMatch(/^HTTP\/1\.1 [1-4]\d\d /);
        }),
        { numRuns: 120 },
      );
    });

    it('answers odd methods and odd request targets without crashing', async () => {
      const cases: Array<[string, number]> = [
        ['PROPFIND /v1/health HTTP/1.1', 405],
        ['BREW /v1/health HTTP/1.1', 400],
        ['OPTIONS * HTTP/1.1', 400],
        ['GET /v1/health HTTP/9.9', 400],
        [`GET /${'a/'.repeat(3000)} HTTP/1.1`, 404],
        ['GET /v1/health\u0000 HTTP/1.1', 400],
        // An absolute-form target is a path like any other (RFC 9112 3.2.2).
        ['GET http://elsewhere/v1/health HTTP/1.1', 200],
      ];
      for (const [line, status] of cases) {
        const answer = await raw(port, `${line}\r\nHost: x\r\nConnection: close\r\n\r\n`);
        expect(answer, line).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      }
      expect((await t.http('GET', '/v1/health')).status).toBe(200);
    });
  });

  describe('responses against the hosted API schemas', () => {
    it('validates vault, secret and health responses, with exactly the contract field names', async () => {
      const path = `/v1/vaults/${vaultId}`;
      await t.http('PUT', `${path}/secrets/schema/one`, { body: { value: 'a', metadata: { k: 'v' }, expires_at: '2999-01-01T00:00:00Z', max_access_count: 5 } });
      const checks: Array<[string, string, string, unknown?]> = [
        ['createVault', 'POST', '/v1/vaults', { name: 'schema', description: 'd' }],
        ['listVaults', 'GET', '/v1/vaults'],
        ['getVault', 'GET', path],
        ['putSecret', 'PUT', `${path}/secrets/schema/one`, { value: 'b', type: 'note' }],
        ['rotateSecret', 'POST', `${path}/secret-rotate/schema%2Fone`, { length: 16, charset: 'base64' }],
        ['getSecret', 'GET', `${path}/secrets/schema/one`],
        ['listSecrets', 'GET', `${path}/secrets`],
        ['listSecretVersions', 'GET', `${path}/secret-versions/schema%2Fone`],
        ['getSecretVersion', 'GET', `${path}/secret-version/schema%2Fone/1`],
        ['disableSecretVersion', 'POST', `${path}/secret-version-disable/schema%2Fone/1`],
        ['getSecretVersion', 'GET', `${path}/secret-version/schema%2Fone/1`],
        ['getSecret', 'GET', `${path}/secrets/schema/none`],
        ['deleteSecret', 'DELETE', `${path}/secrets/schema/one`],
        ['healthCheck', 'GET', '/v1/health'],
      ];
      for (const [operationId, method, url, body] of checks) {
        const result = await t.http(method, url, { body });
        expect(validateResponse(operationId, result.status, result.json, { strict: true }), `${method} ${url} -> ${result.status} ${result.text}`).toEqual([]);
      }
    });
  });
});
