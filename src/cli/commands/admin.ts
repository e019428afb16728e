// `vault vault|agent|policy|audit|token ...`: the operator's calls, and an agent's token exchange.
import type { Command } from 'commander';
import { allPages } from '../../client/pages.js';
import type { Agent } from '../../gen/vault/v1/agent_service.js';
import type { Policy } from '../../gen/vault/v1/policy_service.js';
import type { Vault } from '../../gen/vault/v1/vault_service.js';
import { positiveInt, UsageError, type Run } from '../context.js';
import type { Row } from '../output.js';
import { parseTime } from './secret.js';

const vaultRow = (v: Vault): Row => ({ id: v.id, name: v.name, description: v.description, created_at: v.createdAt });
const ETAG_OPTION = '--etag <etag>';
const ETAG_HELP = 'only if this is still its etag (from get, list or the last change); otherwise exit 8';
const agentRow = (a: Agent): Row => ({ id: a.id, name: a.name, active: a.isActive, token_ttl_seconds: a.tokenTtlSeconds, expires_at: a.expiresAt, last_active_at: a.lastActiveAt, etag: a.etag });
const policyRow = (p: Policy): Row => ({ id: p.id, pattern: p.secretPathPattern, principal: `${p.principalType}:${p.principalId}`, permissions: p.permissions, effect: p.effect, priority: p.priority, etag: p.etag });
const permissionList = (text: string) => text.split(',').map((p) => p.trim()).filter(Boolean);

export function addVaultCommands(program: Command, run: Run): void {
  const vault = program.command('vault').description('create, list, show and delete vaults (operator)');
  vault
    .command('create <name>')
    .option('--description <text>')
    .action(run(async (c, name: string, o) => {
      const { vault: created } = await (await c.client()).vaults.createVault({ name, description: o.description ?? '' });
      c.out.result(created, [vaultRow(created!)]);
    }));
  vault.command('list').action(run(async (c) => {
    const client = await c.client();
    const response = await allPages('vaults', (pageToken) => client.vaults.listVaults({ pageToken }));
    c.out.result(response, response.vaults.map(vaultRow));
  }));
  vault.command('get <vault_id>').action(run(async (c, vaultId: string) => {
    const { vault: found } = await (await c.client()).vaults.getVault({ vaultId });
    c.out.result(found, [vaultRow(found!)]);
  }));
  vault.command('delete <vault_id>').description('delete a vault and everything in it').action(run(async (c, vaultId: string) => {
    await (await c.client()).vaults.deleteVault({ vaultId });
    c.out.result({ id: vaultId, deleted: true }, [{ id: vaultId, deleted: true }]);
  }));
}

export function addAgentCommands(program: Command, run: Run): void {
  const agent = program.command('agent').description('create, list, show, re-key and delete agents (operator)');
  agent
    .command('create <name>')
    .description('create an agent; its API key is printed once, here only')
    .option('--description <text>')
    .option('--token-ttl <seconds>', 'lifetime of its tokens, 60 to 86400')
    .option('--expires-at <time>', 'when it stops being able to authenticate (RFC 3339)')
    .action(run(async (c, name: string, o) => {
      const response = await (await c.client()).agents.createAgent({
        name,
        description: o.description ?? '',
        tokenTtlSeconds: o.tokenTtl === undefined ? undefined : positiveInt('--token-ttl', o.tokenTtl),
        expiresAt: o.expiresAt === undefined ? undefined : parseTime('--expires-at', o.expiresAt),
      });
      c.out.result(response, [{ ...agentRow(response.agent!), api_key: response.apiKey }]);
      c.out.note('The API key is shown only now: store it somewhere safe.');
    }));
  agent.command('list').action(run(async (c) => {
    const client = await c.client();
    const response = await allPages('agents', (pageToken) => client.agents.listAgents({ pageToken }));
    c.out.result(response, response.agents.map(agentRow));
  }));
  agent.command('get <agent_id>').action(run(async (c, agentId: string) => {
    const { agent: found } = await (await c.client()).agents.getAgent({ agentId });
    c.out.result(found, [agentRow(found!)]);
  }));
  agent
    .command('rotate-key <agent_id>')
    .description('give the agent a new API key; the old key and its tokens stop working')
    .option(ETAG_OPTION, ETAG_HELP)
    .action(run(async (c, agentId: string, o) => {
      const response = await (await c.client()).agents.rotateAgentKey({ agentId, etag: o.etag });
      c.out.result(response, [{ ...agentRow(response.agent!), api_key: response.apiKey }]);
      c.out.note('The new API key is shown only now.');
    }));
  agent.command('delete <agent_id>').option(ETAG_OPTION, ETAG_HELP).action(run(async (c, agentId: string, o) => {
    await (await c.client()).agents.deleteAgent({ agentId, etag: o.etag });
    c.out.result({ id: agentId, deleted: true }, [{ id: agentId, deleted: true }]);
  }));
}

