import { afterEach, describe, it } from 'vitest';
import { createRouteTable, descriptorRegistry } from '../../src/gateway/route-table.js';
import { loadDescriptorSetBytes } from '../../src/rpc/descriptors.js';
import { startTestApp, type TestApp } from '../support/test-app.js';
import { grpcDriver, httpDriver } from './drivers.js';
import { runScenario, type Driver } from './scenario.js';
import { STAGED_ROTATION, type StagedState } from './staged-rotation.js';

const registry = descriptorRegistry(loadDescriptorSetBytes());

const transports: Array<[string, (t: TestApp) => Driver]> = [
  ['gRPC', (t) => grpcDriver(t, registry)],
  ['HTTP with raw paths', (t) => httpDriver(t, createRouteTable({ methods: t.app.methods, registry }), { encodeSlashes: false })],
  ['HTTP with percent-encoded paths', (t) => httpDriver(t, createRouteTable({ methods: t.app.methods, registry }), { encodeSlashes: true })],
];

describe('staged rotation: pending, promote and rollback, one table over every transport', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it.each(transports)('passes over %s', async (_name, makeDriver) => {
    t = await startTestApp();
    await runScenario(STAGED_ROTATION, makeDriver(t), { vaultId: '' } satisfies StagedState);
  });
});
