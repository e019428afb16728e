/**
 * URL path templates as google/api/http.proto defines them, with grpc-gateway v2's relaxation that
 * one `**` may be followed by more segments (matched from the right):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 *
 * `{field}` is `{field=*}`. `*` matches exactly one path segment, `**` zero or more. A variable
 * binds the segments its template covers, joined with `/`.
 *
 * Request paths are split into segments on `/` and on `%2F` (so `api-keys%2Fopenai` and
 * `api-keys/openai` are the same two segments, as grpc-gateway routes them), then each segment is
 * percent-decoded strictly: a malformed escape or bytes that are not UTF-8 are an error (HTTP 400).
 */

export type TemplateSegment =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'deep-wildcard' };

/** A variable binds the template segments [start, end) to a (possibly nested) request field. */
export interface TemplateVariable {
  /** Proto field names from the request message down, e.g. `['path']` or `['book', 'name']`. */
  readonly fieldPath: readonly string[];
  readonly start: number;
  readonly end: number;
  /** True when the variable covers more than one segment or a `**` (a multi-segment match). */
  readonly multiSegment: boolean;
}

export interface PathTemplate {
  /** The template as written in the proto. */
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly variables: readonly TemplateVariable[];
  readonly verb: string | undefined;
  /** Index of the one `**` segment, or -1. */
  readonly deepIndex: number;
  /** How many literal segments it has: more literals means a more specific route. */
  readonly literalCount: number;
}

/** A template that does not follow the grammar; thrown at start, never for a request. */
export class PathTemplateError extends Error {
  override readonly name = 'PathTemplateError';
  constructor(
    readonly template: string,
    problem: string,
  ) {
    super(`invalid path template ${JSON.stringify(template)}: ${problem}`);
  }
}

/** A request path that cannot be decoded (HTTP 400). */
export class PathDecodeError extends Error {
  override readonly name = 'PathDecodeError';
}

// RFC 3986 pchar minus ':' (which introduces the verb), '{', '}', '*' and '/'. '%' escapes are
// allowed in literals and compared after decoding.
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=@%]+$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parsePathTemplate(source: string): PathTemplate {
  const fail = (problem: string): never => {
    throw new PathTemplateError(source, problem);
  };
  if (!source.startsWith('/')) fail('it must start with "/"');

  const segments: TemplateSegment[] = [];
  const variables: TemplateVariable[] = [];
  let verb: string | undefined;
  let pos = 1;

  const parseSegment = (inVariable: boolean): void => {
    if (source.startsWith('**', pos)) {
      segments.push({ kind: 'deep-wildcard' });
      pos += 2;
    } else if (source[pos] === '*') {
      segments.push({ kind: 'wildcard' });
      pos += 1;
    } else if (source[pos] === '{') {
      if (inVariable) fail('a variable cannot contain another variable');
      parseVariable();
    } else {
      const start = pos;
      while (pos < source.length && !'/:{}*'.includes(source[pos]!)) pos++;
      const literal = source.slice(start, pos);
      if (literal === '') fail(`empty or unexpected segment at offset ${start}`);
      if (!LITERAL.test(literal)) fail(`literal ${JSON.stringify(literal)} has characters a path segment cannot have`);
      segments.push({ kind: 'literal', value: decodeLiteral(literal, fail) });
    }
    if (pos < source.length && !'/:}'.includes(source[pos]!)) fail(`unexpected ${JSON.stringify(source[pos])} at offset ${pos}`);
  };

  const parseSegments = (inVariable: boolean): void => {
    parseSegment(inVariable);
    while (source[pos] === '/') {
      pos++;
      parseSegment(inVariable);
    }
  };

  const parseVariable = (): void => {
    pos++; // '{'
    const close = source.indexOf('}', pos);
    if (close < 0) fail('a "{" is not closed');
    const equals = source.indexOf('=', pos);
    const nameEnd = equals >= 0 && equals < close ? equals : close;
    const fieldPath = source.slice(pos, nameEnd).split('.');
    if (!fieldPath.every((part) => IDENT.test(part))) fail(`${JSON.stringify(source.slice(pos, nameEnd))} is not a field path`);
    pos = nameEnd;
    const start = segments.length;
    if (source[pos] === '=') {
      pos++;
      parseSegments(true);
    } else {
      segments.push({ kind: 'wildcard' });
    }
    if (source[pos] !== '}') fail(`expected "}" at offset ${pos}`);
    pos++;
    const covered = segments.slice(start);
    variables.push({
      fieldPath,
      start,
      end: segments.length,
      multiSegment: covered.length > 1 || covered.some((s) => s.kind === 'deep-wildcard'),
    });
  };

  parseSegments(false);
  if (source[pos] === ':') {
    verb = source.slice(pos + 1);
    if (!LITERAL.test(verb)) fail(`verb ${JSON.stringify(verb)} is not a literal`);
    verb = decodeLiteral(verb, fail);
    pos = source.length;
  }
  if (pos !== source.length) fail(`unexpected ${JSON.stringify(source[pos])} at offset ${pos}`);

  const deepIndexes = segments.flatMap((s, i) => (s.kind === 'deep-wildcard' ? [i] : []));
  if (deepIndexes.length > 1) fail('it has more than one "**"');
  const names = variables.map((v) => v.fieldPath.join('.'));
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) fail(`field ${duplicate} is bound twice`);

  return {
    source,
    segments,
    variables,
    verb,
    deepIndex: deepIndexes[0] ?? -1,
    literalCount: segments.filter((s) => s.kind === 'literal').length,
  };
}

