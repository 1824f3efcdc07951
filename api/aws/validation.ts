/**
 * Request shapes, as the AWS service models define them, and the two checks AWS runs on every
 * request before the operation itself:
 *
 * 1. Deserialisation: each member must have its modelled type (a string, a number, base64 or
 *    a byte string for blobs …), else SerializationException with the service's wording.
 *    Unknown members are ignored and null is absent, as in AWS.
 * 2. Constraints: required, length, range, pattern and enum violations are collected (up to
 *    10) into one ValidationException worded as AWS words it:
 *    "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint:
 *    Member must have length greater than or equal to 1; Value null at …".
 *    Member paths are lower-camel, list entries are `records.1.member.partitionKey`.
 *
 * The result is the request with blobs as Blob and timestamps as epoch milliseconds.
 */
import { Blob, type WireFormat, blobFromBase64, serializationError, timestampMs, validationError } from './wire.ts';

export type Shape =
  | { type: 'string'; min?: number; max?: number; pattern?: string; enum?: readonly string[] }
  | { type: 'integer' | 'long'; min?: number; max?: number }
  | { type: 'boolean' }
  | { type: 'blob'; min?: number; max?: number }
  | { type: 'timestamp' }
  | { type: 'list'; member: Shape; min?: number; max?: number }
  | { type: 'map'; key: Shape & { type: 'string' }; value: Shape; min?: number; max?: number }
  | StructureShape;

export type MemberShape = Shape & { required?: boolean };
export interface StructureShape { type: 'structure'; members: Record<string, MemberShape> }

export const structure = (members: Record<string, MemberShape>): StructureShape => ({ type: 'structure', members });

const MAX_REPORTED_ERRORS = 10;

interface Member { name: string; path: string; shape: MemberShape }
/** A structure's members with their lower-camel path names, listed once per shape (PutRecords walks 500 of them a call). */
const membersOf = new WeakMap<StructureShape, Member[]>();
function members(shape: StructureShape): Member[] {
  let list = membersOf.get(shape);
  if (!list) {
    list = Object.entries(shape.members).map(([name, member]) => ({ name, path: lowerFirst(name), shape: member }));
    membersOf.set(shape, list);
  }
  return list;
}
const patterns = new Map<string, RegExp>();
function patternOf(source: string): RegExp {
  let pattern = patterns.get(source);
  if (!pattern) {
    pattern = new RegExp(`^(?:${source})$`, 'u');
    patterns.set(source, pattern);
  }
  return pattern;
}

/** Deserialises and validates a request body against its input shape. */
export function parseInput<T>(shape: StructureShape, raw: unknown, format: WireFormat): T {
  // A body of null is a request with no members: their checks say what is missing (not a 500).
  const value = deserialize(shape, raw, format) ?? {};
  const errors: string[] = [];
  checkMembers(shape, value as Record<string, unknown>, '', errors);
  if (errors.length > 0) {
    const shown = errors.slice(0, MAX_REPORTED_ERRORS);
    throw validationError(`${shown.length} validation error${shown.length > 1 ? 's' : ''} detected: ${shown.join('; ')}`);
  }
  return value as T;
}

function describeType(value: unknown): 'boolean' | 'number' | 'string' | 'list' | 'object' | 'bytes' | 'date' | 'other' {
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number' || typeof value === 'bigint') return 'number';
  if (typeof value === 'string') return 'string';
  if (Array.isArray(value)) return 'list';
  if (value instanceof Uint8Array) return 'bytes';
  if (value instanceof Date) return 'date';
  if (typeof value === 'object' && value !== null) return 'object';
  return 'other';
}

function unexpected(kind: ReturnType<typeof describeType>, target: string): never {
  switch (kind) {
    case 'list': throw serializationError('Start of list found where not expected');
    case 'object': throw serializationError('Start of structure or map found where not expected.');
    case 'boolean': throw serializationError(`class java.lang.Boolean can not be converted to ${target}`);
    case 'number': throw serializationError(`class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to ${target}`);
    case 'string': throw serializationError(`class java.lang.String can not be converted to ${target}`);
    default: throw serializationError(`Unexpected value where ${target} was expected.`);
  }
}

function deserialize(shape: Shape, value: unknown, format: WireFormat): unknown {
  if (value === null || value === undefined) return undefined;
  const kind = describeType(value);
  switch (shape.type) {
    case 'string':
      if (kind !== 'string') unexpected(kind, 'an String');
      return value;
    case 'integer':
    case 'long': {
      if (kind !== 'number') unexpected(kind, shape.type === 'integer' ? 'an Integer' : 'an Long');
      const n = Math.trunc(Number(value));
      return shape.type === 'integer' ? Math.max(Math.min(n, 2147483647), -2147483648) : n;
    }
    case 'boolean':
      if (kind !== 'boolean') unexpected(kind, 'an Boolean');
      return value;
    case 'blob':
      if (kind === 'bytes') return Blob.fromBytes(value as Uint8Array);
      if (kind === 'string' && format === 'json') {
        const blob = blobFromBase64(value as string);
        if (!blob) {
          throw serializationError(`'${String(value).slice(0, 100)}' can not be converted to a Blob: it is not valid base64.`);
        }
        return blob;
      }
      return unexpected(kind, 'a Blob');
    case 'timestamp':
      if (kind === 'number' || (kind === 'date' && format === 'cbor')) {
        const ms = timestampMs(kind === 'date' ? (value as Date) : Number(value), format);
        if (!Number.isFinite(ms)) throw serializationError('The timestamp is not a finite number.');
        return ms;
      }
      return unexpected(kind, 'milliseconds since epoch');
    case 'list':
      if (kind !== 'list') {
        if (kind === 'object') unexpected(kind, 'a list');
        throw serializationError('Expected list or null');
      }
      return (value as unknown[]).map((item) => deserialize(shape.member, item, format));
    case 'map': {
      if (kind !== 'object') {
        if (kind === 'list') unexpected(kind, 'a map');
        throw serializationError('Expected map or null');
      }
      const out: Record<string, unknown> = {};
      for (const [key, member] of Object.entries(value as Record<string, unknown>)) out[key] = deserialize(shape.value, member, format);
      return out;
    }
    case 'structure': {
      if (kind !== 'object') {
        if (kind === 'list') unexpected(kind, 'a structure');
        throw serializationError('Expected null');
      }
      const source = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const { name, shape: member } of members(shape)) {
        const v = deserialize(member, source[name], format);
        if (v !== undefined) out[name] = v;
      }
      return out;
    }
  }
}

