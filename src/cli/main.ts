// The `vault` command line: parses flags with commander, runs one command through the SDK, and
// turns failures into a message on stderr and an exit code per class (exit-codes.ts).
import { Command, CommanderError } from 'commander';
import type { VaultClient } from '../client/vault-client.js';
import { VERSION } from '../version.js';
import { addAgentCommands, addAuditCommands, addPolicyCommands, addVaultCommands } from './commands/admin.js';
import { addSecretCommands } from './commands/secret.js';
import { createContext, DEFAULT_ADDRESS, UsageError, type CliIo, type CommandContext, type GlobalOptions } from './context.js';
import { describeFailure, EXIT } from './exit-codes.js';

export type { CliIo } from './context.js';

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** Runs `vault <argv...>` and resolves to its exit code; never calls process.exit. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const clients: VaultClient[] = [];
  let context: CommandContext | undefined;
  const program = new Command('vault')
    .description('command-line client of the secrets vault (gRPC)')
    .version(VERSION)
    .option('--addr <host:port>', `the vault's gRPC address (default: VAULT_ADDR or ${DEFAULT_ADDRESS})`)
    .option('--token <token>', 'a root or agent token (default: VAULT_TOKEN)')
    .option('--api-key <key>', "an agent's ocv_ key, exchanged for tokens (default: VAULT_API_KEY)")
    .option('--ca-cert <file>', 'PEM CA to verify the server with; turns TLS on (default: VAULT_CACERT)')
    .option('--client-cert <file>', 'PEM client certificate for mTLS (default: VAULT_CLIENT_CERT)')
    .option('--client-key <file>', 'PEM client key for mTLS (default: VAULT_CLIENT_KEY)')
    .option('--timeout <ms>', 'deadline of each call (default 10000)')
    .option('--json', 'print one JSON document on stdout instead of a table')
    // Global flags go before the command, so a command's own --version means a secret version.
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const run =
    (action: (c: CommandContext, ...args: any[]) => Promise<void>) =>
    async (...args: any[]) => {
      const command = args[args.length - 1] as Command;
      const options = { ...program.opts<GlobalOptions>(), json: program.opts().json === true || command.opts().json === true };
      context = createContext(io, options, (client) => clients.push(client));
      // commander passes the positional arguments, then the command's options, then the command.
      await action(context, ...args.slice(0, -1));
    };

  addSecretCommands(program, run);
  addVaultCommands(program, run);
  addAgentCommands(program, run);
  addPolicyCommands(program, run);
  addAuditCommands(program, run);
  program
    .command('mcp')
    .description("serve the vault's tools to an AI assistant over MCP (stdio), as the agent of VAULT_API_KEY")
    .action(async () => {
      const { runMcpServer } = await import('../mcp/mcp-server.js');
      await runMcpServer(io);
    });

  // --json is also accepted after the command (`vault secret get --json ...`).
  const addJsonFlag = (command: Command): void => {
    if (command.commands.length === 0 && command.name() !== 'mcp') command.option('--json', 'print one JSON document on stdout instead of a table');
    command.commands.forEach(addJsonFlag);
  };
  program.commands.forEach(addJsonFlag);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.invalidInput;
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    const failure = describeFailure(error, context?.address ?? DEFAULT_ADDRESS);
    io.stderr.write(`error: ${failure.message}\n`);
    return failure.code;
  } finally {
    for (const client of clients) client.close();
  }
}
