import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVaultClient, type VaultClient } from '../../src/client/index.js';
import { startTestApp, TEST_ROOT_TOKEN, type TestApp } from '../support/test-app.js';

const TOOLS = ['describe_secret', 'disable_version', 'enable_version', 'get_secret', 'get_version', 'list_secrets', 'list_versions', 'put_secret', 'rotate_secret'];

/** The text of a tool result, parsed when it is JSON. */
const body = (result: any) => {
  const text = result.content[0].text as string;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

describe('the MCP server (vault mcp, stdio)', () => {
  let t: TestApp;
  let root: VaultClient;
  let mcp: Client;
  let vaultId: string;
  let agentId: string;

  beforeAll(async () => {
    t = await startTestApp();
    root = createVaultClient({ address: t.grpcAddress, credentials: { token: TEST_ROOT_TOKEN } });
    vaultId = (await root.vaults.createVault({ name: 'mcp' })).vault!.id;
    const agent = await root.agents.createAgent({ name: 'assistant' });
    agentId = agent.agent!.id;
    await root.policies.createPolicy({ vaultId, secretPathPattern: 'tools/**', principalType: 'agent', principalId: agentId, permissions: ['read', 'write', 'rotate'] });
    await root.secrets.putSecret({ vaultId, path: 'tools/search', type: 'api_key', value: 'search-key-1', metadata: { owner: 'ml' } });
    await root.secrets.putSecret({ vaultId, path: 'private/db', value: 'db-password' });

    mcp = new Client({ name: 'test-assistant', version: '1.0.0' });
    const bin = new URL('../../bin/vault.mjs', import.meta.url).pathname;
    await mcp.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [bin, 'mcp'],
        env: { PATH: process.env.PATH ?? '', VAULT_ADDR: t.grpcAddress, VAULT_API_KEY: agent.apiKey },
        stderr: 'pipe',
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await mcp?.close();
    root?.close();
    await t?.close();
  });

  it('lists its tools with descriptions and JSON schemas', async () => {
    const { tools } = await mcp.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(TOOLS);
    for (const tool of tools) {
      expect(tool.description?.length).toBeGreaterThan(20);
      expect(tool.inputSchema).toMatchObject({ type: 'object', properties: { vault_id: { type: 'string' } }, required: expect.arrayContaining(['vault_id']) });
    }
  });

  it('rotates and reads a secret as the agent, through its policies and audit', async () => {
    const rotated = await mcp.callTool({ name: 'rotate_secret', arguments: { vault_id: vaultId, path: 'tools/search', length: 20, charset: 'alphanumeric' } });
    expect(rotated.isError).toBeFalsy();
    expect(body(rotated)).toMatchObject({ path: 'tools/search', version: 2, type: 'api_key' });
    expect(JSON.stringify(rotated)).not.toContain('"value"');

    const read = body(await mcp.callTool({ name: 'get_secret', arguments: { vault_id: vaultId, path: 'tools/search' } }));
    expect(read).toMatchObject({ version: 2, value: expect.stringMatching(/^[A-Za-z0-9]{20}$/) });
    // The vault hands the same value to the operator: the tool did not invent one.
    expect((await root.secrets.getSecret({ vaultId, path: 'tools/search' })).secret?.value).toBe(read.value);

    const described = body(await mcp.callTool({ name: 'describe_secret', arguments: { vault_id: vaultId, path: 'tools/search' } }));
    expect(described.versions.map((v: any) => v.version)).toEqual([2, 1]);
    expect(JSON.stringify(described)).not.toContain(read.value);

    const events = await root.audit.listAuditEvents({ actorId: agentId, action: 'secret.read' });
    expect(events.events.some((e) => e.resourceId === 'tools/search')).toBe(true);
  });

  it('lists every secret the agent may read, past the server\'s first page of 100', async () => {
    const paged = (await root.vaults.createVault({ name: 'mcp-paged' })).vault!.id;
    await root.policies.createPolicy({ vaultId: paged, secretPathPattern: 'tools/**', principalType: 'agent', principalId: agentId, permissions: ['read'] });
    const readable = Array.from({ length: 120 }, (_, i) => `tools/${String(i).padStart(3, '0')}`);
    // Unreadable paths the server filters out (they sort first): they must not show up or end the listing.
    const hidden = Array.from({ length: 30 }, (_, i) => `tools-private/${i}`);
    await Promise.all([...readable, ...hidden].map((path) => root.secrets.putSecret({ vaultId: paged, path, value: `value-${path}` })));

    const listed = await mcp.callTool({ name: 'list_secrets', arguments: { vault_id: paged } });
    expect(listed.isError).toBeFalsy();
    expect(body(listed).map((s: any) => s.path)).toEqual(readable);
  });

  it('answers a path its policy forbids with a tool error that says why', async () => {
    const refused = await mcp.callTool({ name: 'get_secret', arguments: { vault_id: vaultId, path: 'private/db' } });
    expect(refused.isError).toBe(true);
    expect(body(refused)).toMatch(/^PermissionDeniedError: .*may not read/);
    expect(JSON.stringify(refused)).not.toContain('db-password');
    // The server is still there.
    const listed = body(await mcp.callTool({ name: 'list_secrets', arguments: { vault_id: vaultId } }));
    expect(listed.map((s: any) => s.path)).toEqual(['tools/search']);
  });

  it('refuses bad arguments without crashing', async () => {
    const bad = await mcp.callTool({ name: 'get_version', arguments: { vault_id: vaultId, path: 'tools/search', version: -1 } });
    expect(bad.isError).toBe(true);
    const put = body(await mcp.callTool({ name: 'put_secret', arguments: { vault_id: vaultId, path: 'tools/new', value: 'fresh-value' } }));
    expect(put).toMatchObject({ path: 'tools/new', version: 1 });
    expect(JSON.stringify(put)).not.toContain('fresh-value');
  });
});
