import { createFileRegistry, fromBinary, getOption, hasOption, type DescField, type DescMethod, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { ApiMethod } from '../rpc/api-method.js';
import { matchPathTemplate, parsePathTemplate, type PathBinding, type PathTemplate } from './path-template.js';

/** One HTTP binding of one served RPC, read from its `google.api.http` option. */
export interface Route {
  readonly method: ApiMethod;
  readonly descriptor: DescMethod;
  /** `GET`, `PUT`, `POST`, `DELETE`, `PATCH`, or a custom rule's kind. */
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** The fields each template variable binds, parallel to `template.variables`. */
  readonly pathFields: ReadonlyArray<readonly DescField[]>;
  /** `''` (no body), `'*'` (the body is the request) or the name of the request field it fills. */
  readonly body: string;
  readonly bodyField: DescField | undefined;
  /** The response field sent as the HTTP body (`response_body`), or undefined for the whole response. */
  readonly responseField: DescField | undefined;
  /** 0 for the rule itself, 1 and up for its additional_bindings in order. */
  readonly binding: number;
}

export type RouteMatch =
  | { readonly kind: 'matched'; readonly route: Route; readonly bindings: PathBinding[] }
  /** The path matches routes, but none for this HTTP method. */
  | { readonly kind: 'method-not-allowed'; readonly allowed: string[] }
  | { readonly kind: 'not-found' };

export interface RouteTable {
  /** Every route, most specific first. */
  readonly routes: readonly Route[];
  /** Finds the most specific route for a method and decoded path segments. */
  match(httpMethod: string, segments: readonly string[]): RouteMatch;
  /** The routes of one RPC (by fully-qualified name), the rule first, then additional bindings. */
  routesOf(fullName: string): Route[];
}

/** The parts of google.api.HttpRule the gateway reads (as @bufbuild/protobuf decodes it). */
interface HttpRule {
  pattern: { case: 'get' | 'put' | 'post' | 'delete' | 'patch'; value: string } | { case: 'custom'; value: { kind: string; path: string } } | { case: undefined };
  body: string;
  responseBody: string;
  additionalBindings: HttpRule[];
}

/** A route the protos define that cannot be served as written; thrown at start. */
export class RouteDefinitionError extends Error {
  override readonly name = 'RouteDefinitionError';
}

/** Descriptors for every file in a buf-built FileDescriptorSet (see rpc/descriptors.ts). */
export function descriptorRegistry(descriptorSet: Uint8Array): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
}

/**
 * Builds the route table from the `google.api.http` options in the descriptors, for the served
 * methods only: an RPC that is defined but not served has no route (404) until it is added to
 * `methods`. Fails loudly on a rule that does not parse or names a field the request lacks.
 */
export function createRouteTable({ methods, registry }: { methods: readonly ApiMethod[]; registry: FileRegistry }): RouteTable {
  const httpOption = registry.getExtension('google.api.http');
  if (!httpOption) throw new RouteDefinitionError('the descriptor set has no google.api.http extension: rebuild it with `npm run generate`');

  const routes: Route[] = [];
  for (const method of methods) {
    const descriptor = findMethod(registry, method.fullName);
    if (!hasOption(descriptor, httpOption)) continue;
    const rule = getOption(descriptor, httpOption) as unknown as HttpRule;
    // Additional bindings may not nest (http.proto); deeper ones are ignored, as grpc-gateway does.
    [rule, ...rule.additionalBindings].forEach((binding, index) => routes.push(toRoute(method, descriptor, binding, index)));
  }

  const seen = new Map<string, Route>();
  for (const route of routes) {
    const key = `${route.httpMethod} ${shapeOf(route.template)}`;
    const other = seen.get(key);
    if (other) {
      throw new RouteDefinitionError(
        `${route.method.fullName} (${route.template.source}) and ${other.method.fullName} (${other.template.source}) claim the same ${route.httpMethod} paths`,
      );
    }
    seen.set(key, route);
  }

  // More literal segments first (GET /v1/agents/me before GET /v1/agents/{agent_id}); at equal
  // literals a template without `**` first (GET .../secrets before GET .../secrets/{path=**}),
  // then one with a verb. Array.prototype.sort is stable, so ties keep proto order.
  routes.sort(
    (a, b) =>
      b.template.literalCount - a.template.literalCount ||
      Number(a.template.deepIndex >= 0) - Number(b.template.deepIndex >= 0) ||
      Number(b.template.verb !== undefined) - Number(a.template.verb !== undefined),
  );

  return {
    routes,
    match(httpMethod, segments) {
      const allowed = new Set<string>();
      for (const route of routes) {
        const bindings = matchPathTemplate(route.template, segments);
        if (!bindings) continue;
        if (route.httpMethod === httpMethod) return { kind: 'matched', route, bindings };
        allowed.add(route.httpMethod);
      }
      return allowed.size > 0 ? { kind: 'method-not-allowed', allowed: [...allowed].sort() } : { kind: 'not-found' };
    },
    routesOf(fullName) {
      return routes.filter((r) => r.method.fullName === fullName).sort((a, b) => a.binding - b.binding);
    },
  };
}

