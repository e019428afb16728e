import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import type { SslOptions } from 'mysql2';
import type { DatabaseTls } from './database-url.js';

/** A TLS file named in the database URL that cannot be used, or a TLS handshake that failed. */
export class DatabaseTlsError extends Error {
  override readonly name = 'DatabaseTlsError';
}

/**
 * mysql2's `ssl` option for the URL's TLS settings (undefined: plaintext). Certificates are always
 * verified when TLS is on; the host name too, except with VERIFY_CA. The files are read here,
 * once, when the pool is opened.
 */
export function driverTlsOptions(tls: DatabaseTls): SslOptions | undefined {
  if (tls.mode === 'DISABLED') return undefined;
  const read = (parameter: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new DatabaseTlsError(`the database URL's ${parameter} names ${JSON.stringify(path)}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  return {
    ca: read('ssl-ca', tls.caFile),
    cert: read('ssl-cert', tls.certFile),
    key: read('ssl-key', tls.keyFile),
    rejectUnauthorized: true,
    verifyIdentity: tls.mode !== 'VERIFY_CA',
  };
}

/**
 * mysql2 asks for no TLS server name when the host is an IP address, and Node then checks the
 * certificate against "localhost" rather than the address. For that case the pool gets its
 * socket from here, carrying the address where Node's TLS looks for the host it connected to
 * (`_host`, which net sets itself only for names), so VERIFY_IDENTITY checks the IP SAN.
 * Keep-alive and no-delay as mysql2 sets them on its own sockets.
 */
export function identityCheckedStream(host: string, port: number, tls: DatabaseTls): (() => Socket) | undefined {
  if (tls.mode === 'DISABLED' || tls.mode === 'VERIFY_CA' || isIP(host) === 0) return undefined;
  return () => {
    const socket = connect(port, host);
    (socket as Socket & { _host?: string })._host = host;
    socket.setNoDelay(true);
    socket.once('connect', () => socket.setKeepAlive(true, 0));
    return socket;
  };
}

/**
 * A clear account of a connection that failed for TLS reasons (the driver says only
 * "HANDSHAKE_SSL_ERROR" or quotes OpenSSL); anything else is returned unchanged.
 */
export function explainTlsFailure(error: unknown, where: string, tls: DatabaseTls): unknown {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return new DatabaseTlsError(`the database server at ${where} does not offer TLS, and ssl-mode=${tls.mode} requires it`);
  }
  if (code === 'HANDSHAKE_SSL_ERROR') {
    const trust = tls.caFile === undefined ? "Node's bundled public CAs (give ssl-ca for a private CA)" : `ssl-ca ${JSON.stringify(tls.caFile)}`;
    return new DatabaseTlsError(
      `TLS to the database server at ${where} failed (ssl-mode=${tls.mode}): ${String(message)}; ` +
        `its certificate must chain to ${trust}${tls.mode === 'VERIFY_CA' ? '' : ' and name the host connected to (or use ssl-mode=VERIFY_CA)'}`,
    );
  }
  return error;
}
