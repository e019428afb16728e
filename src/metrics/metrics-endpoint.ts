import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { status } from '@grpc/grpc-js';
import { bearerToken, matchesSecret } from '../auth/authenticator.js';
import { errorBody } from '../gateway/error-body.js';
import { createHttpListener } from '../tls/http-listener.js';
import type { ServerTls } from '../tls/server-tls.js';
import type { Metrics } from './metrics.js';

export const METRICS_PATH = '/metrics';

export interface MetricsEndpointDeps {
  metrics: Metrics;
  rootToken: string;
  /** True only when VAULT_METRICS_UNAUTHENTICATED=true: anyone who reaches the port may scrape. */
  unauthenticated: boolean;
}

/**
 * Serves `GET /metrics` and answers true, or answers false for any other path so the caller
 * routes it. The metrics name no secrets, but they show traffic and methods: by default a
 * scraper needs the root token, like any operator.
 */
export type MetricsEndpoint = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createMetricsEndpoint({ metrics, rootToken, unauthenticated }: MetricsEndpointDeps): MetricsEndpoint {
  const fail = (res: ServerResponse, httpStatus: number, code: status, message: string, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(errorBody({ code, message }, httpStatus));
    res.writeHead(httpStatus, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
    res.end(text);
  };
  const isRootToken = matchesSecret(rootToken);
  const authorized = (authorization: string | undefined) => {
    try {
      return isRootToken(bearerToken(authorization));
    } catch {
      return false;
    }
  };

  return (req, res) => {
    const target = req.url ?? '';
    const path = target.split('?', 1)[0];
    if (path !== METRICS_PATH) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      fail(res, 405, status.UNIMPLEMENTED, `${req.method} is not allowed on ${METRICS_PATH}; allowed: GET, HEAD`, { Allow: 'GET, HEAD' });
      return true;
    }
    if (!unauthenticated && !authorized(req.headers.authorization)) {
      fail(res, 401, status.UNAUTHENTICATED, 'metrics need the root token: send "Authorization: Bearer <root token>"', { 'WWW-Authenticate': 'Bearer' });
      return true;
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => fail(res, 500, status.INTERNAL, 'collecting metrics failed'),
    );
    return true;
  };
}

/** A listener of its own for VAULT_METRICS_PORT (on TLS when the service is): only /metrics, everything else 404. */
export function createMetricsServer(endpoint: MetricsEndpoint, tls: ServerTls | undefined) {
  const server: Server = createHttpListener({}, (req, res) => {
    if (endpoint(req, res)) return;
    res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(errorBody({ code: status.NOT_FOUND, message: `only ${METRICS_PATH} is served on this port` }, 404)));
  }, tls);
  return {
    listen(host: string, port: number): Promise<number> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
