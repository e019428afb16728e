import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Authenticator } from '../../src/auth/authenticator.js';
import { unauthenticated } from '../../src/domain/errors.js';
import { ROOT } from '../../src/domain/principal.js';
import { createHttpGateway, type HttpGateway } from '../../src/gateway/http-server.js';
import { createRouteTable, descriptorRegistry, RouteDefinitionError } from '../../src/gateway/route-table.js';
import { createLogger } from '../../src/logger.js';
import { createInvoker } from '../../src/rpc/invoker.js';
import { syntheticDescriptorSet, thingServiceMethods, THING_RULES } from './support/synthetic-service.js';

const TOKEN = 'mapping-test-token-0123456789';

/** Accepts exactly `Bearer ${TOKEN}` as root; the real authenticators are tested elsewhere. */
const authenticator: Authenticator = {
  async authenticate(authorization) {
    if (authorization !== `Bearer ${TOKEN}`) throw unauthenticated('invalid credentials');
    return ROOT;
  },
};

/**
 * The google.api.http mapping rules that vault.v1 does not exercise, through the real gateway and
 * invoker, on the made-up gwtest.v1.ThingService (see support/synthetic-service.ts).
 */
describe('HTTP mapping of google.api.http rules', () => {
  let gateway: HttpGateway;
  let base: string;

  beforeAll(async () => {
    const descriptorSet = syntheticDescriptorSet();
    const logger = createLogger('silent');
    gateway = createHttpGateway({
      methods: thingServiceMethods(descriptorSet),
      invoke: createInvoker({ authenticator, logger }),
      descriptorSet,
      maxRequestBytes: 4096,
      logger,
    });
    base = `http://127.0.0.1:${await gateway.listen('127.0.0.1', 0)}`;
  });
  afterAll(() => gateway.close(1000));

  async function call(method: string, path: string, body?: string, token: string | null = TOKEN) {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
  }

  it('binds nested path fields, patterned variables and typed query parameters', async () => {
    const query = [
      'page_size=5',
      'color=COLOR_RED',
      'tags=a',
      'tags=b+c',
      'inner.count=3',
      'inner.color=2',
      'colors=COLOR_BLUE',
      'colors=1',
      'at=2030-01-01T00%3A00%3A00Z',
      'flag=true',
      'big=9007199254740993',
      'ratio=1.5',
      'maybe=0',
      'wrapped=4',
      'not_a_field=ignored',
    ].join('&');
    const { status, json } = await call('GET', `/v1/shelves/7/things/moby?${query}`);
    expect(status).toBe(200);
    expect(json).toEqual({
      parent: 'shelves/7',
      inner: { name: 'moby', count: 3, color: 'COLOR_BLUE' },
      tags: ['a', 'b c'],
      color: 'COLOR_RED',
      page_size: 5,
      at: '2030-01-01T00:00:00Z',
      flag: true,
      colors: ['COLOR_BLUE', 'COLOR_RED'],
      big: '9007199254740993',
      ratio: 1.5,
      maybe: 0,
      labels: {},
      inners: [],
      wrapped: 4,
    });
  });

  it('accepts lowerCamelCase query names and lets the path win over the query', async () => {
    const { json } = await call('GET', '/v1/shelves/7/things/moby?pageSize=9&inner.name=ignored&parent=ignored');
    expect(json).toMatchObject({ parent: 'shelves/7', inner: { name: 'moby' }, page_size: 9 });
  });

  it.each([
    ['color=COLOR_PURPLE', 'COLOR_PURPLE'],
    ['page_size=abc', 'page_size must be a whole number'],
    ['page_size=1.5', 'page_size must be a whole number'],
    ['page_size=99999999999', 'out of range'],
    ['flag=maybe', 'flag must be true or false'],
    ['ratio=lots', 'ratio must be a number'],
    ['at=yesterday', 'at must be an RFC 3339 timestamp'],
    ['at=2030-02-30T00:00:00Z', 'at must be an RFC 3339 timestamp'],
    ['page_size=1&page_size=2', 'is given 2 times but is not repeated'],
    ['labels=x', 'map field'],
    ['inners=x', 'is a message'],
    ['thing=x', 'is a message'],
    ['parent.x=1', 'not a message'],
    ['%zz=1', 'malformed percent-encoding'],
  ])('answers 400 for the query %s', async (query, problem) => {
    const { status, json } = await call('GET', `/v1/shelves/7/things/moby?${query}`);
    expect(status).toBe(400);
    expect(json).toMatchObject({ code: 3, status: 400, title: 'Bad Request' });
    expect(json.message).toContain(problem);
  });

  it('fills a named body field from the body and the other fields from the query', async () => {
    const { status, json } = await call('PATCH', '/v1/things/42?page_size=3&thing.flag=true', JSON.stringify({ id: 'ignored', tags: ['t'], inner: { name: 'n' } }));
    expect(status).toBe(200);
    expect(json).toMatchObject({ thing: { id: '42', tags: ['t'], inner: { name: 'n', count: 0 }, flag: false }, page_size: 3 });
  });

  it('fills a repeated body field from a JSON array', async () => {
    const { json } = await call('PUT', '/v1/things/p/tags', '["a","b"]');
    expect(json).toMatchObject({ parent: 'p', tags: ['a', 'b'] });
  });

  it('takes the whole request from the body with body "*", ignoring the query, with the path winning', async () => {
    const { status, json } = await call('POST', '/v1/things/abc:cancel?flag=true', JSON.stringify({ pageSize: 2, parent: 'other', inner: { nope: 1 }, nope: true }));
    expect(status).toBe(200);
    expect(json).toMatchObject({ parent: 'abc', page_size: 2, flag: false, inner: { name: '' } });
  });

  it.each([
    ['{"page_size":1,"pageSize":2}', 'set multiple times'],
    ['{"color":"COLOR_PURPLE"}', 'COLOR_PURPLE'],
    ['{"inner":{"color":"NOPE"}}', 'NOPE'],
    ['{"page_size":"x"}', 'page_size'],
    ['{"page_size":1.5}', 'page_size'],
    ['{"tags":"a"}', 'tags'],
    ['{"at":"2030-02-30T00:00:00Z"}', 'invalid value for field at: expected an RFC 3339 timestamp'],
    ['{"at":"2030-01-01T24:00:00Z"}', 'invalid value for field at'],
    ['{"at":"2030-01-01 00:00:00Z"}', 'invalid value for field at'],
    ['[]', 'must be a JSON object'],
    ['"text"', 'must be a JSON object'],
    ['{"page_size":', 'not valid JSON'],
  ])('answers 400 for the body %s', async (body, problem) => {
    const { status, json } = await call('POST', '/v1/things/abc:cancel', body);
    expect(status).toBe(400);
    expect(json.message).toContain(problem);
  });

  it('treats an empty or blank body as an empty message', async () => {
    expect((await call('POST', '/v1/things/abc:cancel', '')).json).toMatchObject({ parent: 'abc' });
    expect((await call('POST', '/v1/things/abc:cancel', ' \n')).json).toMatchObject({ parent: 'abc' });
  });

  it('routes the more literal template first, within one HTTP method', async () => {
    // GetMyThing needs no credentials; GetOneThing does: the status shows which one answered.
    expect((await call('GET', '/v1/things/me', undefined, null)).status).toBe(200);
    expect((await call('GET', '/v1/things/someone', undefined, null)).status).toBe(401);
    expect((await call('GET', '/v1/things/someone')).json).toMatchObject({ parent: 'someone' });
  });

  it('serves additional bindings and custom methods', async () => {
    expect((await call('GET', '/v1/shelves/9/things?page_size=2')).json).toMatchObject({ parent: '9', page_size: 2 });
    expect((await call('GET', '/v1/things?parent=p')).json).toMatchObject({ parent: 'p' });
    const probe = await call('OPTIONS', '/v1/things/x/probe');
    expect(probe.status).toBe(200);
    expect(probe.json).toMatchObject({ parent: 'x' });
  });

  it('answers an empty response message with 204 and no body', async () => {
    const erased = await call('DELETE', '/v1/things/x');
    expect(erased.status).toBe(204);
    expect(erased.text).toBe('');
    expect(erased.headers.get('content-type')).toBeNull();
  });

  it('sends only the response_body field, here a list', async () => {
    const { status, json } = await call('GET', '/v1/thing-list');
    expect(status).toBe(200);
    expect(json).toEqual([
      { id: 't1', tags: ['a'], flag: false },
      { id: 't2', tags: [], flag: false },
    ]);
  });

  it('answers 405 with Allow for a method no route of the path has', async () => {
    const { status, headers, json } = await call('PUT', '/v1/things/me');
    expect(status).toBe(405);
    // PATCH /v1/things/{thing.id} matches the path too.
    expect(headers.get('allow')).toBe('DELETE, GET, HEAD, PATCH');
    expect(json).toMatchObject({ code: 12, status: 405, title: 'Method Not Allowed', details: [] });
  });
});

