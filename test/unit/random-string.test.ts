import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHARSETS, randomString } from '../../src/crypto/random-string.js';

describe('randomString', () => {
  it('produces exactly the requested length from the charset only', () => {
    fc.assert(
      fc.property(fc.constantFrom(...(Object.keys(CHARSETS) as Array<keyof typeof CHARSETS>)), fc.integer({ min: 8, max: 1024 }), (name, length) => {
        const value = randomString(length, CHARSETS[name]);
        expect(value).toHaveLength(length);
        expect([...value].every((c) => CHARSETS[name].includes(c))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('has the documented charsets', () => {
    expect(CHARSETS.hex).toBe('0123456789abcdef');
    expect(CHARSETS.base64).toHaveLength(64);
    expect(CHARSETS.alphanumeric).toHaveLength(62);
    expect(CHARSETS.ascii).toHaveLength(94);
    expect(CHARSETS.ascii[0]).toBe('!');
    expect(CHARSETS.ascii.at(-1)).toBe('~');
  });

  it('discards the bytes that would bias the draw (no modulo bias)', () => {
    // 62 characters: bytes 248..255 would make the first 8 characters likelier; they must be skipped.
    const bytes = [248, 249, 255, 0, 61, 62, 247];
    const source = (n: number) => Uint8Array.from({ length: n }, (_, i) => bytes[i % bytes.length]!);
    const a = CHARSETS.alphanumeric;
    // Accepted: 0, 61, 62 (-> 0), 247 (-> 61).
    expect(randomString(4, a, source)).toBe(`${a[0]}${a[61]}${a[0]}${a[61]}`);
  });

  it('draws every character of a charset about equally often', () => {
    // 94 ascii characters x ~1000 draws each; a biased draw (byte % 94) would give the first 68
    // characters 3/2 of the others' share, far outside this tolerance.
    const counts = new Map<string, number>();
    for (const c of randomString(94_000, CHARSETS.ascii)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(94);
    const low = Math.min(...counts.values());
    const high = Math.max(...counts.values());
    expect(low).toBeGreaterThan(800);
    expect(high).toBeLessThan(1200);
  });
});
