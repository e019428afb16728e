/**
 * Parses the one database setting, `mysql://user[:password]@host[:port]/database`.
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
  /** The URL without its password, safe for logs: `mysql://user@host:port/database`. */
  redacted: string;
}

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

  const rest = url.slice(schemeEnd + 3);
  if (/[?#]/.test(rest)) {
    throw new DatabaseUrlError('query parameters and fragments are not supported (percent-encode ? and # in a password)');
  }
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

  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const redacted = `mysql://${encodeURIComponent(user)}@${hostForUrl}:${port}/${encodeURIComponent(database)}`;
  return { host, port, user, password, database, redacted };
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
