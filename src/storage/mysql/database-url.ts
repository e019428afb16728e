/**
 * Parses the one database setting, `mysql://user[:password]@host[:port]/database[?tls options]`,
 * the TLS options spelled as MySQL's clients spell them (`ssl-mode`, `ssl-ca`, `ssl-cert`, `ssl-key`).
 *
 * Parsed by hand rather than with WHATWG `URL`: its errors carry the whole input (password
 * included) in `error.input`, and it cannot say *which* part is wrong. Error messages here name the
 * part and never repeat any of the input, because a malformed URL can put the password anywhere
 * (e.g. `mysql://user:secret/db` reads as host "user", port "secret").
 */

/** Where and as whom to connect; the fields mysql2 needs. */
export interface ConnectionSettings {
  host: string;
  port: number;
  user: string;
  /** Undefined when the URL has none (mysql2 then sends an empty password). */
  password: string | undefined;
  database: string;
  /** How the connection is protected; `mode: 'DISABLED'` without TLS options. */
  tls: DatabaseTls;
  /** The URL without its password, safe for logs: `mysql://user@host:port/database[?ssl-mode=...]`. */
  redacted: string;
}

/**
 * MySQL's ssl-mode names, with one difference that makes asking for TLS mean verified TLS:
 * - DISABLED: plaintext (the default when the URL has no TLS option).
 * - REQUIRED: TLS; the server's certificate must chain to ssl-ca (or, without it, to Node's
 *   bundled public CAs) and name the host connected to. MySQL's own REQUIRED checks neither.
 * - VERIFY_CA: TLS; the certificate must chain to ssl-ca (or the public CAs); the host name is not
 *   checked (for servers reached by an address their certificate does not name).
 * - VERIFY_IDENTITY: the same as REQUIRED. The default when a TLS file is given without ssl-mode.
 * - PREFERRED (MySQL's default: TLS if the server offers it, else silently plaintext) is refused.
 */
export type SslMode = 'DISABLED' | 'REQUIRED' | 'VERIFY_CA' | 'VERIFY_IDENTITY';

export interface DatabaseTls {
  mode: SslMode;
  /** PEM CA certificate(s) the server's certificate must chain to. */
  caFile: string | undefined;
  /** PEM client certificate and key, both or neither (for users created REQUIRE X509). */
  certFile: string | undefined;
  keyFile: string | undefined;
}

const SSL_MODES: readonly string[] = ['DISABLED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'];
const TLS_PARAMETERS = ['ssl-mode', 'ssl-ca', 'ssl-cert', 'ssl-key'] as const;
type TlsParameter = (typeof TLS_PARAMETERS)[number];

const DEFAULT_PORT = 3306;
/** MySQL and MariaDB limit database names to 64 characters. */
const MAX_DATABASE_NAME = 64;

export class DatabaseUrlError extends Error {
  constructor(problem: string) {
    super(`invalid database URL (want mysql://user[:password]@host[:port]/database): ${problem}`);
    this.name = 'DatabaseUrlError';
  }
}

export function parseDatabaseUrl(url: string): ConnectionSettings {
  const schemeEnd = url.indexOf('://');
  if (schemeEnd < 0) throw new DatabaseUrlError('it does not start with mysql://');
  const scheme = url.slice(0, schemeEnd);
  if (scheme.toLowerCase() !== 'mysql') {
    // Only a plain scheme word is echoed; anything else might be part of a credential.
    const shown = /^[a-z][a-z0-9+.-]{0,15}$/i.test(scheme) ? ` "${scheme}://"` : '';
    throw new DatabaseUrlError(`the scheme${shown} is not mysql://`);
  }

  const afterScheme = url.slice(schemeEnd + 3);
  if (afterScheme.includes('#')) throw new DatabaseUrlError('fragments are not supported (percent-encode # in a password)');
  const queryAt = afterScheme.indexOf('?');
  const rest = queryAt < 0 ? afterScheme : afterScheme.slice(0, queryAt);
  const slash = rest.indexOf('/');
  if (slash < 0) throw new DatabaseUrlError('the database name is missing (the part after host/)');
  const authority = rest.slice(0, slash);
  const database = decode(rest.slice(slash + 1), 'the database name');

  const at = authority.lastIndexOf('@');
  if (at < 0) throw new DatabaseUrlError('the user name is missing (the part before @)');
  const userInfo = authority.slice(0, at);
  const colon = userInfo.indexOf(':');
  const user = decode(colon < 0 ? userInfo : userInfo.slice(0, colon), 'the user name');
  const password = colon < 0 ? undefined : decode(userInfo.slice(colon + 1), 'the password');
  const { host, port } = parseHostAndPort(authority.slice(at + 1));

  if (user === '') throw new DatabaseUrlError('the user name is empty');
  if (database === '') throw new DatabaseUrlError('the database name is missing (the part after host/)');
  if (database.includes('/')) throw new DatabaseUrlError('the database name contains "/"');
  if (database.length > MAX_DATABASE_NAME) {
    throw new DatabaseUrlError(`the database name is longer than ${MAX_DATABASE_NAME} characters`);
  }

  const tls = parseTlsOptions(queryAt < 0 ? '' : afterScheme.slice(queryAt + 1));

  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const redacted =
    `mysql://${encodeURIComponent(user)}@${hostForUrl}:${port}/${encodeURIComponent(database)}` + (tls.mode === 'DISABLED' ? '' : `?ssl-mode=${tls.mode}`);
  return { host, port, user, password, database, tls, redacted };
}

