import { ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue } from '@bufbuild/protobuf';
import { MAX_JSON_DEPTH } from '../domain/validation.js';
import { decodeSegment, type PathBinding } from './path-template.js';
import type { Route } from './route-table.js';

/** A request that cannot be turned into the RPC's request message (HTTP 400). */
export class RequestDecodeError extends Error {
  override readonly name = 'RequestDecodeError';
}

/** What the gateway knows about a request once it is routed and its body is read. */
export interface HttpInput {
  readonly bindings: readonly PathBinding[];
  /** The raw query string, without `?`. */
  readonly query: string;
  readonly body: Uint8Array;
}

/**
 * Assembles the request message as proto3 JSON (proto field names), the way grpc-gateway does:
 * with `body: "*"` the body is the message and the query string is ignored; with a named body
 * field the body fills that field; every field not bound by the path or the body may come from
 * the query string (proto or JSON names, dotted paths for nested fields, repeated keys for
 * repeated fields). Path variables always win over body and query values.
 */
export function bindRequest(route: Route, input: HttpInput): JsonObject {
  let request: JsonObject = {};
  if (route.body === '*') {
    const body = parseBody(input.body);
    if (body !== undefined) {
      if (!isObject(body)) throw new RequestDecodeError('the request body must be a JSON object');
      request = { ...body };
    }
  } else {
    if (route.bodyField) {
      const body = parseBody(input.body);
      if (body !== undefined) request[route.bodyField.name] = body;
    }
    bindQuery(route, request, parseQuery(input.query));
  }
  route.template.variables.forEach((variable, i) => {
    const fields = route.pathFields[i]!;
    const binding = input.bindings[i]!;
    setField(request, fields, fromText(fields[fields.length - 1]!, binding.value, variable.fieldPath.join('.')), 'replace');
  });
  return request;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a request body; an empty (or all-whitespace) body is no body, as in grpc-gateway. */
function parseBody(bytes: Uint8Array): JsonValue | undefined {
  if (bytes.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new RequestDecodeError('the request body is not valid UTF-8');
  }
  if (text.trim() === '') return undefined;
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new RequestDecodeError(`the request nests deeper than ${MAX_JSON_DEPTH} levels`);
  let json: JsonValue;
  try {
    // The parser's own message quotes the input, which may hold a secret: never pass it on.
    json = JSON.parse(text) as JsonValue;
  } catch {
    throw new RequestDecodeError('the request body is not valid JSON');
  }
  if (hasLoneSurrogate(json)) {
    // Encoding one as UTF-8 would turn it into U+FFFD: a different value than was sent.
    throw new RequestDecodeError('the request body holds an unpaired surrogate escape (such as \\ud800), which is not text');
  }
  return json;
}

/** The deepest nesting of objects and arrays in JSON text, found before parsing it. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function hasLoneSurrogate(json: JsonValue): boolean {
  if (typeof json === 'string') return LONE_SURROGATE.test(json);
  if (typeof json !== 'object' || json === null) return false;
  if (Array.isArray(json)) return json.some(hasLoneSurrogate);
  return Object.entries(json).some(([key, value]) => LONE_SURROGATE.test(key) || hasLoneSurrogate(value));
}

/** Splits a query string strictly: `+` is a space, and a malformed `%` escape is an error. */
export function parseQuery(raw: string): Array<[string, string]> {
  const decode = (part: string) => {
    try {
      return decodeSegment(part.replace(/\+/g, ' '));
    } catch {
      throw new RequestDecodeError('the query string has malformed percent-encoding');
    }
  };
  return raw
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? [decode(pair), ''] : [decode(pair.slice(0, eq)), decode(pair.slice(eq + 1))];
    });
}

function bindQuery(route: Route, request: JsonObject, params: Array<[string, string]>): void {
  // Fields bound by the path or the body are not taken from the query (grpc-gateway's filter).
  const taken = [...route.pathFields, ...(route.bodyField ? [[route.bodyField]] : [])];
  const grouped = new Map<string, { fields: DescField[]; values: string[] }>();
  for (const [key, value] of params) {
    const fields = resolveQueryKey(route.descriptor.input, key);
    if (!fields) continue; // Unknown parameters are ignored, as unknown JSON fields are.
    if (taken.some((t) => t.every((f, i) => i >= fields.length || fields[i] === f))) continue;
    const id = fields.map((f) => f.name).join('.');
    const group = grouped.get(id) ?? { fields, values: [] };
    group.values.push(value);
    grouped.set(id, group);
  }
  for (const [name, { fields, values }] of grouped) {
    const leaf = fields[fields.length - 1]!;
    if (leaf.fieldKind === 'map') throw new RequestDecodeError(`query parameter ${quote(name)} is a map field, which the query string cannot set`);
    if (leaf.fieldKind === 'list') {
      for (const value of values) setField(request, fields, fromText(leaf, value, name), 'append');
    } else {
      if (values.length > 1) throw new RequestDecodeError(`query parameter ${quote(name)} is given ${values.length} times but is not repeated`);
      setField(request, fields, fromText(leaf, values[0]!, name), 'replace');
    }
  }
}

