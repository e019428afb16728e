import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSegment,
  expandPathTemplate,
  matchPathTemplate,
  parsePathTemplate,
  PathDecodeError,
  PathTemplateError,
  splitRequestPath,
} from '../../src/gateway/path-template.js';

const match = (template: string, path: string) => {
  const bindings = matchPathTemplate(parsePathTemplate(template), splitRequestPath(path));
  return bindings && Object.fromEntries(bindings.map((b) => [b.fieldPath.join('.'), b.value]));
};

describe('parsePathTemplate', () => {
  it('parses literals, wildcards, variables, nested field paths and a verb', () => {
    const t = parsePathTemplate('/v1/{parent=shelves/*}/books/{book.name}/*/**:publish');
    expect(t.segments).toEqual([
      { kind: 'literal', value: 'v1' },
      { kind: 'literal', value: 'shelves' },
      { kind: 'wildcard' },
      { kind: 'literal', value: 'books' },
      { kind: 'wildcard' },
      { kind: 'wildcard' },
      { kind: 'deep-wildcard' },
    ]);
    expect(t.variables).toEqual([
      { fieldPath: ['parent'], start: 1, end: 3, multiSegment: true },
      { fieldPath: ['book', 'name'], start: 4, end: 5, multiSegment: false },
    ]);
    expect(t.verb).toBe('publish');
    expect(t.deepIndex).toBe(6);
    expect(t.literalCount).toBe(3);
  });

  it('treats {field} as {field=*} and {path=**} as a multi-segment variable', () => {
    expect(parsePathTemplate('/v1/{id}').variables[0]).toMatchObject({ fieldPath: ['id'], multiSegment: false });
    expect(parsePathTemplate('/v1/{path=**}').variables[0]).toMatchObject({ fieldPath: ['path'], multiSegment: true });
  });

  it('accepts one ** with segments after it, as grpc-gateway v2 does', () => {
    const t = parsePathTemplate('/v1/vaults/{vault_id}/secret-version/{path=**}/{version}/disable');
    expect(t.deepIndex).toBe(4);
    expect(t.variables.map((v) => v.fieldPath.join('.'))).toEqual(['vault_id', 'path', 'version']);
  });

  it.each([
    ['v1/things', 'must start with "/"'],
    ['/', 'empty or unexpected segment'],
    ['/v1//things', 'empty or unexpected segment'],
    ['/v1/things/', 'empty or unexpected segment'],
    ['/v1/**/x/**', 'more than one "**"'],
    ['/v1/{a=**}/{b=**}', 'more than one "**"'],
    ['/v1/{a={b}}', 'cannot contain another variable'],
    ['/v1/{a', 'not closed'],
    ['/v1/{1a}', 'is not a field path'],
    ['/v1/{a..b}', 'is not a field path'],
    ['/v1/{}', 'is not a field path'],
    ['/v1/{a}/{a}', 'bound twice'],
    ['/v1/ab*', 'unexpected'],
    ['/v1/things:', 'is not a literal'],
    ['/v1/a:b/c', 'is not a literal'],
    ['/v1/{a=b:c}', 'expected "}"'],
    ['/v1/a b', 'characters a path segment cannot have'],
    ['/v1/%zz', 'malformed percent-encoding'],
  ])('rejects %s', (template, problem) => {
    expect(() => parsePathTemplate(template)).toThrow(PathTemplateError);
    expect(() => parsePathTemplate(template)).toThrow(problem);
  });
});

describe('matchPathTemplate', () => {
  it('binds single-segment variables and nested field paths', () => {
    expect(match('/v1/vaults/{vault_id}', '/v1/vaults/abc')).toEqual({ vault_id: 'abc' });
    expect(match('/v1/books/{book.name}', '/v1/books/moby')).toEqual({ 'book.name': 'moby' });
    expect(match('/v1/vaults/{vault_id}', '/v1/vaults/abc/extra')).toBeUndefined();
    expect(match('/v1/vaults/{vault_id}', '/v1/vault/abc')).toBeUndefined();
  });

  it('binds a variable with a pattern to the segments it covers', () => {
    expect(match('/v1/{name=shelves/*/books/*}', '/v1/shelves/1/books/2')).toEqual({ name: 'shelves/1/books/2' });
    expect(match('/v1/{name=shelves/*/books/*}', '/v1/shelves/1/magazines/2')).toBeUndefined();
  });

  it('lets ** take zero or more segments, matching what follows it from the right', () => {
    const t = '/v1/{path=**}/{version}/disable';
    expect(match(t, '/v1/a/b/c/3/disable')).toEqual({ path: 'a/b/c', version: '3' });
    expect(match(t, '/v1/a/3/disable')).toEqual({ path: 'a', version: '3' });
    expect(match(t, '/v1/3/disable')).toEqual({ path: '', version: '3' });
    expect(match(t, '/v1/disable')).toBeUndefined();
    expect(match(t, '/v1/a/3/enable')).toBeUndefined();
    // A secret path that ends like the template's tail is still bound whole.
    expect(match(t, '/v1/x/disable/7/disable')).toEqual({ path: 'x/disable', version: '7' });
  });

  it('matches unbound * and ** without binding them', () => {
    expect(match('/v1/*/things', '/v1/any/things')).toEqual({});
    expect(match('/v1/**', '/v1')).toEqual({});
    expect(match('/v1/**', '/v1/a/b')).toEqual({});
  });

  it('strips a :verb suffix from the last segment, and only when something precedes it', () => {
    expect(match('/v1/things/{id}:cancel', '/v1/things/42:cancel')).toEqual({ id: '42' });
    expect(match('/v1/things/{id}:cancel', '/v1/things/42')).toBeUndefined();
    expect(match('/v1/things/{id}:cancel', '/v1/things/:cancel')).toBeUndefined();
    expect(match('/v1/things/{id}:cancel', '/v1/things/42:undo')).toBeUndefined();
    expect(match('/v1/{name=**}:cancel', '/v1/a/b:cancel')).toEqual({ name: 'a/b' });
    // Without a verb in the template, a colon is part of the segment.
    expect(match('/v1/things/{id}', '/v1/things/42:cancel')).toEqual({ id: '42:cancel' });
  });

  it('binds the same values for a path sent raw and with %2F', () => {
    const t = '/v1/vaults/{vault_id}/secret-version/{path=**}/{version}';
    expect(match(t, '/v1/vaults/v/secret-version/api-keys/openai/3')).toEqual({ vault_id: 'v', path: 'api-keys/openai', version: '3' });
    expect(match(t, '/v1/vaults/v/secret-version/api-keys%2Fopenai/3')).toEqual({ vault_id: 'v', path: 'api-keys/openai', version: '3' });
    expect(match(t, '/v1/vaults/v/secret-version/api-keys%2fopenai/3')).toEqual({ vault_id: 'v', path: 'api-keys/openai', version: '3' });
  });
});