function findMethod(registry: FileRegistry, fullName: string): DescMethod {
  const dot = fullName.lastIndexOf('.');
  const service = registry.getService(fullName.slice(0, dot));
  const descriptor = service?.methods.find((m) => m.name === fullName.slice(dot + 1));
  if (!descriptor) throw new RouteDefinitionError(`${fullName} is served but is not in the descriptor set: rebuild it with \`npm run generate\``);
  return descriptor;
}

function toRoute(method: ApiMethod, descriptor: DescMethod, rule: HttpRule, binding: number): Route {
  const where = `${method.fullName}${binding > 0 ? ` (additional binding ${binding})` : ''}`;
  const fail = (problem: string): never => {
    throw new RouteDefinitionError(`google.api.http of ${where}: ${problem}`);
  };
  const pattern = rule.pattern;
  let httpMethod: string;
  let path: string;
  if (pattern.case === undefined) return fail('no HTTP method and path');
  if (pattern.case === 'custom') {
    httpMethod = pattern.value.kind;
    path = pattern.value.path;
  } else {
    httpMethod = pattern.case.toUpperCase();
    path = pattern.value;
  }
  if (!/^[A-Z]+$/.test(httpMethod)) fail(`${JSON.stringify(httpMethod)} is not an HTTP method`);

  let template: PathTemplate;
  try {
    template = parsePathTemplate(path);
  } catch (error) {
    return fail((error as Error).message);
  }

  const input = descriptor.input;
  const pathFields = template.variables.map((variable) => {
    const fields: DescField[] = [];
    let message = input;
    variable.fieldPath.forEach((name, i) => {
      const field = message.fields.find((f) => f.name === name);
      if (!field) return fail(`${input.typeName} has no field ${variable.fieldPath.slice(0, i + 1).join('.')}`);
      fields.push(field);
      const last = i === variable.fieldPath.length - 1;
      if (!last) {
        if (field.fieldKind !== 'message') fail(`${variable.fieldPath.slice(0, i + 1).join('.')} is not a message field`);
        else message = field.message;
      } else if (field.fieldKind !== 'scalar' && field.fieldKind !== 'enum') {
        fail(`path variable ${variable.fieldPath.join('.')} must be a singular scalar or enum field`);
      }
    });
    return fields;
  });

  let bodyField: DescField | undefined;
  if (rule.body !== '' && rule.body !== '*') {
    bodyField = input.fields.find((f) => f.name === rule.body);
    if (!bodyField) fail(`body names ${rule.body}, which ${input.typeName} does not have`);
  }
  let responseField: DescField | undefined;
  if (rule.responseBody !== '') {
    responseField = descriptor.output.fields.find((f) => f.name === rule.responseBody);
    if (!responseField) fail(`response_body names ${rule.responseBody}, which ${descriptor.output.typeName} does not have`);
  }
  return { method, descriptor, httpMethod, template, pathFields, body: rule.body, bodyField, responseField, binding };
}

/** A template with its variable names erased: two routes with one shape match the same paths. */
function shapeOf(template: PathTemplate): string {
  const parts = template.segments.map((s) => (s.kind === 'literal' ? `=${s.value}` : s.kind === 'wildcard' ? '*' : '**'));
  return `/${parts.join('/')}${template.verb === undefined ? '' : `:${template.verb}`}`;
}