/** Resolves `a.b` (proto or JSON names) to fields; undefined when the first unknown name is met. */
function resolveQueryKey(message: DescMessage, key: string): DescField[] | undefined {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const part of key.split('.')) {
    if (!current) throw new RequestDecodeError(`query parameter ${quote(key)} names a field inside one that is not a message`);
    const field = fieldByName(current, part);
    if (!field) return undefined;
    fields.push(field);
    current = field.fieldKind === 'message' ? field.message : undefined;
  }
  return fields;
}

export function fieldByName(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.name === name || f.jsonName === name);
}

/** Sets a (nested) field under its proto name, dropping a value given under its JSON name. */
function setField(target: JsonObject, fields: readonly DescField[], value: JsonValue, mode: 'replace' | 'append'): void {
  let node = target;
  fields.forEach((field, i) => {
    const existing = own(node, field.name) ?? (field.jsonName !== field.name ? own(node, field.jsonName) : undefined);
    if (field.jsonName !== field.name) delete node[field.jsonName];
    if (i === fields.length - 1) {
      node[field.name] = mode === 'append' ? [...(Array.isArray(existing) ? existing : []), value] : value;
    } else {
      const child: JsonObject = isObject(existing) ? { ...existing } : {};
      node[field.name] = child;
      node = child;
    }
  });
}

function own(object: JsonObject, key: string): JsonValue | undefined {
  return Object.prototype.hasOwnProperty.call(object, key) ? object[key] : undefined;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const INTEGER = /^-?\d+$/;
const FLOAT = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = new Set(['true', 'True', 'TRUE', 't', 'T', '1']);
const FALSE = new Set(['false', 'False', 'FALSE', 'f', 'F', '0']);

/** The proto3 JSON value of a path or query string for a field; type errors are 400s here. */
function fromText(field: DescField, text: string, name: string): JsonValue {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarFromText(field.scalar, text, name);
    case 'enum':
      return INTEGER.test(text) ? Number(text) : text;
    case 'message':
      return messageFromText(field.message, text, name);
    case 'list':
      if (field.listKind === 'scalar') return scalarFromText(field.scalar, text, name);
      if (field.listKind === 'enum') return INTEGER.test(text) ? Number(text) : text;
      return messageFromText(field.message, text, name);
    case 'map':
      throw new RequestDecodeError(`${quote(name)} is a map field, which cannot be set from a string`);
  }
}

function scalarFromText(scalar: ScalarType, text: string, name: string): JsonValue {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return text;
    case ScalarType.BOOL:
      if (TRUE.has(text)) return true;
      if (FALSE.has(text)) return false;
      throw new RequestDecodeError(`${name} must be true or false, got ${quote(text)}`);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
      if (!FLOAT.test(text)) throw new RequestDecodeError(`${name} must be a number, got ${quote(text)}`);
      return Number(text);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      if (!INTEGER.test(text)) throw new RequestDecodeError(`${name} must be a whole number, got ${quote(text)}`);
      return text; // proto3 JSON spells 64-bit integers as strings; the range is checked on decode.
    default:
      if (!INTEGER.test(text)) throw new RequestDecodeError(`${name} must be a whole number, got ${quote(text)}`);
      return Number(text);
  }
}

const WRAPPED: Readonly<Record<string, ScalarType>> = {
  'google.protobuf.DoubleValue': ScalarType.DOUBLE,
  'google.protobuf.FloatValue': ScalarType.FLOAT,
  'google.protobuf.Int64Value': ScalarType.INT64,
  'google.protobuf.UInt64Value': ScalarType.UINT64,
  'google.protobuf.Int32Value': ScalarType.INT32,
  'google.protobuf.UInt32Value': ScalarType.UINT32,
  'google.protobuf.BoolValue': ScalarType.BOOL,
  'google.protobuf.StringValue': ScalarType.STRING,
  'google.protobuf.BytesValue': ScalarType.BYTES,
};

/** Messages a query string can set whole: those whose JSON form is a string or a wrapped scalar. */
function messageFromText(message: DescMessage, text: string, name: string): JsonValue {
  const wrapped = WRAPPED[message.typeName];
  if (wrapped !== undefined) return scalarFromText(wrapped, text, name);
  if (message.typeName === 'google.protobuf.Timestamp') {
    if (!isRfc3339(text)) throw new RequestDecodeError(`${name} must be an RFC 3339 timestamp such as 2030-01-31T12:00:00Z, got ${quote(text)}`);
    return text;
  }
  if (message.typeName === 'google.protobuf.Duration' || message.typeName === 'google.protobuf.FieldMask') return text;
  throw new RequestDecodeError(`${quote(name)} is a message; set its fields as ${name}.<field>`);
}

export function quote(text: string, max = 60): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

/**
 * Whether a string is a proto3 JSON timestamp with a real calendar date and time. The JSON
 * decoder alone lets Date.parse roll 2030-02-30 over into March.
 */
export function isRfc3339(text: string): boolean {
  const m = RFC3339.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const offsetOk = m[7] === undefined || (Number(m[7]) < 24 && Number(m[8]) < 60);
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour < 24 && minute < 60 && second < 60 && offsetOk;
}
