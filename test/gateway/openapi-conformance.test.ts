import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type HttpResult, type TestApp } from '../support/test-app.js';
import { validate, validateResponse } from './support/openapi.js';

describe('the OpenAPI subset validator', () => {
  const secret = { $ref: '#/components/schemas/SecretResponse' };
  const good = { id: '0b7a4c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b', path: 'a', type: 'generic', value: 'v', version: 1, created_at: '2030-01-01T00:00:00Z' };

  it('accepts a conforming body and reports each kind of problem', () => {
    expect(validate(secret, good)).toEqual([]);
    const { value: _value, ...withoutValue } = good;
    expect(validate(secret, withoutValue)).toEqual(['$: missing required property value']);
    expect(validate(secret, { ...good, version: '1' })).toEqual(['$.version: expected integer, got string "1"']);
    expect(validate(secret, { ...good, version: 1.5 })).toEqual(['$.version: expected integer, got number 1.5']);
    expect(validate(secret, { ...good, created_at: '2030-01-01' })).toEqual(['$.created_at: "2030-01-01" is not an RFC 3339 date-time']);
    expect(validate(secret, { ...good, id: 'nope' })).toEqual(['$.id: "nope" is not a uuid']);
    expect(validate(secret, { ...good, expires_at: null })).toEqual(['$.expires_at: is null']);
    expect(validate(secret, { ...good, createdAt: 'x' })).toEqual([]);
    expect(validate(secret, { ...good, createdAt: 'x' }, { strict: true })).toEqual(['$: unexpected property createdAt']);
    expect(validate({ $ref: '#/components/schemas/RotateSecretRequest' }, { length: 7, charset: 'emoji' })).toEqual([
      '$.length: 7 < minimum 8',
      '$.charset: "emoji" is not one of ["hex","base64","alphanumeric","ascii"]',
    ]);
    expect(validate({ $ref: '#/components/schemas/AgentResponse' }, { id: good.id, name: 'n', auth_method: 'api_key', is_active: true, created_at: good.created_at, token_ttl_seconds: null })).toEqual([]);
    expect(validate({ oneOf: [] }, 1)).toEqual(['$: schema uses unsupported keywords oneOf']);
  });

  it('checks statuses against the operation', () => {
    expect(validateResponse('deleteSecret', 204, undefined)).toEqual([]);
    expect(validateResponse('deleteSecret', 200, {})).toEqual(['deleteSecret: status 200 is not one the hosted API documents (204, 404)']);
    expect(validateResponse('deleteSecret', 204, {})).toEqual(['deleteSecret 204: the hosted API documents no body, got {}']);
    expect(validateResponse('getSecret', 404, { type: 'about:blank', title: 'Not Found', status: 404, detail: 'x' })).toEqual([]);
  });
});

/** Every key of a response is a proto (snake_case) name, except inside free-form JSON objects. */
function snakeCaseKeys(value: unknown, at = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => snakeCaseKeys(item, `${at}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, item]) => [
    ...(/^[a-z0-9_@]+$/.test(key) ? [] : [`${at}.${key}`]),
    ...(['metadata', 'conditions', 'details'].includes(key) ? [] : snakeCaseKeys(item, `${at}.${key}`)),
  ]);
}

/**
 * The rest of the hosted API the gateway serves (agents, token exchange, policies, audit), checked
 * against the hosted schemas. The vault and secret operations are checked strictly (exactly the
 * contract's field names) in http-gateway.test.ts and by the scenario's HTTP driver.
 */
describe('the hosted API operations beyond secrets', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  /**
   * Known differences between the hosted schemas and this service that the gateway cannot fix
   * (they come from the domain), listed so that nothing else can slip through.
   */
  const KNOWN_DEVIATIONS: string[] = [];

  function check(operationId: string, result: HttpResult, status: number) {
    expect(result.status, result.text).toBe(status);
    const problems = validateResponse(operationId, result.status, result.json).filter((p) => !KNOWN_DEVIATIONS.includes(p));
    expect(problems, result.text).toEqual([]);
    expect(snakeCaseKeys(result.json), result.text).toEqual([]);
  }

  it('validates agents, the token exchange, policies and the audit trail', async () => {
    const served = new Set(t.app.methods.map((m) => m.fullName));
    expect(['AgentService.CreateAgent', 'AuthService.CreateAgentToken', 'PolicyService.CreatePolicy', 'AuditService.ListAuditEvents'].filter((rpc) => !served.has(`vault.v1.${rpc}`))).toEqual([]);
    const vault = (await t.http('POST', '/v1/vaults', { body: { name: 'conformance' } })).json;

    const created = await t.http('POST', '/v1/agents', { body: { name: 'ci-agent', description: 'deploys', scopes: ['deploy'] } });
    check('createAgent', created, 201);
    const agentId = created.json.agent.id as string;
    check('listAgents', await t.http('GET', '/v1/agents'), 200);
    check('getAgent', await t.http('GET', `/v1/agents/${agentId}`), 200);
    check('updateAgent', await t.http('PATCH', `/v1/agents/${agentId}`, { body: { name: 'ci-agent-2' } }), 200);

    const rotated = await t.http('POST', `/v1/agents/${agentId}/rotate-key`);
    check('rotateAgentKey', rotated, 200);
    const token = await t.http('POST', '/v1/auth/agent-token', { token: null, body: { agent_id: agentId, api_key: rotated.json.api_key } });
    check('agentToken', token, 200);
    check('getAgentSelf', await t.http('GET', '/v1/agents/me', { token: token.json.access_token }), 200);
    expect((await t.http('POST', '/v1/auth/agent-token', { token: null, body: { api_key: created.json.api_key } })).status).toBe(401);

    const policy = await t.http('POST', `/v1/vaults/${vault.id}/policies`, {
      body: { secret_path_pattern: 'api-keys/**', principal_type: 'agent', principal_id: agentId, permissions: ['read'] },
    });
    check('createPolicy', policy, 201);
    check('listPolicies', await t.http('GET', `/v1/vaults/${vault.id}/policies`), 200);
    check('updatePolicy', await t.http('PUT', `/v1/vaults/${vault.id}/policies/${policy.json.id}`, { body: { permissions: ['read', 'write'] } }), 200);
    check('deletePolicy', await t.http('DELETE', `/v1/vaults/${vault.id}/policies/${policy.json.id}`), 204);

    check('queryAuditEvents', await t.http('GET', '/v1/audit/events?limit=5&action=secret.read'), 200);
    check('verifyAuditChain', await t.http('GET', '/v1/audit/verify'), 200);
    check('deleteAgent', await t.http('DELETE', `/v1/agents/${agentId}`), 204);
  });
});
