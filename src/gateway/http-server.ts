import { randomUUID } from 'node:crypto';
import { parseGrpcTimeout, type CallLimits } from '../storage/call-deadline.js';
import { applyIdempotencyKey, IdempotencyHeaderError } from './idempotency-header.js';
import { applyEtag, applyIfVersion, etagFromHeaders, etagOf, ifVersionFromHeaders, PreconditionHeaderError } from './preconditions.js';
import { type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { status } from '@grpc/grpc-js';
import type { JsonValue } from '@bufbuild/protobuf';
import type { Logger } from '../logger.js';
import type { ApiMethod } from '../rpc/api-method.js';
import { createHttpListener } from '../tls/http-listener.js';
import type { ServerTls } from '../tls/server-tls.js';
import { sanitizeRequestId, type Invoke, type InvokeResult, type StreamSink } from '../rpc/invoker.js';
import { RpcError } from '../rpc/rpc-error.js';
import { errorBody, type ErrorBodySource } from './error-body.js';
import { openEventStream, type EventStream } from './event-stream.js';
import { httpStatusForError, httpStatusForSuccess, reasonPhrase } from './http-status.js';
import { createJsonCodec } from './json-codec.js';
import { PathDecodeError, splitRequestPath } from './path-template.js';
import { quote, RequestDecodeError } from './request-binding.js';
import { createRouteTable, descriptorRegistry, type Route, type RouteTable } from './route-table.js';

export interface HttpGatewayDeps {
  /** The served RPCs; each one with a google.api.http rule gets its routes. */
  methods: readonly ApiMethod[];
  /** The one call path both transports share (auth, handler, error conversion, call log). */
  invoke: Invoke;
  /** The buf-built FileDescriptorSet (rpc/descriptors.ts) the routes and JSON mapping come from. */
  descriptorSet: Uint8Array;
  /** Largest request body accepted; more is 413. */
  maxRequestBytes: number;
  logger: Logger;
  /** Set: serve HTTPS (client certificates required when it has a client CA), following its reloads. */
  tls?: ServerTls | undefined;
  /** Answers a request before routing when it returns true (GET /metrics). */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface HttpGateway {
  readonly server: Server;
  readonly routes: RouteTable;
  /** Binds and starts; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting connections and waits for in-flight requests (forcing after `graceMs`). */
  close(graceMs: number): Promise<void>;
}

/** A failure the gateway itself answers before or instead of a call (routing, body, decoding). */
class HttpError extends Error implements ErrorBodySource {
  override readonly name = 'HttpError';
  constructor(
    readonly httpStatus: number,
    readonly code: status,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * The HTTP/JSON gateway: routes from the google.api.http annotations, proto3 JSON both ways, and
 * every call through `invoke` exactly as the gRPC server makes it, so no operation exists twice.
 */
export function createHttpGateway({ methods, invoke, descriptorSet, maxRequestBytes, logger, tls, intercept }: HttpGatewayDeps): HttpGateway {
  const registry = descriptorRegistry(descriptorSet);
  const routes = createRouteTable({ methods, registry });
  const codec = createJsonCodec(registry);
  // A body over the limit is read and dropped up to this much, so the client sees the 413 on a
  // connection it can keep; past it the connection is closed.
  const drainLimit = Math.max(4 * maxRequestBytes, 1024 * 1024);
  let closing = false;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const fallbackRequestId = acceptRequestId(req.headers['x-request-id']) ?? randomUUID();
    const peer = peerOf(req.socket);
    let route: Route | undefined;

    const reject = (error: HttpError) => {
      logger.info(
        {
          transport: 'http',
          method: route?.method.fullName,
          httpMethod: req.method,
          httpStatus: error.httpStatus,
          code: status[error.code],
          durationMs: Math.round((performance.now() - started) * 100) / 100,
          peer,
          requestId: fallbackRequestId,
        },
        'http request rejected',
      );
      send(res, error.httpStatus, errorBody(error, error.httpStatus), fallbackRequestId, error.headers);
    };

    try {
      const target = originForm(req.url ?? '');
      if (target === undefined) throw new HttpError(400, status.INVALID_ARGUMENT, 'the request target must be a path starting with "/"');
      const queryAt = target.indexOf('?');
      const rawPath = queryAt < 0 ? target : target.slice(0, queryAt);
      let segments: string[];
      try {
        segments = splitRequestPath(rawPath);
      } catch (error) {
        if (error instanceof PathDecodeError) throw new HttpError(400, status.INVALID_ARGUMENT, error.message);
        throw error;
      }

      // HEAD is GET without the body (RFC 9110 9.3.2); Node leaves the body out of HEAD answers.
      const httpMethod = req.method === 'HEAD' ? 'GET' : (req.method ?? '');
      const match = routes.match(httpMethod, segments);
      if (match.kind === 'not-found') throw new HttpError(404, status.NOT_FOUND, `no route matches ${req.method} ${quote(rawPath, 200)}`);
      if (match.kind === 'method-not-allowed') {
        const allowed = match.allowed.includes('GET') ? [...match.allowed, 'HEAD'].sort() : match.allowed;
        throw new HttpError(405, status.UNIMPLEMENTED, `${req.method} is not allowed on ${quote(rawPath, 200)}; allowed: ${allowed.join(', ')}`, {
          Allow: allowed.join(', '),
        });
      }
      route = match.route;

      const body = await readBody(req, maxRequestBytes, drainLimit);
      if (body.length > 0 && !isJsonContentType(req.headers['content-type'])) {
        throw new HttpError(
          415,
          status.INVALID_ARGUMENT,
          `the request body must be JSON: send Content-Type: application/json (got ${quote(req.headers['content-type'] ?? '', 100)})`,
        );
      }
      let request: unknown;
      try {
        request = codec.decodeRequest(route, { bindings: match.bindings, query: queryAt < 0 ? '' : target.slice(queryAt + 1), body });
        applyIfVersion(request, ifVersionFromHeaders(route, req.headers));
        applyEtag(request, etagFromHeaders(route, req.headers));
        applyIdempotencyKey(route, request, req.headers);
        resumeFromLastEventId(route, request, req.headers['last-event-id']);
      } catch (error) {
        if (error instanceof RequestDecodeError || error instanceof PreconditionHeaderError || error instanceof IdempotencyHeaderError) throw new HttpError(400, status.INVALID_ARGUMENT, error.message);
        throw error;
      }

      // A server-streaming RPC answers Server-Sent Events, opened with its first message (so a
      // call refused at its start still gets its JSON error and status).
      let events: EventStream | undefined;
      const streamed = route.method.stream ? route : undefined;
      let sink: StreamSink | undefined;
      if (streamed) {
        const gone = new AbortController();
        res.once('close', () => gone.abort());
        const write = (response: unknown) => {
          events ??= openEventStream(res, standardHeaders(fallbackRequestId));
          return events.send(codec.encodeResponse(streamed, response));
        };
        sink = { write, signal: gone.signal };
      }
      let result: InvokeResult;
      try {
        result = await invoke(
          route.method,
          request,
          {
            transport: 'http',
            authorization: req.headers.authorization,
            // The id the gateway answers with, so an event stream's headers can carry it at once.
            requestId: fallbackRequestId,
            peer,
            peerAddress: req.socket.remoteAddress,
            forwardedFor: [req.headers['x-forwarded-for'] ?? []].flat().join(', ') || undefined,
            limits: httpCallLimits(req, res),
          },
          sink,
        );
      } catch (error) {
        // invoke has converted, logged and tagged it with the call's request id.
        const rpcError = error instanceof RpcError ? error : new RpcError(status.INTERNAL, 'internal error');
        if (!(error instanceof RpcError)) logger.error({ err: error, method: route.method.fullName, requestId: fallbackRequestId }, 'unexpected error from invoke');
        const requestId = typeof error === 'object' && error !== null ? (error as { requestId?: unknown }).requestId : undefined;
        const httpStatus = httpStatusForError(rpcError.code, rpcError.errorInfo?.reason);
        const headers: Record<string, string> = httpStatus === 401 ? { 'WWW-Authenticate': 'Bearer' } : {};
        const retryAfter = rpcError.errorInfo?.metadata.retry_after_seconds;
        if (retryAfter) headers['Retry-After'] = retryAfter;
        if (events) {
          events.fail(errorBody(rpcError, httpStatus));
          return;
        }
        send(res, httpStatus, errorBody(rpcError, httpStatus), typeof requestId === 'string' ? requestId : fallbackRequestId, headers);
        return;
      }

      if (streamed) {
        if (events) events.end();
        else send(res, 204, undefined, result.requestId);
        return;
      }
      const json = codec.encodeResponse(route, result.response);
      const etag = etagOf(json);
      const headers: Record<string, string> = etag ? { ETag: etag } : {};
      if (result.replayed) headers['Idempotent-Replayed'] = 'true';
      send(res, httpStatusForSuccess(route.method.fullName, json === undefined), json, result.requestId, headers);
    } catch (error) {
      if (error instanceof HttpError) {
        reject(error);
        return;
      }
      if (error instanceof ClientGoneError) return;
      // Never a stack trace or a driver message to the client: log it, answer a generic 500.
      logger.error({ err: error, method: route?.method.fullName, requestId: fallbackRequestId }, 'unexpected error in the HTTP gateway');
      reject(new HttpError(500, status.INTERNAL, 'internal error'));
    }
  }

  function send(res: ServerResponse, httpStatus: number, body: JsonValue | undefined, requestId: string, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = httpStatus;
    for (const [name, value] of Object.entries({ ...standardHeaders(requestId), ...headers })) res.setHeader(name, value);
    if (body === undefined || httpStatus === 204) {
      res.end();
      return;
    }
    const text = JSON.stringify(body);
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.end(text);
  }

  /** Headers on every answer. */
  function standardHeaders(requestId: string): Record<string, string> {
    return {
      'x-request-id': requestId,
      // Responses carry secrets: no cache may keep them.
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      ...(closing ? { Connection: 'close' } : {}),
      ...(tls ? { 'Strict-Transport-Security': HSTS } : {}),
    };
  }

  const options: ServerOptions = { requestTimeout: 120_000, headersTimeout: 66_000, keepAliveTimeout: 65_000 };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (intercept?.(req, res)) return;
    handle(req, res).catch((error: unknown) => {
      logger.error({ err: error }, 'unexpected error in the HTTP gateway');
      if (!res.headersSent) res.destroy();
    });
  };
  const server: Server = createHttpListener(options, onRequest, tls);

  // `Expect: 100-continue`: refuse a declared oversize body before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length']) > maxRequestBytes) {
      // No 100 Continue: the client will not send the body, so the connection cannot be reused.
      res.setHeader('Connection', 'close');
      server.emit('request', req, res);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });

  // Requests Node cannot parse (bad request line, headers too large, timeouts) get the same JSON
  // error shape, then the connection is closed. Nothing reaches a handler.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const httpStatus = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const code = httpStatus === 408 ? status.DEADLINE_EXCEEDED : httpStatus === 431 ? status.RESOURCE_EXHAUSTED : status.INVALID_ARGUMENT;
    const message = httpStatus === 431 ? 'the request headers are too large' : httpStatus === 408 ? 'the request took too long to arrive' : 'the request is not valid HTTP';
    const requestId = randomUUID();
    const text = JSON.stringify(errorBody({ code, message }, httpStatus));
    logger.info({ transport: 'http', httpStatus, code: status[code], peer: peerOf(socket), requestId, parseError: error.code }, 'http request rejected');
    socket.end(
      `HTTP/1.1 ${httpStatus} ${reasonPhrase(httpStatus)}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
        `x-request-id: ${requestId}\r\nCache-Control: no-store\r\n${tls ? `Strict-Transport-Security: ${HSTS}\r\n` : ''}Connection: close\r\n\r\n${text}`,
    );
  });

  return {
    server,
    routes,
    listen(host, port) {
      return new Promise((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    close(graceMs) {
      closing = true;
      return new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

/** One year, the usual HSTS lifetime; no includeSubDomains: the vault does not speak for sibling hosts. */
const HSTS = 'max-age=31536000';

/** The client went away while its request was read; nobody is left to answer. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

/** Reads the body up to `limit` bytes; more is 413 (drained up to `drainLimit`, then the connection closes). */
function readBody(req: IncomingMessage, limit: number, drainLimit: number): Promise<Buffer> {
  const tooLarge = (close: boolean) =>
    new HttpError(413, status.RESOURCE_EXHAUSTED, `the request body is larger than the limit of ${limit} bytes`, close ? { Connection: 'close' } : {});
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge(true));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (action: () => void) => {
      if (settled) return;
      settled = true;
      action();
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > drainLimit) {
        req.pause();
        settle(() => reject(tooLarge(true)));
      }
    });
    req.on('end', () => settle(() => (size > limit ? reject(tooLarge(false)) : resolve(Buffer.concat(chunks)))));
    req.on('error', () => settle(() => reject(new ClientGoneError('the client went away'))));
    req.on('close', () => settle(() => reject(new ClientGoneError('the client went away'))));
  });
}

/**
 * Bodies are proto3 JSON. Accepted: application/json and any `+json` type; no Content-Type at
 * all (the hosted API's clients may send none); and application/x-www-form-urlencoded, which is
 * what `curl -d` sends unasked, as the contract's curl examples do. Anything else is 415.
 */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined || header.trim() === '') return true;
  const type = header.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(type) || type === 'application/x-www-form-urlencoded';
}

/** The path and query of a request target; an absolute-form target (`http://host/path`) is accepted too (RFC 9112 3.2.2). */
function originForm(target: string): string | undefined {
  if (target.startsWith('/')) return target;
  const absolute = /^https?:\/\/[^/?#]*([/?].*)?$/i.exec(target);
  if (!absolute) return undefined;
  const rest = absolute[1] ?? '/';
  return rest.startsWith('?') ? `/${rest}` : rest;
}

/**
 * EventSource's reconnect sends the last `id:` it saw as Last-Event-ID; for a request that takes
 * a cursor (`after`) and has none in its query, that is where it resumes.
 */
function resumeFromLastEventId(route: Route, request: unknown, header: string | string[] | undefined): void {
  const lastEventId = single(header);
  if (!route.method.stream || lastEventId === undefined || typeof request !== 'object' || request === null || !('after' in request)) return;
  const target = request as { after: unknown };
  if (target.after === '') target.after = lastEventId.trim();
}

/** The invoker's rule: a short, plain id is echoed; anything else is replaced. */
function acceptRequestId(header: string | string[] | undefined): string | undefined {
  return sanitizeRequestId(single(header));
}

function single(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

function peerOf(socket: Socket): string | undefined {
  if (!socket.remoteAddress) return undefined;
  return socket.remoteAddress.includes(':') ? `[${socket.remoteAddress}]:${socket.remotePort}` : `${socket.remoteAddress}:${socket.remotePort}`;
}

/**
 * grpc-gateway's deadline header (`Grpc-Timeout`, e.g. `2S`) and the client hanging up before the
 * answer was sent, so an HTTP call is bounded the way a gRPC call is.
 */
function httpCallLimits(req: IncomingMessage, res: ServerResponse): CallLimits {
  let hungUp = false;
  res.once('close', () => {
    if (!res.writableFinished) hungUp = true;
  });
  const deadline = parseGrpcTimeout(single(req.headers['grpc-timeout']));
  return { cancelled: () => hungUp, ...(deadline !== undefined ? { deadline } : {}) };
}
