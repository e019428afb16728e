import { afterEach, describe, it } from 'vitest';
import { createRouteTable, descriptorRegistry } from '../../src/gateway/route-table.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';
import { createTestClock, startTestApp, type TestApp } from '../support/test-app.js';
import { grpcDriver, httpDriver } from './drivers.js';
import { runScenario, type Driver } from './scenario.js';
import { SECRET_WALKTHROUGH, type WalkthroughState } from './secret-walkthrough.js';

const registry = descriptorRegistry(loadDescriptorSetBytes());

const transports: Array<[string, (t: TestApp) => Driver]> = [
  ['gRPC', (t) => grpcDriver(t, registry)],
  ['HTTP with raw paths', (t) => httpDriver(t, createRouteTable({ methods: t.app.methods, registry }), { encodeSlashes: false })],
  ['HTTP with percent-encoded paths', (t) => httpDriver(t, createRouteTable({ methods: t.app.methods, registry }), { encodeSlashes: true })],
];

describe('the rotating-secrets walkthrough, one table over every transport', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it.each(transports)('passes over %s', async (_name, makeDriver) => {
    const clock = createTestClock();
    t = await startTestApp({}, { clock });
    await runScenario(SECRET_WALKTHROUGH, makeDriver(t), { vaultId: '', lastValue: '', now: () => clock.now() } satisfies WalkthroughState, clock);
  });
});
