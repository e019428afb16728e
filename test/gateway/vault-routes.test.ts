import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandPathTemplate, splitRequestPath } from '../../src/gateway/path-template.js';
import { createRouteTable, descriptorRegistry, type RouteTable } from '../../src/gateway/route-table.js';
import { AgentServiceService } from '../../src/gen/vault/v1/agent_service.js';
import { SecretServiceService } from '../../src/gen/vault/v1/secret_service.js';
import { SystemServiceService } from '../../src/gen/vault/v1/system_service.js';
import { VaultServiceService } from '../../src/gen/vault/v1/vault_service.js';
import type { ApiMethod } from '../../src/rpc/api-method.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';

const registry = descriptorRegistry(loadDescriptorSetBytes());

/** ApiMethods for a generated service whose handlers are never called: only routing is tested. */
function served(definition: ServiceDefinition): ApiMethod[] {
  return Object.values(definition).map((method: MethodDefinition<unknown, unknown>) => ({
    path: method.path,
    fullName: method.path.slice(1).replace('/', '.'),
    definition: method,
    requiresAuth: true,
    handle: () => Promise.reject(new Error('not called')),
  }));
}

const vaultAndSecrets = createRouteTable({ methods: [...served(VaultServiceService), ...served(SecretServiceService), ...served(SystemServiceService)], registry });

function routed(table: RouteTable, method: string, path: string) {
  const match = table.match(method, splitRequestPath(path));
  if (match.kind !== 'matched') return match;
  return { rpc: match.route.method.fullName.split('.').pop(), ...Object.fromEntries(match.bindings.map((b) => [b.fieldPath.join('.'), b.value])) };
}

const V = '0b7a4c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b';

