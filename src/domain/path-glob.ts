/**
 * Secret path globs for policies: `*` matches within one segment (any characters but `/`), a
 * segment that is exactly `**` matches any number of segments, including none. Everything else
 * is literal. Compiled once to a regular expression.
 */
export function compileGlob(pattern: string): RegExp {
  let compiled = compiledGlobs.get(pattern);
  if (!compiled) {
    // Policies are evaluated on every agent call; patterns repeat, so compile each once.
    if (compiledGlobs.size >= 10_000) compiledGlobs.clear();
    compiledGlobs.set(pattern, (compiled = toRegExp(pattern)));
  }
  return compiled;
}

const compiledGlobs = new Map<string, RegExp>();

function toRegExp(pattern: string): RegExp {
  const segments = pattern.split('/');
  let source = '';
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '**') {
      // Zero or more whole segments, each followed by '/' unless it ends the path.
      source += last ? '(?:[^/]+(?:/[^/]+)*)?' : '(?:[^/]+/)*';
      return;
    }
    source += segment
      .split('*')
      .map((literal) => literal.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]*');
    if (!last) source += '/';
  });
  // "a/**" should also match "a" itself: the '/' before a trailing '**' is optional.
  source = source.replace(/\/\(\?:\[\^\/\]\+\(\?:\/\[\^\/\]\+\)\*\)\?$/, '(?:/[^/]+(?:/[^/]+)*)?');
  return new RegExp(`^${source}$`);
}

export function globMatches(pattern: string, path: string): boolean {
  return compileGlob(pattern).test(path);
}

const GLOB_PATTERN = /^[a-zA-Z0-9_\-*]+(\/[a-zA-Z0-9_\-*]+)*$/;

/** Whether a pattern is well formed: path characters and `*`, no empty segments. */
export function isValidGlob(pattern: string): boolean {
  return pattern.length > 0 && Buffer.byteLength(pattern) <= 512 && GLOB_PATTERN.test(pattern);
}
