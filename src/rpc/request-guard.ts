import { isUtf8 } from 'node:buffer';
import { ScalarType, type DescField, type DescMessage, type Registry } from '@bufbuild/protobuf';
import { invalidArgument, VaultError } from '../domain/errors.js';
import { requireTimestampParts } from '../domain/timestamp-range.js';
import { MAX_JSON_DEPTH } from '../domain/validation.js';
import type { ApiMethod } from './api-method.js';

/**
 * What a guarded deserializer returns instead of a request it refused. grpc-js answers INTERNAL
 * for anything a deserializer throws, so the refusal travels as a value to the invoker, which
 * fails the call with it (INVALID_ARGUMENT / 400) before authentication, logged like any call.
 */
export class RejectedRequest {
  constructor(readonly error: VaultError) {}
}

/**
 * Wraps every method's request deserializer (both transports use it: the HTTP gateway turns its
 * JSON into the same binary form) with one pass over the wire bytes, against the method's
 * descriptor and before any decoder runs:
 * - malformed protobuf (truncated fields, bad wire types, runaway varints, groups) is refused;
 * - nesting deeper than MAX_JSON_DEPTH, counted as the request's JSON form nests, is refused,
 *   so no recursive decoder ever meets it;
 * - every string field must be valid UTF-8 (proto3's rule; decoders would swap bad bytes for
 *   U+FFFD and so change a value), and no map key may be `__proto__` (decoded into plain
 *   objects it would vanish);
 * - every google.protobuf.Timestamp is range-checked on its seconds and nanos, and the top-level
 *   ones are handed on as the exact millisecond (ts-proto's float conversion rounds
 *   9999-12-31T23:59:59.999999999Z up to year 10000).
 */
export function guardRequests(methods: readonly ApiMethod[], registry: Registry): ApiMethod[] {
  return methods.map((method) => {
    const input = inputOf(method, registry);
    const decode = method.definition.requestDeserialize;
    const requestDeserialize = (bytes: Buffer): unknown => {
      let timestamps: TopLevelTimestamp[];
      try {
        timestamps = scanRequest(input, bytes);
      } catch (error) {
        if (error instanceof VaultError) return new RejectedRequest(error);
        throw error;
      }
      let request: unknown;
      try {
        request = decode(bytes);
      } catch {
        return new RejectedRequest(invalidArgument(`the request is not a valid ${input.typeName} message`));
      }
      for (const { field, ms } of timestamps) (request as Record<string, unknown>)[field] = new Date(ms);
      return request;
    };
    return { ...method, definition: { ...method.definition, requestDeserialize } };
  });
}

function inputOf(method: ApiMethod, registry: Registry): DescMessage {
  const dot = method.fullName.lastIndexOf('.');
  const service = registry.getService(method.fullName.slice(0, dot));
  const descriptor = service?.methods.find((m) => m.name === method.fullName.slice(dot + 1));
  if (!descriptor) throw new Error(`no descriptor for ${method.fullName}`);
  return descriptor.input;
}

interface TopLevelTimestamp {
  /** The ts-proto property name. */
  field: string;
  ms: number;
}

/** A length-delimited region being read: a message, or one entry of a map field. */
interface Frame {
  readonly end: number;
  readonly depth: number;
  /** The proto field path, for messages (`expires_at`, `metadata`). */
  readonly path: string;
  readonly message: DescMessage | undefined;
  /** Set for a map entry frame. */
  readonly map: DescField | undefined;
  /** The field this frame is the value of; undefined for the request itself. */
  readonly field: DescField | undefined;
  seconds: bigint;
  nanos: bigint;
}

class Malformed extends Error {}

const TIMESTAMP = 'google.protobuf.Timestamp';
/** Messages that add no JSON level of their own (a Value is its content; a Struct's entries are its keys). */
const TRANSPARENT = new Set(['google.protobuf.Value']);
const fieldsCache = new WeakMap<DescMessage, Map<number, DescField>>();

function fieldByNumber(message: DescMessage, number: number): DescField | undefined {
  let fields = fieldsCache.get(message);
  if (!fields) {
    fields = new Map(message.fields.map((f) => [f.number, f]));
    fieldsCache.set(message, fields);
  }
  return fields.get(number);
}