function decodeLiteral(literal: string, fail: (problem: string) => never): string {
  try {
    return decodeSegment(literal);
  } catch {
    return fail(`literal ${JSON.stringify(literal)} has a malformed percent-encoding`);
  }
}

/** One bound variable: the dotted field path and its decoded value. */
export interface PathBinding {
  readonly fieldPath: readonly string[];
  readonly value: string;
}

/**
 * Matches decoded request path segments (see splitRequestPath) against a template. Returns the
 * variables' values, or undefined when the path does not match.
 */
export function matchPathTemplate(template: PathTemplate, requestSegments: readonly string[]): PathBinding[] | undefined {
  let components = requestSegments;
  if (template.verb !== undefined) {
    // As grpc-gateway does: the verb is a ":verb" suffix of the last segment (not the whole of it).
    const last = components[components.length - 1] ?? '';
    const suffix = `:${template.verb}`;
    if (!last.endsWith(suffix) || last.length === suffix.length) return undefined;
    components = [...components.slice(0, -1), last.slice(0, -suffix.length)];
  }

  const { segments, deepIndex } = template;
  const n = segments.length;
  // With a `**` at k, the segments after it are matched from the right; `**` takes the middle.
  const spare = components.length - (deepIndex < 0 ? n : n - 1);
  if (deepIndex < 0 ? spare !== 0 : spare < 0) return undefined;
  const from = (i: number) => (deepIndex < 0 || i <= deepIndex ? i : i + spare - 1);
  const to = (i: number) => (i === deepIndex ? i + spare : from(i) + 1);

  for (let i = 0; i < n; i++) {
    const segment = segments[i]!;
    if (segment.kind === 'literal' && components[from(i)] !== segment.value) return undefined;
  }
  return template.variables.map((variable) => ({
    fieldPath: variable.fieldPath,
    value: components.slice(from(variable.start), to(variable.end - 1)).join('/'),
  }));
}

/**
 * Splits a raw request path (the part of the request target before `?`) into decoded segments.
 * `%2F` separates segments like `/` does. Throws PathDecodeError for malformed percent-encoding.
 */
export function splitRequestPath(rawPath: string): string[] {
  if (!rawPath.startsWith('/')) throw new PathDecodeError('the request path must start with "/"');
  return rawPath
    .slice(1)
    .split(/\/|%2F/i)
    .map((segment) => decodeSegment(segment));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Percent-decodes strictly: every `%` must start a two-digit hex escape and the bytes must be
 * UTF-8. Raw non-ASCII characters (as Node hands them over, one char per byte) are taken as bytes.
 */
export function decodeSegment(segment: string): string {
  if (!/[%\u0080-\uffff]/.test(segment)) return segment;
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; i++) {
    const char = segment.charCodeAt(i);
    if (char === 0x25) {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new PathDecodeError(`malformed percent-encoding in path segment ${quoteSegment(segment)}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (char > 0xff) {
      throw new PathDecodeError(`path segment ${quoteSegment(segment)} has a character that is not percent-encoded`);
    } else {
      bytes.push(char);
    }
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new PathDecodeError(`path segment ${quoteSegment(segment)} does not decode to UTF-8`);
  }
}

function quoteSegment(segment: string): string {
  return JSON.stringify(segment.length > 60 ? `${segment.slice(0, 60)}…` : segment);
}

/**
 * Builds a request path from a template and field values: the inverse of matchPathTemplate, for
 * clients and tests. Single-segment variables are fully percent-encoded; multi-segment ones keep
 * their `/` unless `encodeSlashes` is set (then `a/b` is sent as `a%2Fb`).
 */
export function expandPathTemplate(
  template: PathTemplate,
  valueOf: (fieldPath: readonly string[]) => string,
  { encodeSlashes = false }: { encodeSlashes?: boolean } = {},
): string {
  const parts: string[] = [];
  for (let i = 0; i < template.segments.length; ) {
    const variable = template.variables.find((v) => v.start === i);
    if (variable) {
      const value = valueOf(variable.fieldPath);
      parts.push(variable.multiSegment && !encodeSlashes ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value));
      i = variable.end;
      continue;
    }
    const segment = template.segments[i]!;
    if (segment.kind !== 'literal') throw new Error(`cannot expand ${template.source}: segment ${i + 1} is an unbound wildcard`);
    parts.push(encodeURIComponent(segment.value));
    i++;
  }
  return `/${parts.join('/')}${template.verb === undefined ? '' : `:${encodeURIComponent(template.verb)}`}`;
}
