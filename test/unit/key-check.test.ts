import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createBarrier } from '../../src/crypto/barrier.js';
import { checkKeysAgainstStorage } from '../../src/crypto/key-check.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { createMemoryStorage } from '../../src/storage/memory/memory-store.js';

const key = () => new Uint8Array(randomBytes(32));
const check = (storage: ReturnType<typeof createMemoryStorage>, current: Uint8Array, old: Uint8Array[] = []) => {
  const keyring = createKeyring(current, old);
  return checkKeysAgainstStorage(keyring, createBarrier(keyring), storage.keyCanaries);
};

describe('start-up key check', () => {
  it('accepts the same key again and records one canary per key', async () => {
    const storage = createMemoryStorage();
    const first = key();
    await check(storage, first);
    await check(storage, first);
    expect(await storage.keyCanaries.list()).toHaveLength(1);
  });

  it('refuses a different key for data sealed by another', async () => {
    const storage = createMemoryStorage();
    await check(storage, key());
    await expect(check(storage, key())).rejects.toThrow(/not configured/);
  });

  it('accepts a rotated key while the old one is kept, and refuses dropping the old one', async () => {
    const storage = createMemoryStorage();
    const old = key();
    const current = key();
    await check(storage, old);
    await check(storage, current, [old]);
    expect(await storage.keyCanaries.list()).toHaveLength(2);
    await expect(check(storage, current)).rejects.toThrow(/not configured/);
  });
});
