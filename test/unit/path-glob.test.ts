import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGlob, globMatches, globProblem, GLOB_LIMITS, matchGlobCounted } from '../../src/domain/path-glob.js';

/**
 * The reference semantics, written for clarity and not speed: plain recursion over segments and
 * characters (exponential on crafted input, so only fed small cases).
 */
function referenceMatches(pattern: string, path: string): boolean {
  const segmentMatches = (p: string, s: string): boolean => {
    if (p === '') return s === '';
    if (p[0] === '*') return segmentMatches(p.slice(1), s) || (s !== '' && segmentMatches(p, s.slice(1)));
    return s !== '' && p[0] === s[0] && segmentMatches(p.slice(1), s.slice(1));
  };
  const go = (ps: string[], ss: string[]): boolean => {
    if (ps.length === 0) return ss.length === 0;
    const [head, ...rest] = ps as [string, ...string[]];
    if (head === '**') return go(rest, ss) || (ss.length > 0 && go(ps, ss.slice(1)));
    return ss.length > 0 && segmentMatches(head, ss[0]!) && go(rest, ss.slice(1));
  };
  return go(pattern.split('/'), path.split('/'));
}

/** Strings over a small alphabet, so random patterns and paths often (nearly) match. */
const smallString = (chars: string[], maxLength: number) => fc.array(fc.constantFrom(...chars), { maxLength }).map((a) => a.join(''));

describe('policy path globs', () => {
  it('agrees with the reference semantics on random patterns and paths', () => {
    fc.assert(
      fc.property(smallString(['a', 'b', '-', '/', '*', '*', '/**/'], 12), smallString(['a', 'b', '-', '/'], 14), (rawPattern, path) => {
        const pattern = rawPattern.replace(/\/{2,}/g, '/');
        expect(globMatches(pattern, path)).toBe(referenceMatches(pattern, path));
      }),
      { seed: 7, numRuns: 5000 },
    );
  });

  it('takes at most c * |path| * |pattern| steps for 10,000 random pairs up to 512 characters', () => {
    const C = 8;
    let worst = 0;
    fc.assert(
      fc.property(
        fc.oneof(smallString(['a', '-', '/', '*', '**', '/**/'], 200), fc.string({ minLength: 1, maxLength: 512 })).filter((p) => p.length > 0 && p.length <= 512),
        fc.oneof(smallString(['a', '-', '/'], 512), fc.string({ minLength: 1, maxLength: 512 })).filter((p) => p.length > 0 && p.length <= 512),
        (pattern, path) => {
          const { steps } = matchGlobCounted(compileGlob(pattern), path);
          worst = Math.max(worst, steps / (pattern.length * path.length));
          expect(steps).toBeLessThanOrEqual(C * pattern.length * path.length);
        },
      ),
      { seed: 11, numRuns: 10_000 },
    );
    expect(worst).toBeLessThanOrEqual(C);
  });

  it('decides the crafted inputs of issue 7 within the bound (they used to take 15 s and 111 s)', () => {
    const cases = [
      { pattern: 'svc-*-*-*-*', path: `svc-${'-'.repeat(500)}a/b` },
      { pattern: 'a***************x', path: 'a'.repeat(30) },
      { pattern: '**/**/**/**/**/**/**/**/z', path: 'a/'.repeat(255) + 'b' },
    ];
    for (const { pattern, path } of cases) {
      const { matches, steps } = matchGlobCounted(compileGlob(pattern), path);
      expect(matches).toBe(false);
      expect(steps).toBeLessThanOrEqual(8 * pattern.length * path.length);
      expect(referenceMatches(pattern.replace(/\*+/g, '*'), path)).toBe(false);
    }
  });

  it.each([
    ['**', 'a/b/c', true],
    ['a/**', 'a', true],
    ['**/z', 'z', true],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/zz', false],
    ['*', 'a/b', false],
    ['db-*-*', 'db-eu-prod', true],
    ['db-*-*', 'db-eu', false],
    ['*x*', 'x', true],
  ])('%s matches %s: %s', (pattern, path, expected) => {
    expect(globMatches(pattern, path)).toBe(expected);
  });

  it('names what is wrong with a pattern that cannot be accepted', () => {
    expect(globProblem('')).toMatch(/empty/);
    expect(globProblem('a//b')).toMatch(/empty segment/);
    expect(globProblem('a/b?')).toMatch(/may only contain/);
    expect(globProblem('x'.repeat(GLOB_LIMITS.maxBytes + 1))).toMatch(/at most 512/);
    expect(globProblem(Array(GLOB_LIMITS.maxWildcards + 1).fill('a*').join('-'))).toMatch(/17 wildcards; at most 16/);
    expect(globProblem(Array(GLOB_LIMITS.maxWildcards).fill('a*').join('-'))).toBeUndefined();
    expect(globProblem('svc-*-*-*-*')).toBeUndefined();
  });
});
