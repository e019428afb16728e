import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import type { ServerResponse } from 'node:http';

/**
 * A server-streaming RPC's responses as Server-Sent Events (WHATWG HTML, "Server-sent events").
 * A response `{event: {...}}` is one event: `id:` its cursor (what EventSource sends back as
 * Last-Event-ID), `event:` its type, `data:` the event's JSON on one line. A `{heartbeat: {...}}`
 * is a comment line plus `id:` (which moves Last-Event-ID without dispatching anything), so
 * proxies see traffic and a reconnect skips what was already passed over.
 */
export interface EventStream {
  /** Resolves when the socket can take more (at once unless the client reads slowly). */
  send(response: JsonValue | undefined): Promise<void>;
  /** Ends the stream with an `error` event carrying the error body (headers are already sent). */
  fail(body: JsonValue): void;
  end(): void;
}

export function openEventStream(res: ServerResponse, headers: Record<string, string>): EventStream {
  res.statusCode = 200;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  // Reverse proxies (nginx) would otherwise hold events back to fill a buffer.
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  const write = (text: string): Promise<void> => {
    if (res.destroyed || res.writableEnded || res.write(text)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.once('drain', done);
      res.once('close', done);
    });
  };
  return {
    send(response) {
      const message = (response ?? {}) as JsonObject;
      const event = message.event as JsonObject | undefined;
      const heartbeat = message.heartbeat as JsonObject | undefined;
      if (event) return write(`id: ${line(event.cursor)}\nevent: ${line(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);
      if (heartbeat) return write(`: heartbeat ${line(heartbeat.time)}\nid: ${line(heartbeat.cursor)}\n\n`);
      return Promise.resolve();
    },
    fail(body) {
      void write(`event: error\ndata: ${JSON.stringify(body)}\n\n`);
      res.end();
    },
    end() {
      if (!res.writableEnded) res.end();
    },
  };
}

/** A field value on one SSE line: a line break would end the field early. */
function line(value: JsonValue | undefined): string {
  return String(value ?? '').replace(/[\r\n]/g, '');
}
