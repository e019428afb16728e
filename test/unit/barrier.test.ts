import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BARRIER_OVERHEAD, createBarrier, encodeContext } from '../../src/crypto/barrier.js';
import { createKeyring } from '../../src/crypto/keyring.js';

const key = () => new Uint8Array(randomBytes(32));

describe('barrier', () => {
  const barrier = createBarrier(createKeyring(key()));
  const row = encodeContext('secret', 'vault-1', 'db/password', 3);

  it('opens what it sealed, for any plaintext and context', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.array(fc.string(), { maxLength: 4 }), (plaintext, parts) => {
        const context = encodeContext(...parts);
        const blob = barrier.seal(plaintext, context);
        expect(blob.length).toBe(plaintext.length + BARRIER_OVERHEAD);
        expect(Buffer.from(barrier.open(blob, context)).equals(Buffer.from(plaintext))).toBe(true);
      }),
    );
  });

  it('never stores the plaintext in the blob', () => {
    const plaintext = Buffer.from('canary-value-1234567890');
    expect(Buffer.from(barrier.seal(plaintext, row)).includes(plaintext)).toBe(false);
  });

  it('refuses a ciphertext moved to another row (vault, path or version)', () => {
    const blob = barrier.seal(Buffer.from('s3cret'), row);
    for (const other of [
      encodeContext('secret', 'vault-2', 'db/password', 3),
      encodeContext('secret', 'vault-1', 'db/passwort', 3),
      encodeContext('secret', 'vault-1', 'db/password', 4),
    ]) {
      expect(() => barrier.open(blob, other)).toThrow(/failed authentication/);
    }
  });

  it('refuses any single flipped bit', () => {
    const blob = barrier.seal(Buffer.from('s3cret'), row);
    fc.assert(
      fc.property(fc.integer({ min: 9, max: blob.length * 8 - 1 }), (bit) => {
        const tampered = Uint8Array.from(blob);
        tampered[bit >> 3]! ^= 1 << (bit & 7);
        expect(() => barrier.open(tampered, row)).toThrow();
      }),
      { numRuns: 200 },
    );
  });

  it('keeps parts of the context unambiguous', () => {
    expect(Buffer.from(encodeContext('ab', 'c')).equals(Buffer.from(encodeContext('a', 'bc')))).toBe(false);
  });

  it('opens data sealed under an old key after rotation, and seals with the new one', () => {
    const oldKey = key();
    const before = createBarrier(createKeyring(oldKey)).seal(Buffer.from('v1'), row);
    const rotated = createBarrier(createKeyring(key(), [oldKey]));
    expect(Buffer.from(rotated.open(before, row)).toString()).toBe('v1');
    const after = rotated.seal(Buffer.from('v2'), row);
    expect(rotated.keyIdOf(after)).not.toBe(rotated.keyIdOf(before));
    expect(() => createBarrier(createKeyring(oldKey)).open(after, row)).toThrow(/not configured/);
  });

  it('rejects truncated and unknown-format blobs', () => {
    const blob = barrier.seal(Buffer.from('x'), row);
    expect(() => barrier.open(blob.subarray(0, 20), row)).toThrow(/malformed/);
    const future = Uint8Array.from(blob);
    future[0] = 9;
    expect(() => barrier.open(future, row)).toThrow(/unknown format/);
  });

  describe('rewrap', () => {
    const oldKey = key();
    const newKey = key();
    const sealedOld = () => createBarrier(createKeyring(oldKey)).seal(Buffer.from('the value'), row);
    const rotated = createBarrier(createKeyring(newKey, [oldKey]));
    const newOnly = createBarrier(createKeyring(newKey));

    it('moves the data key under the current key and leaves the value ciphertext byte for byte', () => {
      const before = sealedOld();
      const after = rotated.rewrap(before, row);
      expect(rotated.keyIdOf(after)).toBe(createKeyring(newKey).current.id);
      // The value nonce and sealed value are the last 24 + n + 16 bytes of both layouts.
      const valueBytes = 24 + 'the value'.length + 16;
      expect(Buffer.from(after.subarray(-valueBytes)).equals(Buffer.from(before.subarray(-valueBytes)))).toBe(true);
      expect(Buffer.from(newOnly.open(after, row)).toString()).toBe('the value');
      expect(() => createBarrier(createKeyring(oldKey)).open(after, row)).toThrow(/not configured/);
    });

    it('returns a blob already under the current key unchanged, and re-wraps a re-wrapped one again', () => {
      const current = rotated.seal(Buffer.from('fresh'), row);
      expect(rotated.rewrap(current, row)).toBe(current);
      const third = key();
      const again = createBarrier(createKeyring(third, [newKey])).rewrap(rotated.rewrap(sealedOld(), row), row);
      expect(Buffer.from(createBarrier(createKeyring(third)).open(again, row)).toString()).toBe('the value');
    });

    it('keeps binding the row: a re-wrapped blob moved to another row, or tampered, does not open', () => {
      const after = rotated.rewrap(sealedOld(), row);
      expect(() => newOnly.open(after, encodeContext('secret', 'vault-1', 'db/password', 4))).toThrow(/failed authentication/);
      expect(() => rotated.rewrap(sealedOld(), encodeContext('secret', 'vault-2', 'db/password', 3))).toThrow(/failed authentication/);
      fc.assert(
        fc.property(fc.integer({ min: 9, max: after.length * 8 - 1 }), (bit) => {
          const tampered = Uint8Array.from(after);
          tampered[bit >> 3]! ^= 1 << (bit & 7);
          expect(() => newOnly.open(tampered, row)).toThrow();
        }),
        { numRuns: 200 },
      );
    });

    it('refuses when the key that wraps the data key is not configured', () => {
      expect(() => newOnly.rewrap(sealedOld(), row)).toThrow(/not configured/);
    });
  });
});

