// `vault secret ...`: the secret calls, with the vault as --vault and the path as an argument.
import type { Command } from 'commander';
import { allPages } from '../../client/pages.js';
import type { Run } from '../context.js';
import { positiveInt, UsageError, wholeNumber } from '../context.js';
import type { Row } from '../output.js';
import type { SecretVersion, WrittenSecretVersion } from '../../gen/vault/v1/secret_service.js';

const versionRow = (v: SecretVersion | WrittenSecretVersion): Row => ({
  path: v.path,
  version: v.version,
  type: v.type,
  disabled: 'isDisabled' in v ? v.isDisabled : undefined,
  created_at: v.createdAt,
  expires_at: v.expiresAt,
});

export function addSecretCommands(program: Command, run: Run): void {
  const secret = program.command('secret').description('store, read, version, rotate and delete secrets');
  const withVault = (command: Command) => command.option('--vault <vault_id>', 'the vault (default: VAULT_VAULT_ID)');
  // Compare-and-set: the change is made only if the path's newest version is still N (exit 8 otherwise).
  // An idempotency key makes the write safe to repeat: the same command again answers as the first
  // did without writing again (and the SDK then retries it on UNAVAILABLE).
  const withWriteOptions = (command: Command) =>
    command
      .option('--if-version <n>', 'only if the newest version is still N (0: only if the path has none)')
      .option('--idempotency-key <key>', 'repeat-safe: the same command with this key again changes nothing and answers as the first (24 h)');
  const writeOptions = (o: { ifVersion?: string; idempotencyKey?: string }) => ({
    ifVersion: o.ifVersion === undefined ? undefined : wholeNumber('--if-version', o.ifVersion),
    requestId: o.idempotencyKey,
  });

  withWriteOptions(withVault(secret.command('put <path>')))
    .description('store a new version; the value comes from standard input or --file, byte for byte')
    .option('--file <file>', 'read the value from this file')
    .option('--type <type>', 'the secret type, e.g. api_key')
    .option('--max-access-count <n>', 'how many reads the version allows')
    .option('--expires-at <time>', 'when the version stops being readable (RFC 3339)')
    .option('--metadata <json>', 'free-form metadata as a JSON object')
    .action(
      run(async (c, path: string, o) => {
        const value = await c.readValue(o.file);
        const { secret: written } = await (await c.client()).secrets.putSecret({
          vaultId: c.vaultId(o.vault),
          path,
          value,
          type: o.type ?? '',
          maxAccessCount: o.maxAccessCount === undefined ? undefined : positiveInt('--max-access-count', o.maxAccessCount),
          expiresAt: o.expiresAt === undefined ? undefined : parseTime('--expires-at', o.expiresAt),
          metadata: o.metadata === undefined ? undefined : parseObject('--metadata', o.metadata),
          ...writeOptions(o),
        });
        c.out.result(written, [versionRow(written!)]);
      }),
    );

  withVault(secret.command('get <path>'))
    .description('read the latest readable version (or --version N) with its value')
    .option('--version <n>', 'read this version instead of the latest')
    .option('--raw', 'print only the value, exactly as stored')
    .action(
      run(async (c, path: string, o) => {
        const client = await c.client();
        const request = { vaultId: c.vaultId(o.vault), path };
        const { secret: read } =
          o.version === undefined
            ? await client.secrets.getSecret(request)
            : await client.secrets.getSecretVersion({ ...request, version: positiveInt('--version', o.version) });
        if (o.raw) return c.out.raw(read!.value);
        c.out.result(read, [{ ...versionRow(read!), value: read!.value }]);
      }),
    );

  withVault(secret.command('version <path> <version>'))
    .description('read one version by number, with its value')
    .action(
      run(async (c, path: string, version: string, o) => {
        const { secret: read } = await (await c.client()).secrets.getSecretVersion({ vaultId: c.vaultId(o.vault), path, version: positiveInt('version', version) });
        c.out.result(read, [{ ...versionRow(read!), value: read!.value }]);
      }),
    );

  withVault(secret.command('list'))
    .description('the secrets of a vault (newest version of each, no values)')
    .option('--prefix <prefix>', 'only paths starting with this')
    .action(
      run(async (c, o) => {
        const client = await c.client();
        const response = await allPages('secrets', (pageToken) => client.secrets.listSecrets({ vaultId: c.vaultId(o.vault), prefix: o.prefix ?? '', pageToken }));
        c.out.result(response, response.secrets.map(versionRow));
      }),
    );

  withVault(secret.command('versions <path>'))
    .description('every version of a path, newest first (no values)')
    .action(
      run(async (c, path: string, o) => {
        const client = await c.client();
        const response = await allPages('versions', (pageToken) => client.secrets.listSecretVersions({ vaultId: c.vaultId(o.vault), path, pageToken }));
        c.out.result(response, response.versions.map(versionRow));
      }),
    );

  for (const [name, enable] of [['disable', false], ['enable', true]] as const) {
    withWriteOptions(withVault(secret.command(`${name} <path> <version>`)))
      .description(enable ? 'make a disabled version readable again' : 'make a version unreadable (reads of it are then refused as gone)')
      .action(
        run(async (c, path: string, version: string, o) => {
          const request = { vaultId: c.vaultId(o.vault), path, version: positiveInt('version', version), ...writeOptions(o) };
          const client = await c.client();
          await (enable ? client.secrets.enableSecretVersion(request) : client.secrets.disableSecretVersion(request));
          c.out.result({ path, version: request.version, disabled: !enable }, [{ path, version: request.version, disabled: !enable }]);
        }),
      );
  }

  withWriteOptions(withVault(secret.command('rotate <path>')))
    .description('let the vault generate the next version (the value is never shown)')
    .option('--length <n>', 'length of the generated value')
    .option('--charset <charset>', 'hex (default), base64, alphanumeric or ascii')
    .action(
      run(async (c, path: string, o) => {
        const { secret: written } = await (await c.client()).secrets.rotateSecret({
          vaultId: c.vaultId(o.vault),
          path,
          length: o.length === undefined ? undefined : positiveInt('--length', o.length),
          charset: o.charset ?? '',
          ...writeOptions(o),
        });
        c.out.result(written, [versionRow(written!)]);
      }),
    );

  withWriteOptions(withVault(secret.command('delete <path>')))
    .description('delete a secret: every version is erased (numbering continues if written again)')
    .action(
      run(async (c, path: string, o) => {
        await (await c.client()).secrets.deleteSecret({ vaultId: c.vaultId(o.vault), path, ...writeOptions(o) });
        c.out.result({ path, deleted: true }, [{ path, deleted: true }]);
      }),
    );
}

export function parseTime(name: string, text: string): Date {
  const at = new Date(text);
  if (!/^\d{4}-\d\d-\d\dT/.test(text) || Number.isNaN(at.getTime())) throw new UsageError(`${name} must be an RFC 3339 time such as 2030-01-01T00:00:00Z, got ${JSON.stringify(text)}`);
  return at;
}

export function parseObject(name: string, text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${name} must be a JSON object`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`${name} must be a JSON object`);
  return parsed as Record<string, unknown>;
}
