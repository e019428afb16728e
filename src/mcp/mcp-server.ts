// The vault as an MCP server (stdio) for AI assistants. It authenticates as one agent, with the
// `ocv_` key in VAULT_API_KEY, so every tool call goes through that agent's policies and the
// audit trail like any other agent call. Values appear only in the answers of the get tools.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { VaultClientError } from '../client/errors.js';
import { allPages } from '../client/pages.js';
import { createVaultClient, type VaultClient } from '../client/vault-client.js';
import type { SecretVersion, WrittenSecretVersion } from '../gen/vault/v1/secret_service.js';
import type { CliIo } from '../cli/context.js';
import { DEFAULT_ADDRESS, UsageError } from '../cli/context.js';
import { VERSION } from '../version.js';

const vaultId = z.string().describe('The vault id (a UUID).');
const path = z.string().describe('The secret path within the vault, e.g. "api-keys/openai".');
const version = z.number().int().positive().describe('The version number, starting at 1.');

/** What a tool may show of a version: never its value. */
const describeVersion = (v: SecretVersion | WrittenSecretVersion) => ({
  path: v.path,
  version: v.version,
  type: v.type,
  metadata: v.metadata ?? {},
  created_at: v.createdAt?.toISOString(),
  expires_at: v.expiresAt?.toISOString(),
  ...('isDisabled' in v ? { is_disabled: v.isDisabled } : {}),
});

const answer = (value: unknown): CallToolResult => ({ content: [{ type: 'text', text: JSON.stringify(value, null, 2) }] });

/** A refusal is a tool error saying why, so the assistant can explain it or try something else. */
async function tool(work: () => Promise<unknown>): Promise<CallToolResult> {
  try {
    return answer(await work());
  } catch (error) {
    if (!(error instanceof VaultClientError)) throw error;
    const reason = error.reason ? ` (${error.reason})` : '';
    return { isError: true, content: [{ type: 'text', text: `${error.name}: ${error.message}${reason}` }] };
  }
}

export function createVaultMcpServer(client: VaultClient): McpServer {
  const server = new McpServer({ name: 'vault', version: VERSION });
  const { secrets } = client;

  server.registerTool(
    'list_secrets',
    {
      description: 'List the secrets of a vault that this agent may read: the newest version of each path, without values.',
      inputSchema: { vault_id: vaultId, prefix: z.string().optional().describe('Only paths starting with this, e.g. "api-keys/".') },
      annotations: { readOnlyHint: true },
    },
    (a) => tool(async () => (await allPages('secrets', (pageToken) => secrets.listSecrets({ vaultId: a.vault_id, prefix: a.prefix ?? '', pageToken }))).secrets.map(describeVersion)),
  );
  server.registerTool(
    'describe_secret',
    {
      description: "Describe a secret without its value: type, metadata and every version's number, state and expiry, newest first.",
      inputSchema: { vault_id: vaultId, path },
      annotations: { readOnlyHint: true },
    },
    (a) => tool(async () => {
      const versions = (await allPages('versions', (pageToken) => secrets.listSecretVersions({ vaultId: a.vault_id, path: a.path, pageToken }))).versions;
      return { path: a.path, latest: versions[0] ? describeVersion(versions[0]) : undefined, versions: versions.map(describeVersion) };
    }),
  );
  server.registerTool(
    'get_secret',
    {
      description: 'Read the latest readable version of a secret, WITH its value. Each read is audited and may spend a read budget.',
      inputSchema: { vault_id: vaultId, path },
    },
    (a) => tool(async () => {
      const { secret } = await secrets.getSecret({ vaultId: a.vault_id, path: a.path });
      return { ...describeVersion(secret!), value: secret!.value };
    }),
  );
  server.registerTool(
    'get_version',
    {
      description: 'Read one version of a secret by number, WITH its value. Disabled, expired or spent versions are refused.',
      inputSchema: { vault_id: vaultId, path, version },
    },
    (a) => tool(async () => {
      const { secret } = await secrets.getSecretVersion({ vaultId: a.vault_id, path: a.path, version: a.version });
      return { ...describeVersion(secret!), value: secret!.value };
    }),
  );
  server.registerTool(
    'list_versions',
    {
      description: 'List every version of a secret, newest first, without values.',
      inputSchema: { vault_id: vaultId, path },
      annotations: { readOnlyHint: true },
    },
    (a) => tool(async () => (await allPages('versions', (pageToken) => secrets.listSecretVersions({ vaultId: a.vault_id, path: a.path, pageToken }))).versions.map(describeVersion)),
  );
  server.registerTool(
    'put_secret',
    {
      description: 'Store a value as the next version of a secret (version 1 for a new path). The answer never repeats the value.',
      inputSchema: {
        vault_id: vaultId,
        path,
        value: z.string().describe('The secret value.'),
        type: z.string().optional().describe('The secret type, e.g. "api_key" or "password".'),
        max_access_count: z.number().int().positive().optional().describe('How many reads this version allows; unlimited if omitted.'),
        expires_at: z.string().datetime().optional().describe('When this version stops being readable (RFC 3339).'),
      },
    },
    (a) => tool(async () => {
      const { secret } = await secrets.putSecret({
        vaultId: a.vault_id,
        path: a.path,
        value: a.value,
        type: a.type ?? '',
        maxAccessCount: a.max_access_count,
        expiresAt: a.expires_at === undefined ? undefined : new Date(a.expires_at),
      });
      return describeVersion(secret!);
    }),
  );
  server.registerTool(
    'rotate_secret',
    {
      description: 'Have the vault generate a new random value as the next version of an existing secret. The value is not returned; read it with get_secret.',
      inputSchema: {
        vault_id: vaultId,
        path,
        length: z.number().int().min(8).max(1024).optional().describe('Characters to generate, 8 to 1024; default 32.'),
        charset: z.enum(['hex', 'base64', 'alphanumeric', 'ascii']).optional().describe('Characters to draw from; default hex.'),
      },
    },
    (a) => tool(async () => describeVersion((await secrets.rotateSecret({ vaultId: a.vault_id, path: a.path, length: a.length, charset: a.charset ?? '' })).secret!)),
  );
  for (const [name, enable] of [['disable_version', false], ['enable_version', true]] as const) {
    server.registerTool(
      name,
      {
        description: enable ? 'Make a disabled version of a secret readable again.' : 'Disable a version of a secret: reads of it are refused until it is enabled again.',
        inputSchema: { vault_id: vaultId, path, version },
        annotations: { idempotentHint: true },
      },
      (a) => tool(async () => {
        const request = { vaultId: a.vault_id, path: a.path, version: a.version };
        await (enable ? secrets.enableSecretVersion(request) : secrets.disableSecretVersion(request));
        return { path: a.path, version: a.version, is_disabled: !enable };
      }),
    );
  }
  return server;
}

/** Serves MCP on stdin/stdout until the client closes the stream. */
export async function runMcpServer(io: CliIo): Promise<void> {
  const apiKey = io.env.VAULT_API_KEY;
  if (!apiKey) throw new UsageError("vault mcp runs as an agent: set VAULT_API_KEY to the agent's ocv_ key (and VAULT_ADDR)");
  const client = createVaultClient({ address: io.env.VAULT_ADDR ?? DEFAULT_ADDRESS, credentials: { apiKey } });
  const server = createVaultMcpServer(client);
  const transport = new StdioServerTransport(io.stdin, io.stdout);
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  await server.connect(transport);
  io.stdin.once('end', () => void transport.close());
  await closed;
  client.close();
}