describe('splitRequestPath', () => {
  it('splits on / and %2F and decodes every segment', () => {
    expect(splitRequestPath('/v1/a%2Fb/c%20d')).toEqual(['v1', 'a', 'b', 'c d']);
    expect(splitRequestPath('/v1/caf%C3%A9')).toEqual(['v1', 'café']);
    expect(splitRequestPath('/')).toEqual(['']);
    expect(splitRequestPath('/v1//x/')).toEqual(['v1', '', 'x', '']);
    // A double-encoded slash is a literal "%2F" inside one segment, never a separator.
    expect(splitRequestPath('/v1/a%252Fb')).toEqual(['v1', 'a%2Fb']);
  });

  it('takes raw non-ASCII bytes (one char per byte, as Node delivers them) as UTF-8', () => {
    expect(splitRequestPath(`/v1/${Buffer.from('café', 'utf8').toString('latin1')}`)).toEqual(['v1', 'café']);
  });

  it.each(['/v1/%', '/v1/%2', '/v1/%zz', '/v1/a%G0', '/v1/%FF', '/v1/%C3', '/v1/%ED%A0%80', 'v1/x', '/v1/\u0100'])('rejects %s', (path) => {
    expect(() => splitRequestPath(path)).toThrow(PathDecodeError);
  });

  it('never throws anything but PathDecodeError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (rest) => {
        try {
          splitRequestPath(`/${rest}`);
        } catch (error) {
          expect(error).toBeInstanceOf(PathDecodeError);
        }
      }),
    );
  });

  it('inverts encodeURIComponent for every segment', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 12 }), { minLength: 1, maxLength: 6 }), (segments) => {
        const clean = segments.map((s) => s.replace(/\//g, '_'));
        expect(splitRequestPath(`/${clean.map(encodeURIComponent).join('/')}`)).toEqual(clean);
        expect(decodeSegment(encodeURIComponent(clean[0]!))).toBe(clean[0]);
      }),
    );
  });
});

/** Random templates from the grammar, printed, so parsing can be checked against their shape. */
const segmentArb = fc.oneof(
  fc.constantFrom('v1', 'things', 'a-b', 'x.y', 'v~1', 'me').map((value) => ({ text: value, kind: 'literal' as const })),
  fc.constant({ text: '*', kind: 'wildcard' as const }),
);

const templateArb = fc
  .record({
    before: fc.array(segmentArb, { minLength: 1, maxLength: 3 }),
    variable: fc.option(fc.constantFrom('{id}', '{a.b}', '{name=shelves/*}', '{path=**}'), { nil: undefined }),
    after: fc.array(segmentArb, { maxLength: 3 }),
    verb: fc.option(fc.constantFrom('cancel', 'undo'), { nil: undefined }),
  })
  .map(({ before, variable, after, verb }) => {
    const parts = [...before.map((s) => s.text), ...(variable ? [variable] : []), ...after.map((s) => s.text)];
    return `/${parts.join('/')}${verb ? `:${verb}` : ''}`;
  });

describe('templates from the grammar', () => {
  it('parse, expand and match back to the values they were expanded with', () => {
    fc.assert(
      fc.property(templateArb, fc.array(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), { minLength: 1, maxLength: 3 }), fc.boolean(), (source, pieces, encodeSlashes) => {
        const template = parsePathTemplate(source);
        if (template.segments.some((s, i) => s.kind !== 'literal' && !template.variables.some((v) => i >= v.start && i < v.end))) return; // unbound wildcards cannot be expanded
        const values = new Map<string, string>();
        for (const variable of template.variables) {
          const covered = template.segments.slice(variable.start, variable.end);
          const value = covered.map((s, i) => (s.kind === 'literal' ? s.value : s.kind === 'deep-wildcard' ? pieces.join('/') : (pieces[i % pieces.length] ?? 'x'))).join('/');
          values.set(variable.fieldPath.join('.'), value);
        }
        const path = expandPathTemplate(template, (fieldPath) => values.get(fieldPath.join('.'))!, { encodeSlashes });
        const bindings = matchPathTemplate(template, splitRequestPath(path));
        expect(bindings && Object.fromEntries(bindings.map((b) => [b.fieldPath.join('.'), b.value]))).toEqual(Object.fromEntries(values));
      }),
    );
  });
});