describe('route table from the descriptors', () => {
  const build = (rules: Record<string, Record<string, unknown>>) => {
    const descriptorSet = syntheticDescriptorSet(rules as never);
    return () => createRouteTable({ methods: thingServiceMethods(descriptorSet, Object.keys(rules)), registry: descriptorRegistry(descriptorSet) });
  };

  it('lists the rule first, then its additional bindings', () => {
    const descriptorSet = syntheticDescriptorSet();
    const table = createRouteTable({ methods: thingServiceMethods(descriptorSet), registry: descriptorRegistry(descriptorSet) });
    expect(table.routesOf('gwtest.v1.ThingService.SearchThings').map((r) => [r.binding, r.template.source])).toEqual([
      [0, '/v1/things'],
      [1, '/v1/shelves/{parent}/things'],
    ]);
    expect(table.routes).toHaveLength(Object.keys(THING_RULES).length + 1);
  });

  it.each([
    [{ GetThing: { get: '/v1/{missing}' } }, 'has no field missing'],
    [{ GetThing: { get: '/v1/{inner}' } }, 'must be a singular scalar or enum field'],
    [{ GetThing: { get: '/v1/{tags}' } }, 'must be a singular scalar or enum field'],
    [{ GetThing: { get: '/v1/{parent.x}' } }, 'is not a message field'],
    [{ GetThing: { post: '/v1/x', body: 'nope' } }, 'body names nope'],
    [{ GetThing: { get: '/v1/x', responseBody: 'nope' } }, 'response_body names nope'],
    [{ GetThing: { get: 'v1/x' } }, 'must start with "/"'],
    [{ GetThing: { get: '/v1/{parent}' }, GetOneThing: { get: '/v1/{page_size}' } }, 'claim the same GET paths'],
  ])('refuses to start with a rule that cannot be served: %j', (rules, problem) => {
    expect(build(rules)).toThrow(RouteDefinitionError);
    expect(build(rules)).toThrow(problem);
  });
});