const lowerFirst = (name: string) => name.charAt(0).toLowerCase() + name.slice(1);

function render(shape: Shape, value: unknown): string {
  if (value === undefined || value === null) return 'null';
  let text: string;
  if (value instanceof Blob) text = `java.nio.HeapByteBuffer[pos=0 lim=${value.length} cap=${value.length}]`;
  else if (Array.isArray(value)) text = `[${value.map((v) => (typeof v === 'object' && v !== null ? '…' : String(v))).join(', ')}]`;
  else if (shape.type === 'map') text = `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`).join(', ')}}`;
  else if (shape.type === 'timestamp') text = new Date(value as number).toISOString();
  else text = String(value);
  return `'${text.length > 300 ? `${text.slice(0, 300)}…` : text}'`;
}

/** Records a broken constraint (the message is only built then: most values pass). */
function fail(errors: string[], shape: Shape, value: unknown, path: string, rule: string): void {
  errors.push(`Value ${render(shape, value)} at '${path}' failed to satisfy constraint: ${rule}`);
}

function checkMembers(shape: StructureShape, value: Record<string, unknown>, prefix: string, errors: string[]): void {
  for (const { name, path: memberPath, shape: member } of members(shape)) {
    const path = prefix === '' ? memberPath : `${prefix}${memberPath}`;
    const v = value[name];
    if (v === undefined) {
      if (member.required) fail(errors, member, v, path, 'Member must not be null');
      continue;
    }
    checkValue(member, v, path, errors);
  }
}

/** A length as the model's length trait counts it: a string's in Unicode code points (Smithy), not UTF-16 units. */
function lengthOf(value: unknown): number {
  if (value instanceof Blob) return value.length;
  if (typeof value === 'string') return /[\uD800-\uDBFF]/.test(value) ? [...value].length : value.length;
  if (Array.isArray(value)) return value.length;
  return Object.keys(value as object).length;
}

function checkValue(shape: Shape, value: unknown, path: string, errors: string[]): void {
  if (value === undefined) {
    // A null entry of a list or map.
    fail(errors, shape, value, path, 'Member must not be null');
    return;
  }
  switch (shape.type) {
    case 'string':
    case 'blob':
    case 'list':
    case 'map': {
      const length = lengthOf(value);
      if (shape.max !== undefined && !(length <= shape.max)) fail(errors, shape, value, path, `Member must have length less than or equal to ${shape.max}`);
      if (shape.min !== undefined && !(length >= shape.min)) fail(errors, shape, value, path, `Member must have length greater than or equal to ${shape.min}`);
      if (shape.type === 'string') {
        if (shape.pattern !== undefined && !patternOf(shape.pattern).test(value as string)) {
          fail(errors, shape, value, path, `Member must satisfy regular expression pattern: ${shape.pattern}`);
        }
        if (shape.enum !== undefined && !shape.enum.includes(value as string)) {
          fail(errors, shape, value, path, `Member must satisfy enum value set: [${shape.enum.join(', ')}]`);
        }
      } else if (shape.type === 'list') {
        (value as unknown[]).forEach((item, i) => checkValue(shape.member, item, `${path}.${i + 1}.member`, errors));
      } else if (shape.type === 'map') {
        for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
          const keyErrors: string[] = [];
          checkValue(shape.key, key, path, keyErrors);
          if (keyErrors.length > 0) {
            errors.push(`Value ${render(shape, value)} at '${path}' failed to satisfy constraint: Map keys must satisfy constraint: [${
              keyErrors.map((e) => e.replace(/^.*failed to satisfy constraint: /, '')).join(', ')}]`);
          }
          checkValue(shape.value, member, `${path}.${key}`, errors);
        }
      }
      return;
    }
    case 'integer':
    case 'long':
      if (shape.max !== undefined && !((value as number) <= shape.max)) fail(errors, shape, value, path, `Member must have value less than or equal to ${shape.max}`);
      if (shape.min !== undefined && !((value as number) >= shape.min)) fail(errors, shape, value, path, `Member must have value greater than or equal to ${shape.min}`);
      return;
    case 'structure':
      checkMembers(shape, value as Record<string, unknown>, `${path}.`, errors);
      return;
    default:
      return;
  }
}
