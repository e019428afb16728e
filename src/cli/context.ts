// What every command needs: the SDK client built from flags and the environment, the output,
// and the standard input (secret values are read from it or from --file, never from argv).
import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { createVaultClient, type VaultClient } from '../client/vault-client.js';
import type { Credentials } from '../client/credentials.js';
import { createOutput, type Output } from './output.js';

export interface CliIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

/** Flags every command accepts; each falls back to its environment variable. */
export interface GlobalOptions {
  addr?: string;
  token?: string;
  apiKey?: string;
  caCert?: string;
  clientCert?: string;
  clientKey?: string;
  timeout?: string;
  json?: boolean;
}

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

export interface CommandContext {
  client(): Promise<VaultClient>;
  out: Output;
  address: string;
  /** The secret value from --file, else all of stdin, byte for byte. */
  readValue(file: string | undefined): Promise<string>;
  /** The vault of a secret command: --vault, else VAULT_VAULT_ID. */
  vaultId(flag: string | undefined): string;
  env: CliIo['env'];
}

export class UsageError extends Error {}

/** Wraps a command's action: builds its context and passes it first, then commander's arguments. */
export type Run = (action: (context: CommandContext, ...args: any[]) => Promise<void>) => (...args: any[]) => Promise<void>;

export function createContext(io: CliIo, options: GlobalOptions, onClient: (client: VaultClient) => void): CommandContext {
  const address = options.addr ?? io.env.VAULT_ADDR ?? DEFAULT_ADDRESS;
  let client: VaultClient | undefined;
  return {
    address,
    env: io.env,
    out: createOutput(io.stdout, io.stderr, options.json === true),
    async client() {
      if (client) return client;
      client = createVaultClient({
        address,
        credentials: credentialsFrom(options, io.env),
        tls: await tlsFrom(options, io.env),
        deadlineMs: options.timeout === undefined ? undefined : positiveInt('--timeout', options.timeout),
      });
      onClient(client);
      return client;
    },
    async readValue(file) {
      if (file !== undefined) return readFile(file, 'utf8');
      if (io.stdin.isTTY) throw new UsageError('give the value on standard input or with --file (never on the command line, where shell history keeps it)');
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks).toString('utf8');
    },
    vaultId(flag) {
      const id = flag ?? io.env.VAULT_VAULT_ID;
      if (!id) throw new UsageError('say which vault with --vault <vault_id> or VAULT_VAULT_ID');
      return id;
    },
  };
}

function credentialsFrom(options: GlobalOptions, env: CliIo['env']): Credentials | undefined {
  const token = options.token ?? env.VAULT_TOKEN;
  if (token) return { token };
  const apiKey = options.apiKey ?? env.VAULT_API_KEY;
  return apiKey ? { apiKey } : undefined;
}

async function tlsFrom(options: GlobalOptions, env: CliIo['env']) {
  const ca = options.caCert ?? env.VAULT_CACERT;
  const cert = options.clientCert ?? env.VAULT_CLIENT_CERT;
  const key = options.clientKey ?? env.VAULT_CLIENT_KEY;
  if (!ca && !cert && !key && env.VAULT_TLS !== 'true') return undefined;
  const read = (path: string | undefined) => (path ? readFile(path) : Promise.resolve(undefined));
  return { ca: await read(ca), cert: await read(cert), key: await read(key) };
}

export function wholeNumber(name: string, text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${name} must be a whole number (0 or more), got ${JSON.stringify(text)}`);
  return Number(text);
}

export function positiveInt(name: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) <= 0 || !Number.isSafeInteger(Number(text))) throw new UsageError(`${name} must be a positive whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}