export function addPolicyCommands(program: Command, run: Run): void {
  const policy = program.command('policy').description('grant or deny agents access to secret paths (operator)');
  const withVault = (command: Command) => command.option('--vault <vault_id>', 'the vault (default: VAULT_VAULT_ID)');
  withVault(policy.command('create'))
    .description("e.g. policy create --vault V --agent AGENT_ID --pattern 'api-keys/**' --permissions read,rotate")
    .requiredOption('--pattern <glob>', 'secret paths it covers: * one segment, ** any depth')
    .requiredOption('--agent <agent_id>', 'the agent it applies to')
    .requiredOption('--permissions <list>', 'comma-separated: read, write, rotate, delete')
    .option('--effect <effect>', 'allow (default) or deny')
    .option('--priority <n>', 'higher wins; at equal priority deny wins')
    .action(run(async (c, o) => {
      const { policy: created } = await (await c.client()).policies.createPolicy({
        vaultId: c.vaultId(o.vault),
        secretPathPattern: o.pattern,
        principalType: 'agent',
        principalId: o.agent,
        permissions: permissionList(o.permissions),
        effect: o.effect ?? '',
        priority: o.priority === undefined ? 0 : integer('--priority', o.priority),
      });
      c.out.result(created, [policyRow(created!)]);
    }));
  withVault(policy.command('list')).action(run(async (c, o) => {
    const client = await c.client();
    const response = await allPages('policies', (pageToken) => client.policies.listPolicies({ vaultId: c.vaultId(o.vault), pageToken }));
    c.out.result(response, response.policies.map(policyRow));
  }));
  withVault(policy.command('update <policy_id>'))
    .option('--permissions <list>', 'comma-separated: read, write, rotate, delete')
    .option('--effect <effect>', 'allow or deny')
    .option('--priority <n>')
    .option(ETAG_OPTION, ETAG_HELP)
    .action(run(async (c, policyId: string, o) => {
      const { policy: updated } = await (await c.client()).policies.updatePolicy({
        vaultId: c.vaultId(o.vault),
        policyId,
        permissions: o.permissions === undefined ? [] : permissionList(o.permissions),
        effect: o.effect,
        priority: o.priority === undefined ? undefined : integer('--priority', o.priority),
        etag: o.etag,
      });
      c.out.result(updated, [policyRow(updated!)]);
    }));
  withVault(policy.command('delete <policy_id>')).option(ETAG_OPTION, ETAG_HELP).action(run(async (c, policyId: string, o) => {
    await (await c.client()).policies.deletePolicy({ vaultId: c.vaultId(o.vault), policyId, etag: o.etag });
    c.out.result({ id: policyId, deleted: true }, [{ id: policyId, deleted: true }]);
  }));
}

export function addAuditCommands(program: Command, run: Run): void {
  const audit = program.command('audit').description('read and verify the audit trail (operator)');
  audit
    .command('events')
    .option('--action <action>', 'e.g. secret.read')
    .option('--actor <id>', 'root or an agent id')
    .option('--resource <id>', 'e.g. a secret path')
    .option('--limit <n>', 'at most this many, newest first')
    .action(run(async (c, o) => {
      const response = await (await c.client()).audit.listAuditEvents({
        action: o.action ?? '',
        actorId: o.actor ?? '',
        resourceId: o.resource ?? '',
        limit: o.limit === undefined ? 0 : positiveInt('--limit', o.limit),
      });
      c.out.result(response, response.events.map((e) => ({ at: e.createdAt, action: e.action, actor: `${e.actorType}:${e.actorId}`, resource: e.resourceId, outcome: e.outcome })));
    }));
  audit.command('verify').description('check the HMAC chain over every event').action(run(async (c) => {
    const response = await (await c.client()).audit.verifyAuditChain();
    c.out.result(response, [{ chain_valid: response.chainValid, events_verified: response.eventsVerified, events_checked: response.eventsChecked }]);
  }));

  program
    .command('token')
    .description("exchange an agent's API key for a token")
    .command('exchange')
    .description('uses --api-key or VAULT_API_KEY; prints the token (for VAULT_TOKEN)')
    .action(run(async (c) => {
      const apiKey = program.opts().apiKey ?? c.env.VAULT_API_KEY;
      if (!apiKey) throw new UsageError('give the agent key with --api-key or VAULT_API_KEY');
      const response = await (await c.client()).auth.createAgentToken({ apiKey });
      c.out.result(response, [{ agent_id: response.agentId, expires_in: response.expiresIn, access_token: response.accessToken }]);
    }));
}

function integer(name: string, text: string): number {
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}