/** The query part: MySQL client option names (`ssl_mode` too, as option files allow), each once. */
function parseTlsOptions(query: string): DatabaseTls {
  const values = new Map<TlsParameter, string>();
  for (const pair of query === '' ? [] : query.split('&')) {
    const eq = pair.indexOf('=');
    const rawName = decode(eq < 0 ? pair : pair.slice(0, eq), 'a query parameter name');
    const name = rawName.toLowerCase().replaceAll('_', '-');
    if (!(TLS_PARAMETERS as readonly string[]).includes(name)) {
      // Only a plain option-like word is echoed: a malformed URL can put a password here.
      const shown = /^[a-z][a-z0-9_-]{0,31}$/i.test(rawName) ? ` "${rawName}"` : '';
      throw new DatabaseUrlError(`the query parameter${shown} is not supported (supported: ${TLS_PARAMETERS.join(', ')})`);
    }
    const parameter = name as TlsParameter;
    if (values.has(parameter)) throw new DatabaseUrlError(`${parameter} is given more than once`);
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1), `the value of ${parameter}`);
    if (value === '') throw new DatabaseUrlError(`${parameter} has no value`);
    values.set(parameter, value);
  }

  const caFile = values.get('ssl-ca');
  const certFile = values.get('ssl-cert');
  const keyFile = values.get('ssl-key');
  const rawMode = values.get('ssl-mode');
  const modeName = rawMode?.toUpperCase();
  if (modeName === 'PREFERRED') {
    throw new DatabaseUrlError('ssl-mode=PREFERRED is refused: it falls back to plaintext without saying so; use REQUIRED (verified TLS) or DISABLED');
  }
  if (modeName !== undefined && !SSL_MODES.includes(modeName)) {
    const shown = /^[a-z_]{1,20}$/i.test(rawMode!) ? ` "${rawMode}"` : '';
    throw new DatabaseUrlError(`ssl-mode${shown} is not one of ${SSL_MODES.join(', ')}`);
  }
  const anyFile = caFile !== undefined || certFile !== undefined || keyFile !== undefined;
  // Asking for TLS by giving a file, without a mode, gets the strictest check.
  const mode = (modeName ?? (anyFile ? 'VERIFY_IDENTITY' : 'DISABLED')) as SslMode;
  if (mode === 'DISABLED' && anyFile) throw new DatabaseUrlError('ssl-ca, ssl-cert and ssl-key need TLS, but ssl-mode is DISABLED');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new DatabaseUrlError('ssl-cert and ssl-key go together: give both or neither');
  return { mode, caFile, certFile, keyFile };
}

function parseHostAndPort(hostPort: string): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    // IPv6 literal: [::1] or [::1]:3307
    const close = hostPort.indexOf(']');
    if (close < 0) throw new DatabaseUrlError('the IPv6 host has no closing "]"');
    host = hostPort.slice(1, close);
    const after = hostPort.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw new DatabaseUrlError('unexpected characters after the IPv6 host');
    portText = after === '' ? undefined : after.slice(1);
  } else {
    const colon = hostPort.indexOf(':');
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    portText = colon < 0 ? undefined : hostPort.slice(colon + 1);
  }
  if (host === '') throw new DatabaseUrlError('the host is missing');
  if (portText === undefined) return { host, port: DEFAULT_PORT };
  // The port text is never echoed: in a malformed URL it may be the password.
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new DatabaseUrlError('the port is not a number from 1 to 65535');
  return { host, port };
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new DatabaseUrlError(`${what} is not validly percent-encoded`);
  }
}