const enum Wire {
  Varint = 0,
  Fixed64 = 1,
  Delimited = 2,
  Fixed32 = 5,
}

/** Iterative (no recursion, however deep the input claims to be); returns the top-level timestamps. */
export function scanRequest(root: DescMessage, bytes: Uint8Array): TopLevelTimestamp[] {
  const found: TopLevelTimestamp[] = [];
  const stack: Frame[] = [frame(bytes.length, 1, '', root, undefined, undefined)];
  let pos = 0;
  try {
    while (stack.length > 0) {
      const current = stack[stack.length - 1]!;
      if (pos === current.end) {
        stack.pop();
        finish(current, stack.length === 1, found);
        continue;
      }
      const [tag, afterTag] = readVarint(bytes, pos, current.end);
      pos = afterTag;
      if (tag > 0xffffffffn) throw new Malformed('a field tag is too large');
      const number = Number(tag >> 3n);
      const wire = Number(tag & 7n);
      if (number === 0) throw new Malformed('a field has number 0');
      let field: DescField | undefined;
      let kind: FieldShape;
      if (current.map) {
        kind = number === 1 ? keyShape(current.map) : number === 2 ? valueShape(current.map) : { kind: 'unknown' };
      } else {
        field = fieldByNumber(current.message!, number);
        kind = field ? shapeOf(field) : { kind: 'unknown' };
      }
      switch (wire) {
        case Wire.Varint: {
          const [value, next] = readVarint(bytes, pos, current.end);
          pos = next;
          if (current.message?.typeName === TIMESTAMP) {
            if (number === 1) current.seconds = BigInt.asIntN(64, value);
            if (number === 2) current.nanos = BigInt.asIntN(32, value);
          }
          break;
        }
        case Wire.Fixed64:
          pos = skip(pos, 8, current.end);
          break;
        case Wire.Fixed32:
          pos = skip(pos, 4, current.end);
          break;
        case Wire.Delimited: {
          const [length, start] = readVarint(bytes, pos, current.end);
          if (length > BigInt(current.end - start)) throw new Malformed('a length-delimited field runs past the end of its message');
          const end = start + Number(length);
          pos = end;
          if (kind.kind === 'message') {
            const child = kind.message;
            const depth = current.depth + (TRANSPARENT.has(child.typeName) ? 0 : 1);
            if (depth > MAX_JSON_DEPTH) throw invalidArgument(`the request nests deeper than ${MAX_JSON_DEPTH} levels`);
            stack.push(frame(end, depth, childPath(current, field), child, undefined, field));
            pos = start;
          } else if (kind.kind === 'map') {
            // A Struct's map is the Struct's own JSON object; any other map is an object of its own.
            const depth = current.depth + (current.message?.typeName === 'google.protobuf.Struct' ? 0 : 1);
            if (depth > MAX_JSON_DEPTH) throw invalidArgument(`the request nests deeper than ${MAX_JSON_DEPTH} levels`);
            stack.push(frame(end, depth, childPath(current, field), undefined, kind.field, kind.field));
            pos = start;
          } else if (kind.kind === 'string' || kind.kind === 'key') {
            const text = bytes.subarray(start, end);
            const name = current.map ? current.path : childPath(current, field);
            if (!isUtf8(text)) throw invalidArgument(`${name || 'a string field'} is not valid UTF-8: text fields must be UTF-8 (send binary data base64-encoded)`);
            if (kind.kind === 'key' && text.length === 9 && Buffer.from(text).toString() === '__proto__') {
              throw invalidArgument(`${name} has the key "__proto__", which is not allowed`);
            }
          } else if (kind.kind === 'packed') {
            checkPacked(bytes, start, end, kind.scalar);
          }
          break;
        }
        default:
          throw new Malformed(wire === 3 || wire === 4 ? 'groups are not used by this API' : `wire type ${wire} does not exist`);
      }
    }
  } catch (error) {
    if (error instanceof Malformed) throw invalidArgument(`the request is not a valid ${root.typeName} message: ${error.message}`);
    throw error;
  }
  return found;
}