describe('routes of vault.v1 from the google.api.http annotations', () => {
  it('routes every REST path of the contract, raw and percent-encoded', () => {
    const cases: Array<[string, string, object]> = [
      ['PUT', `/v1/vaults/${V}/secrets/api-keys/openai`, { rpc: 'PutSecret', vault_id: V, path: 'api-keys/openai' }],
      ['GET', `/v1/vaults/${V}/secrets/api-keys%2Fopenai`, { rpc: 'GetSecret', vault_id: V, path: 'api-keys/openai' }],
      ['DELETE', `/v1/vaults/${V}/secrets/a/b/c`, { rpc: 'DeleteSecret', path: 'a/b/c' }],
      ['POST', `/v1/vaults/${V}/secret-rotate/api-keys%2Fdb-password`, { rpc: 'RotateSecret', path: 'api-keys/db-password' }],
      ['GET', `/v1/vaults/${V}/secret-versions/api-keys%2Fopenai`, { rpc: 'ListSecretVersions', path: 'api-keys/openai' }],
      ['GET', `/v1/vaults/${V}/secret-version/api-keys%2Fopenai/3`, { rpc: 'GetSecretVersion', path: 'api-keys/openai', version: '3' }],
      ['GET', `/v1/vaults/${V}/secret-version/api-keys/openai/3`, { rpc: 'GetSecretVersion', path: 'api-keys/openai', version: '3' }],
      ['POST', `/v1/vaults/${V}/secret-version/api-keys%2Fopenai/2/disable`, { rpc: 'DisableSecretVersion', path: 'api-keys/openai', version: '2' }],
      ['POST', `/v1/vaults/${V}/secret-version/api-keys/openai/2/disable`, { rpc: 'DisableSecretVersion', path: 'api-keys/openai', version: '2' }],
      ['POST', `/v1/vaults/${V}/secret-version-disable/api-keys/openai/2`, { rpc: 'DisableSecretVersion', path: 'api-keys/openai', version: '2' }],
      ['POST', `/v1/vaults/${V}/secret-version/api-keys/openai/2/enable`, { rpc: 'EnableSecretVersion', path: 'api-keys/openai', version: '2' }],
      ['GET', `/v1/vaults/${V}/secrets`, { rpc: 'ListSecrets', vault_id: V }],
      ['POST', '/v1/vaults', { rpc: 'CreateVault' }],
      ['GET', '/v1/vaults', { rpc: 'ListVaults' }],
      ['GET', `/v1/vaults/${V}`, { rpc: 'GetVault', vault_id: V }],
      ['DELETE', `/v1/vaults/${V}`, { rpc: 'DeleteVault', vault_id: V }],
      ['GET', '/v1/health', { rpc: 'GetHealth' }],
    ];
    for (const [method, path, expected] of cases) expect(routed(vaultAndSecrets, method, path), `${method} ${path}`).toMatchObject(expected);
  });

  it('prefers the template without ** (list) over a ** matching nothing', () => {
    expect(routed(vaultAndSecrets, 'GET', `/v1/vaults/${V}/secrets`)).toEqual({ rpc: 'ListSecrets', vault_id: V });
    // With a trailing slash the ** route matches an empty path, which validation then rejects.
    expect(routed(vaultAndSecrets, 'GET', `/v1/vaults/${V}/secrets/`)).toEqual({ rpc: 'GetSecret', vault_id: V, path: '' });
  });

  it('answers 405 with the methods that do match, and 404 when nothing does', () => {
    expect(routed(vaultAndSecrets, 'PATCH', `/v1/vaults/${V}/secrets/a`)).toEqual({ kind: 'method-not-allowed', allowed: ['DELETE', 'GET', 'PUT'] });
    expect(routed(vaultAndSecrets, 'DELETE', '/v1/vaults')).toEqual({ kind: 'method-not-allowed', allowed: ['GET', 'POST'] });
    expect(routed(vaultAndSecrets, 'GET', '/v1/nope')).toEqual({ kind: 'not-found' });
    expect(routed(vaultAndSecrets, 'GET', '/')).toEqual({ kind: 'not-found' });
  });

  it('routes nothing for a service that is defined but not served, and routes it once it is', () => {
    expect(routed(vaultAndSecrets, 'GET', '/v1/agents/me')).toEqual({ kind: 'not-found' });
    expect(routed(vaultAndSecrets, 'POST', `/v1/agents/${V}/rotate-key`)).toEqual({ kind: 'not-found' });
    const withAgents = createRouteTable({ methods: [...served(VaultServiceService), ...served(AgentServiceService)], registry });
    expect(routed(withAgents, 'POST', `/v1/agents/${V}/rotate-key`)).toEqual({ rpc: 'RotateAgentKey', agent_id: V });
    // More literal segments win: /v1/agents/me is GetAgentSelf, not GetAgent("me").
    expect(routed(withAgents, 'GET', '/v1/agents/me')).toEqual({ rpc: 'GetAgentSelf' });
    expect(routed(withAgents, 'GET', `/v1/agents/${V}`)).toEqual({ rpc: 'GetAgent', agent_id: V });
    expect(routed(withAgents, 'PATCH', '/v1/agents/me')).toEqual({ rpc: 'UpdateAgent', agent_id: 'me' });
  });

  it('has one route per rule and per additional binding', () => {
    expect(vaultAndSecrets.routesOf('vault.v1.SecretService.DisableSecretVersion').map((r) => r.template.source)).toEqual([
      '/v1/vaults/{vault_id}/secret-version/{path=**}/{version}/disable',
      '/v1/vaults/{vault_id}/secret-version-disable/{path=**}/{version}',
    ]);
    const annotated = [SecretServiceService, VaultServiceService, SystemServiceService].flatMap((s) => Object.keys(s)).length;
    expect(vaultAndSecrets.routes).toHaveLength(annotated + 1);
  });

  // Valid secret paths per the contract: [a-zA-Z0-9] at both ends, [a-zA-Z0-9_-/] inside, no "//".
  const secretPath = fc
    .array(fc.stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,6}[a-zA-Z0-9])?$/), { minLength: 1, maxLength: 6 })
    .map((segments) => segments.join('/'));

  it('binds any valid secret path the same, raw or percent-encoded, on every route that has one', () => {
    const withPath = vaultAndSecrets.routes.filter((r) => r.template.variables.some((v) => v.fieldPath[0] === 'path'));
    expect(withPath.length).toBeGreaterThanOrEqual(9);
    fc.assert(
      fc.property(secretPath, fc.integer({ min: 1, max: 99999 }), fc.constantFrom(...withPath), (path, version, route) => {
        const values: Record<string, string> = { vault_id: V, path, version: String(version) };
        const expected = { rpc: route.method.fullName.split('.').pop(), ...Object.fromEntries(route.template.variables.map((v) => [v.fieldPath[0]!, values[v.fieldPath[0]!]])) };
        for (const encodeSlashes of [false, true]) {
          const url = expandPathTemplate(route.template, (f) => values[f[0]!]!, { encodeSlashes });
          expect(url.includes('%2F')).toBe(encodeSlashes && path.includes('/'));
          expect(routed(vaultAndSecrets, route.httpMethod, url)).toEqual(expected);
        }
      }),
    );
  });
});
