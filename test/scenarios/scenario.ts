import type { JsonObject } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { expect } from 'vitest';

/**
 * A transport-neutral scenario: each step names an RPC, gives its request in proto3 JSON (proto
 * or lowerCamelCase names, as a REST client would write the body) and the expected outcome as a
 * gRPC code and ErrorInfo reason. Drivers (drivers.ts) run the same steps over gRPC and over
 * HTTP; the HTTP driver derives the HTTP status from the gateway's one code table, so the two
 * transports cannot drift apart without a step failing.
 */
export interface Step<S> {
  /** What the step shows, as a sentence. */
  name: string;
  /** Fully-qualified RPC name, e.g. `vault.v1.SecretService.PutSecret`. */
  rpc: string;
  request: (state: S) => JsonObject;
  /** Default: success. */
  expect?: { code: keyof typeof status; reason?: string };
  /** Checks the response message in proto3 JSON with proto field names (the whole message, also over HTTP). */
  // The response is whatever JSON the RPC returns; checks read it freely.
  check?: (response: any, state: S) => void;
  /** Which of the RPC's HTTP bindings to use: 0 is the rule, 1 and up its additional_bindings. */
  binding?: number;
  /** A different Bearer token, or null for none. Default: the root token. */
  token?: string | null;
}

/** Moves the service's clock forward (no sleeping: the driver's app runs on a test clock). */
export interface Advance {
  name: string;
  advanceMs: number;
}

export type ScenarioItem<S> = Step<S> | Advance;

/** What a driver observed: the gRPC code (0 for OK), the ErrorInfo reason, the response message. */
export interface Outcome {
  code: number;
  reason: string | undefined;
  response: JsonObject | undefined;
}

export interface Driver {
  readonly name: string;
  call(step: Step<unknown>, request: JsonObject): Promise<Outcome>;
}

/** Runs every step in order; a failure names the step and the transport. */
export async function runScenario<S>(items: readonly ScenarioItem<S>[], driver: Driver, state: S, clock?: { advance(ms: number): void }): Promise<void> {
  for (const [index, item] of items.entries()) {
    const label = `step ${index + 1} (${item.name}) over ${driver.name}`;
    if ('advanceMs' in item) {
      if (!clock) throw new Error(`${label}: this scenario moves the clock; start the app on a test clock and pass it`);
      clock.advance(item.advanceMs);
      continue;
    }
    try {
      const outcome = await driver.call(item as Step<unknown>, item.request(state));
      const expected = item.expect ?? { code: 'OK' };
      expect({ code: status[outcome.code], reason: outcome.reason }, label).toEqual({ code: expected.code, reason: expected.reason });
      if (outcome.code === status.OK) item.check?.(outcome.response, state);
    } catch (error) {
      if (error instanceof Error) error.message = `${label}: ${error.message}`;
      throw error;
    }
  }
}
