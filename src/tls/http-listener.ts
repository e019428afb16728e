// The one place an HTTP listener is made: plain HTTP, or HTTPS with the service's certificate
// (and client CA for mTLS) that follows every TLS reload. The gateway and the metrics port use it,
// so neither can end up serving plaintext while the other is on TLS.
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { ServerTls, TlsMaterial } from './server-tls.js';

export function createHttpListener(
  options: ServerOptions,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  tls: ServerTls | undefined,
): Server {
  if (!tls) return createServer(options, onRequest);
  const server = createHttpsServer(
    // Without a client CA no certificate is asked for; with one, a client without a valid one fails the handshake.
    { ...options, ...secureContextOptions(tls.current()), requestCert: tls.requireClientCertificate, rejectUnauthorized: tls.requireClientCertificate },
    onRequest,
  );
  // A reload applies to new connections; open keep-alive connections keep their session.
  tls.onChange((material) => server.setSecureContext(secureContextOptions(material)));
  return server;
}

function secureContextOptions(material: TlsMaterial) {
  return { cert: material.cert, key: material.key, ca: material.clientCa };
}