function frame(end: number, depth: number, path: string, message: DescMessage | undefined, map: DescField | undefined, field: DescField | undefined): Frame {
  return { end, depth, path, message, map, field, seconds: 0n, nanos: 0n };
}

function childPath(parent: Frame, field: DescField | undefined): string {
  // Inside Struct, Value, ListValue and map entries the top field's name says enough.
  if (parent.map || parent.message?.typeName.startsWith('google.protobuf.') || !field) return parent.path;
  return parent.path ? `${parent.path}.${field.name}` : field.name;
}

function finish(done: Frame, parentIsRequest: boolean, found: TopLevelTimestamp[]): void {
  if (done.message?.typeName !== TIMESTAMP) return;
  const nanos = Number(done.nanos);
  requireTimestampParts(done.path || 'timestamp', done.seconds, nanos);
  if (parentIsRequest && done.field?.fieldKind === 'message') {
    found.push({ field: done.field.localName, ms: Number(done.seconds) * 1000 + Math.floor(nanos / 1_000_000) });
  }
}

type FieldShape =
  | { kind: 'message'; message: DescMessage }
  | { kind: 'map'; field: DescField }
  | { kind: 'string' }
  | { kind: 'key' }
  | { kind: 'packed'; scalar: ScalarType }
  | { kind: 'unknown' };

function shapeOf(field: DescField): FieldShape {
  switch (field.fieldKind) {
    case 'message':
      return { kind: 'message', message: field.message };
    case 'map':
      return { kind: 'map', field };
    case 'list':
      if (field.listKind === 'message') return { kind: 'message', message: field.message };
      if (field.listKind === 'enum') return { kind: 'packed', scalar: ScalarType.INT32 };
      return scalarShape(field.scalar);
    case 'enum':
      return { kind: 'unknown' };
    case 'scalar':
      return field.scalar === ScalarType.STRING ? { kind: 'string' } : { kind: 'unknown' };
  }
}

function scalarShape(scalar: ScalarType): FieldShape {
  if (scalar === ScalarType.STRING) return { kind: 'string' };
  if (scalar === ScalarType.BYTES) return { kind: 'unknown' };
  return { kind: 'packed', scalar };
}

function keyShape(map: DescField): FieldShape {
  return map.fieldKind === 'map' && map.mapKey === ScalarType.STRING ? { kind: 'key' } : { kind: 'unknown' };
}

function valueShape(map: DescField): FieldShape {
  if (map.fieldKind !== 'map') return { kind: 'unknown' };
  if (map.mapKind === 'message') return { kind: 'message', message: map.message };
  if (map.mapKind === 'scalar' && map.scalar === ScalarType.STRING) return { kind: 'string' };
  return { kind: 'unknown' };
}

/** A packed repeated scalar must hold whole elements, exactly up to its end. */
function checkPacked(bytes: Uint8Array, start: number, end: number, scalar: ScalarType): void {
  const width =
    scalar === ScalarType.DOUBLE || scalar === ScalarType.FIXED64 || scalar === ScalarType.SFIXED64
      ? 8
      : scalar === ScalarType.FLOAT || scalar === ScalarType.FIXED32 || scalar === ScalarType.SFIXED32
        ? 4
        : 0;
  if (width > 0) {
    if ((end - start) % width !== 0) throw new Malformed('a packed field holds a partial element');
    return;
  }
  let pos = start;
  while (pos < end) pos = readVarint(bytes, pos, end)[1];
}

function skip(pos: number, width: number, end: number): number {
  if (pos + width > end) throw new Malformed('a fixed-width field is truncated');
  return pos + width;
}

/** A base-128 varint of at most 10 bytes that ends before `end`. */
function readVarint(bytes: Uint8Array, pos: number, end: number): [bigint, number] {
  let result = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new Malformed('a varint is truncated');
    const byte = bytes[pos++]!;
    if (i === 9 && byte > 1) throw new Malformed('a varint is longer than 64 bits');
    result |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if (byte < 0x80) return [result, pos];
  }
  throw new Malformed('a varint is longer than 10 bytes');
}
