/**
 * Secret path globs for policies: `*` matches within one segment (any characters but `/`, also
 * none), a segment that is exactly `**` matches any number of whole segments, including none.
 * Everything else is literal.
 *
 * Matching is dynamic programming, never a backtracking regular expression: over segments for
 * `**`, and within a pair of segments over characters for `*`. Each (pattern segment, path
 * segment) pair is compared at most once, so the work is bounded by
 * (|pattern| + 1) * (|path| + 1) steps whatever the pattern and path (a crafted path used to cost
 * time exponential in the number of wildcards and stalled the whole instance).
 */

/** Limits on patterns accepted at policy creation. */
export const GLOB_LIMITS = { maxBytes: 512, maxWildcards: 16 } as const;

const SEGMENT = /^[a-zA-Z0-9_\-*]+$/;

/** A pattern split once into segments; `null` stands for a `**` segment. */
export interface CompiledGlob {
  readonly segments: readonly (string | null)[];
}

export function compileGlob(pattern: string): CompiledGlob {
  let compiled = compiledGlobs.get(pattern);
  if (!compiled) {
    // Policies are evaluated on every agent call; patterns repeat, so split each once.
    if (compiledGlobs.size >= 10_000) compiledGlobs.clear();
    compiled = { segments: pattern.split('/').map((segment) => (segment === '**' ? null : segment)) };
    compiledGlobs.set(pattern, compiled);
  }
  return compiled;
}

const compiledGlobs = new Map<string, CompiledGlob>();

/** Whether `path` matches the glob, and the number of elementary steps the decision took. */
export function matchGlobCounted(glob: CompiledGlob, path: string): { matches: boolean; steps: number } {
  const pattern = glob.segments;
  const segments = path.split('/');
  const n = segments.length;
  let steps = 0;
  // next[j]: pattern segments i+1.. match path segments j..; filled from the last pattern segment back.
  let next = new Uint8Array(n + 1);
  next[n] = 1;
  for (let i = pattern.length - 1; i >= 0; i--) {
    const current = new Uint8Array(n + 1);
    const literal = pattern[i]!;
    if (literal === null) {
      // `**`: current[j] = next[j] || current[j+1] (take zero segments, or one more).
      for (let j = n; j >= 0; j--) {
        steps++;
        current[j] = next[j] || (j < n ? current[j + 1]! : 0) ? 1 : 0;
      }
    } else {
      for (let j = n - 1; j >= 0; j--) {
        steps++;
        if (!next[j + 1]) continue;
        const result = matchSegment(literal, segments[j]!);
        steps += result.steps;
        if (result.matches) current[j] = 1;
      }
    }
    next = current;
  }
  return { matches: next[0] === 1, steps: steps + 1 };
}

/**
 * One segment against a pattern segment with `*` (any run of characters): a row-by-row DP over
 * (pattern characters x segment characters), at most (|pattern| + 1) * (|segment| + 1) steps.
 */
function matchSegment(pattern: string, segment: string): { matches: boolean; steps: number } {
  if (!pattern.includes('*')) return { matches: pattern === segment, steps: Math.min(pattern.length, segment.length) + 1 };
  const m = segment.length;
  // row[j]: the pattern's first i characters match the segment's first j characters.
  let row = new Uint8Array(m + 1);
  row[0] = 1;
  let steps = 1;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    const nextRow = new Uint8Array(m + 1);
    if (char === '*') {
      for (let j = 0; j <= m; j++) {
        steps++;
        nextRow[j] = row[j] || (j > 0 ? nextRow[j - 1]! : 0) ? 1 : 0;
      }
    } else {
      for (let j = 1; j <= m; j++) {
        steps++;
        nextRow[j] = row[j - 1] && segment[j - 1] === char ? 1 : 0;
      }
    }
    row = nextRow;
  }
  return { matches: row[m] === 1, steps };
}

export function globMatches(pattern: string, path: string): boolean {
  return matchGlobCounted(compileGlob(pattern), path).matches;
}

/**
 * Why a pattern cannot be accepted for a policy, or undefined when it is well formed: path
 * characters and `*`, no empty segments, at most GLOB_LIMITS.maxBytes bytes and
 * GLOB_LIMITS.maxWildcards wildcards (a `**` segment or a run of `*` counts as one).
 */
export function globProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'must not be empty';
  const bytes = Buffer.byteLength(pattern);
  if (bytes > GLOB_LIMITS.maxBytes) return `is ${bytes} bytes; at most ${GLOB_LIMITS.maxBytes} are allowed`;
  const segments = pattern.split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '') return `has an empty segment (number ${index + 1}): segments are separated by a single '/'`;
    if (!SEGMENT.test(segment)) return `segment ${JSON.stringify(segment)} may only contain letters, digits, '_', '-' and '*'`;
  }
  const wildcards = pattern.match(/\*+/g)?.length ?? 0;
  if (wildcards > GLOB_LIMITS.maxWildcards) return `has ${wildcards} wildcards; at most ${GLOB_LIMITS.maxWildcards} are allowed`;
  return undefined;
}

/** Whether a pattern is well formed (see globProblem). */
export function isValidGlob(pattern: string): boolean {
  return globProblem(pattern) === undefined;
}
