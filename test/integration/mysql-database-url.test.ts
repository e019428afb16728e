import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DatabaseUrlError, parseDatabaseUrl } from '../../src/storage/mysql/database-url.js';

const PASSWORD = 'hunter2-Pa55';

/** The parse error for `url`, after checking it does not give the password away. */
function parseError(url: string, password = PASSWORD): DatabaseUrlError {
  let caught: unknown;
  try {
    parseDatabaseUrl(url);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DatabaseUrlError);
  const error = caught as DatabaseUrlError;
  expect(error.message).not.toContain(password);
  expect(String(error.stack)).not.toContain(password);
  expect(error.cause).toBeUndefined();
  return error;
}

describe('parseDatabaseUrl', () => {
  it('reads every part of a full URL', () => {
    expect(parseDatabaseUrl(`mysql://vault:${PASSWORD}@db.internal:3307/vault_prod`)).toEqual({
      host: 'db.internal',
      port: 3307,
      user: 'vault',
      password: PASSWORD,
      database: 'vault_prod',
      tls: { mode: 'DISABLED', caFile: undefined, certFile: undefined, keyFile: undefined },
      redacted: 'mysql://vault@db.internal:3307/vault_prod',
    });
  });

  it('reads the TLS options as MySQL clients spell them', () => {
    expect(parseDatabaseUrl(`mysql://u:${PASSWORD}@db/v?ssl-mode=REQUIRED&ssl-ca=%2Fetc%2Fca.pem&ssl-cert=/c.pem&ssl-key=/k.pem`)).toMatchObject({
      database: 'v',
      password: PASSWORD,
      tls: { mode: 'REQUIRED', caFile: '/etc/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' },
      redacted: 'mysql://u@db:3306/v?ssl-mode=REQUIRED',
    });
    expect(parseDatabaseUrl('mysql://u@db/v?ssl_mode=verify_ca&SSL_CA=/ca.pem').tls).toEqual({ mode: 'VERIFY_CA', caFile: '/ca.pem', certFile: undefined, keyFile: undefined });
    expect(parseDatabaseUrl('mysql://u@db/v?ssl-mode=DISABLED').tls.mode).toBe('DISABLED');
    expect(parseDatabaseUrl('mysql://u@db/v?ssl-mode=VERIFY_IDENTITY').tls.mode).toBe('VERIFY_IDENTITY');
  });

  it('verifies certificates and host name when a TLS file is given without ssl-mode', () => {
    expect(parseDatabaseUrl('mysql://u@db/v?ssl-ca=/ca.pem').tls.mode).toBe('VERIFY_IDENTITY');
    expect(parseDatabaseUrl('mysql://u@db/v?ssl-cert=/c.pem&ssl-key=/k.pem').tls.mode).toBe('VERIFY_IDENTITY');
  });

  it('defaults the port to 3306 and allows no password', () => {
    expect(parseDatabaseUrl('mysql://root@127.0.0.1/test')).toMatchObject({ host: '127.0.0.1', port: 3306, user: 'root', password: undefined });
  });

  it('percent-decodes user and password, so any character can be in them', () => {
    const password = 'p@ss:w/rd?#%&é';
    const parsed = parseDatabaseUrl(`mysql://${encodeURIComponent('us:er@x')}:${encodeURIComponent(password)}@h:1/db`);
    expect(parsed).toMatchObject({ user: 'us:er@x', password });
    expect(parsed.redacted).not.toContain(encodeURIComponent(password));
  });

  it('accepts an IPv6 host in brackets', () => {
    expect(parseDatabaseUrl('mysql://u@[::1]:3310/db')).toMatchObject({ host: '::1', port: 3310, redacted: 'mysql://u@[::1]:3310/db' });
  });

  it.each([
    ['no database', `mysql://u:${PASSWORD}@h:3306`, /database name is missing/],
    ['an empty database', `mysql://u:${PASSWORD}@h:3306/`, /database name is missing/],
    ['a nested database path', `mysql://u:${PASSWORD}@h/a/b`, /contains "\/"/],
    ['another scheme', `postgres://u:${PASSWORD}@h/db`, /scheme "postgres:\/\/" is not mysql/],
    ['no scheme', `u:${PASSWORD}@h/db`, /does not start with mysql/],
    ['a port that is not a number', `mysql://u:${PASSWORD}@h:abc/db`, /port is not a number from 1 to 65535/],
    ['port 0', `mysql://u:${PASSWORD}@h:0/db`, /port/],
    ['a port above 65535', `mysql://u:${PASSWORD}@h:70000/db`, /port/],
    ['an empty port', `mysql://u:${PASSWORD}@h:/db`, /port/],
    ['no user', 'mysql://h/db', /user name is missing/],
    ['an empty user', `mysql://:${PASSWORD}@h/db`, /user name is empty/],
    ['no host', `mysql://u:${PASSWORD}@/db`, /host is missing/],
    ['an unknown query parameter', `mysql://u:${PASSWORD}@h/db?ssl=true`, /the query parameter "ssl" is not supported \(supported: ssl-mode, ssl-ca, ssl-cert, ssl-key\)/],
    ['ssl-mode=PREFERRED', `mysql://u:${PASSWORD}@h/db?ssl-mode=PREFERRED`, /PREFERRED is refused: it falls back to plaintext/],
    ['an unknown ssl-mode', `mysql://u:${PASSWORD}@h/db?ssl-mode=STRICT`, /ssl-mode "STRICT" is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY/],
    ['TLS files with ssl-mode=DISABLED', `mysql://u:${PASSWORD}@h/db?ssl-mode=DISABLED&ssl-ca=/ca.pem`, /need TLS, but ssl-mode is DISABLED/],
    ['ssl-cert without ssl-key', `mysql://u:${PASSWORD}@h/db?ssl-cert=/c.pem`, /ssl-cert and ssl-key go together/],
    ['an option given twice', `mysql://u:${PASSWORD}@h/db?ssl-ca=/a&ssl_ca=/b`, /ssl-ca is given more than once/],
    ['an option without a value', `mysql://u:${PASSWORD}@h/db?ssl-mode=`, /ssl-mode has no value/],
    ['an unencoded ? in the password', `mysql://u:${PASSWORD}?x@h/db`, /database name is missing/],
    // Malformed URLs that put the password where a host or port belongs.
    ['a password without a host', `mysql://u:${PASSWORD}/db`, /port/],
    ['an unencoded / in the password', `mysql://u:${PASSWORD}/x@h/db`, /port/],
    ['an unencoded # in the password', `mysql://u:${PASSWORD}#@h/db`, /fragments/],
  ])('rejects %s, naming the problem and not the password', (_, url, message) => {
    expect(parseError(url).message).toMatch(message);
  });

  it('rejects a badly percent-encoded password without echoing it', () => {
    expect(parseError('mysql://u:%zz-secret@h/db', '%zz-secret').message).toMatch(/password is not validly percent-encoded/);
  });

  it('round-trips any user and password, percent-encoded', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (user, password) => {
        const parsed = parseDatabaseUrl(`mysql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@h/db`);
        expect(parsed.user).toBe(user);
        expect(parsed.password).toBe(password);
      }),
    );
  });

  it('never puts a password in an error, wherever a malformed URL puts it', () => {
    // The marker keeps a random password from matching ordinary words in the message or stack.
    const safe = fc.stringMatching(/^[A-Za-z0-9]{6,20}$/).map((s) => `pw7Q${s}`);
    fc.assert(
      fc.property(safe, fc.constantFrom('postgres://u:{}@h/db', 'mysql://u:{}/db', 'mysql://u:{}@h:{}/db', 'mysql://u:{}@h', 'mysql://u:{}@h/db?x={}'), (password, template) => {
        const url = template.replaceAll('{}', password);
        expect(() => parseDatabaseUrl(url)).toThrow(DatabaseUrlError);
        parseError(url, password);
      }),
    );
  });
});
