/**
 * Event filtering for mappings (AWS FilterCriteria): the EventBridge pattern language in its
 * Pipes subset (reference §4.8). Patterns are checked and compiled once, when a mapping is
 * created or updated, so a bad pattern is an INVALID_ARGUMENT naming it rather than a record
 * that silently never matches; matching then runs on every polled record.
 *
 * Semantics, as EventBridge's engine defines them:
 * - patterns are OR-ed, the fields of one pattern AND-ed, the matchers in one array OR-ed;
 * - a matcher applies to the primitive values ("leaves") at its path; an array contributes each
 *   of its elements, an object none. So `exists:true` needs a leaf (DynamoDB's `{"k":{"S":…}}`
 *   needs the type key) and `exists:false` holds wherever there is no leaf;
 * - every named field must have a leaf that matches, unless `exists:false` is among its matchers;
 * - exact matching compares numbers as written (300 ≠ 300.0), `numeric` by value and only on
 *   JSON numbers (never DynamoDB's "N" strings).
 *
 * What a pattern is evaluated on (metadata added by Lambda after filtering, awsRegion,
 * eventSourceARN and invokeIdentityArn, cannot be filtered on):
 * - KINESIS: the record flattened as Pipes presents it, with the `kinesis` fields
 *   (partitionKey, sequenceNumber, …) at the top and `data` base64-decoded and parsed as JSON.
 *   Data that is not JSON never matches a pattern that constrains `data`.
 * - DYNAMODB: the event record itself (eventName, dynamodb.NewImage.k.S, userIdentity, …).
 */
import { invalidArgument, limitExceeded } from '../errors.ts';

export type FilterKind = 'KINESIS' | 'DYNAMODB';

export const FILTER_LIMITS = { maxPatterns: 5, maxPatternChars: 4096 };

/** A JSON number with its text: exact matching compares the text, `numeric` the value. */
class JsonNumber {
  constructor(readonly raw: string) {}
}

type Leaf = string | number | boolean | null | JsonNumber;
type NumericOp = '<' | '<=' | '=' | '>' | '>=';

type Matcher =
  | { type: 'exact'; value: string | boolean | null }
  | { type: 'exactNumber'; raw: string }
  | { type: 'prefix' | 'suffix'; value: string; ignoreCase: boolean }
  | { type: 'equalsIgnoreCase'; value: string }
  | { type: 'anythingBut'; strings: Set<string>; numbers: number[] }
  | { type: 'numeric'; conditions: { op: NumericOp; value: number }[] }
  | { type: 'exists'; value: boolean }
  | { type: 'wildcard'; parts: string[] }
  | { type: 'cidr'; network: number; mask: number };

type Field = { key: string; node: PatternNode } | { key: string; matchers: Matcher[] };
interface PatternNode { fields: Field[]; ors: PatternNode[][] }

export interface CompiledFilters {
  readonly patterns: readonly PatternNode[];
  /** Some pattern has a `data` rule (KINESIS): only then is data decoded. */
  readonly usesData: boolean;
  /** Some pattern matches a number exactly: only then is data parsed keeping number text. */
  readonly exactNumbers: boolean;
}

const NOT_JSON = Symbol('data is not JSON');
const NUMERIC_OPS = new Set<string>(['<', '<=', '=', '>', '>=']);
const MATCHERS = 'prefix, suffix, equals-ignore-case, anything-but, numeric, exists, wildcard, cidr';

/** Checks and compiles a mapping's filter patterns; throws INVALID_ARGUMENT / LIMIT_EXCEEDED naming `${field}[i]`. */
export function compileFilterPatterns(patterns: string[], kind: FilterKind, field = 'filterPatterns'): CompiledFilters {
  if (patterns.length > FILTER_LIMITS.maxPatterns) {
    throw limitExceeded(`${field} may hold at most ${FILTER_LIMITS.maxPatterns} patterns, got ${patterns.length}.`);
  }
  const state = { usesData: false, exactNumbers: false };
  const compiled = patterns.map((text, i) => compilePattern(text, kind, `${field}[${i}]`, state));
  return { patterns: compiled, ...state };
}

/** True when there are no patterns or any pattern matches the event record (as built by eventShapes). */
export function matchesFilters(compiled: CompiledFilters, kind: FilterKind, eventRecord: Record<string, unknown>): boolean {
  if (compiled.patterns.length === 0) return true;
  const view = kind === 'KINESIS' ? kinesisView(compiled, eventRecord) : dynamodbView(eventRecord);
  return compiled.patterns.some((pattern) => matchNode(pattern, view));
}

// ---------------------------------------------------------------------------------------------
// Compiling

class PatternError extends Error {
  constructor(readonly path: string[], message: string) {
    super(message);
  }
}

function compilePattern(text: string, kind: FilterKind, name: string, state: { usesData: boolean; exactNumbers: boolean }): PatternNode {
  if (typeof text !== 'string') throw invalidArgument(`${name} must be a JSON object in a string.`);
  if (text.length > FILTER_LIMITS.maxPatternChars) {
    throw limitExceeded(`${name} may be at most ${FILTER_LIMITS.maxPatternChars} characters, got ${text.length}.`);
  }
  try {
    JSON.parse(text);
  } catch (error) {
    throw invalidArgument(`${name} is not valid JSON: ${(error as Error).message}.`);
  }
  const value = parseKeepingNumbers(text);
  if (!isObject(value)) throw invalidArgument(`${name} must be a JSON object such as {"field":["value"]}, got ${describe(value)}.`);
  try {
    return compileNode(value, [], { kind, state, top: true });
  } catch (error) {
    if (!(error instanceof PatternError)) throw error;
    const at = error.path.length > 0 ? ` at ${error.path.join('.')}` : '';
    throw invalidArgument(`${name}${at}: ${error.message}`);
  }
}

interface CompileContext { kind: FilterKind; state: { usesData: boolean; exactNumbers: boolean }; top: boolean }

function compileNode(object: Record<string, unknown>, path: string[], ctx: CompileContext): PatternNode {
  const keys = Object.keys(object);
  if (keys.length === 0) throw new PatternError(path, 'an object in a pattern must name at least one field.');
  const node: PatternNode = { fields: [], ors: [] };
  for (const key of keys) {
    const value = object[key];
    const at = [...path, key];
    if (key === '$or') {
      if (!Array.isArray(value) || value.length === 0 || !value.every(isObject)) {
        throw new PatternError(at, '$or must be an array of pattern objects.');
      }
      node.ors.push(value.map((alternative) => compileNode(alternative as Record<string, unknown>, path, ctx)));
      continue;
    }
    const kinesisData = ctx.kind === 'KINESIS' && ctx.top && key === 'data';
    if (kinesisData) {
      if (!isObject(value)) {
        throw new PatternError(at, 'Kinesis data is matched as JSON, so a data rule must be an object pattern such as {"data":{"type":["order"]}}.');
      }
      ctx.state.usesData = true;
    }
    if (Array.isArray(value)) {
      node.fields.push({ key, matchers: compileMatchers(value, at, ctx) });
    } else if (isObject(value)) {
      node.fields.push({ key, node: compileNode(value, at, { ...ctx, top: false }) });
    } else {
      throw new PatternError(at, `must be an array of matchers or an object, got ${describe(value)}.`);
    }
  }
  return node;
}

function compileMatchers(values: unknown[], path: string[], ctx: CompileContext): Matcher[] {
  if (values.length === 0) throw new PatternError(path, 'an array of matchers must not be empty.');
  return values.map((value): Matcher => {
    if (typeof value === 'string' || typeof value === 'boolean' || value === null) return { type: 'exact', value };
    if (value instanceof JsonNumber) {
      ctx.state.exactNumbers = true;
      return { type: 'exactNumber', raw: value.raw };
    }
    if (isObject(value)) return compileMatcher(value, path);
    throw new PatternError(path, `a matcher must be a string, number, boolean, null or a matcher object, got ${describe(value)}.`);
  });
}

function compileMatcher(object: Record<string, unknown>, path: string[]): Matcher {
  const keys = Object.keys(object);
  if (keys.length !== 1) {
    throw new PatternError(path, `a matcher object must have exactly one key (one of ${MATCHERS}), got ${keys.length === 0 ? 'none' : keys.join(', ')}.`);
  }
  const name = keys[0]!;
  const value = object[name];
  const fail = (message: string): never => { throw new PatternError(path, `${name}: ${message}`); };
  switch (name) {
    case 'prefix':
    case 'suffix': {
      if (typeof value === 'string') return { type: name, value, ignoreCase: false };
      const ignoreCase = isObject(value) && Object.keys(value).length === 1 ? value['equals-ignore-case'] : undefined;
      if (typeof ignoreCase === 'string') return { type: name, value: ignoreCase, ignoreCase: true };
      return fail('must be a string or {"equals-ignore-case": string}.');
    }
    case 'equals-ignore-case':
      return typeof value === 'string' ? { type: 'equalsIgnoreCase', value } : fail('must be a string.');
    case 'anything-but': {
      if (isObject(value)) return fail('the prefix, suffix, equals-ignore-case and wildcard forms of anything-but are not supported for Lambda filters.');
      const list = Array.isArray(value) ? value : [value];
      if (list.length === 0) return fail('must not be an empty list.');
      if (list.every((v) => typeof v === 'string')) return { type: 'anythingBut', strings: new Set(list as string[]), numbers: [] };
      if (list.every((v) => v instanceof JsonNumber)) return { type: 'anythingBut', strings: new Set(), numbers: list.map((v) => Number((v as JsonNumber).raw)) };
      return fail('must be a string, a number, or a list of only strings or only numbers.');
    }
    case 'numeric':
      return { type: 'numeric', conditions: compileNumeric(value, fail) };
    case 'exists':
      return typeof value === 'boolean' ? { type: 'exists', value } : fail('must be true or false.');
    case 'wildcard':
      return typeof value === 'string' ? { type: 'wildcard', parts: compileWildcard(value, fail) } : fail('must be a string.');
    case 'cidr':
      return typeof value === 'string' ? compileCidr(value, fail) : fail('must be a string such as "10.0.0.0/24".');
    default:
      return fail(`is not a supported matcher (supported: ${MATCHERS}).`);
  }
}

function compileNumeric(value: unknown, fail: (message: string) => never): { op: NumericOp; value: number }[] {
  const shape = 'must be [operator, number] or a range [">" or ">=", number, "<" or "<=", number].';
  if (!Array.isArray(value) || (value.length !== 2 && value.length !== 4)) return fail(shape);
  const conditions: { op: NumericOp; value: number }[] = [];
  for (let i = 0; i < value.length; i += 2) {
    const op = value[i];
    const operand = value[i + 1];
    if (typeof op !== 'string' || !NUMERIC_OPS.has(op)) return fail(`${JSON.stringify(op)} is not an operator (use <, <=, =, >, >=); ${shape}`);
    if (!(operand instanceof JsonNumber) || !Number.isFinite(Number(operand.raw))) return fail(`the operand of ${op} must be a finite number.`);
    conditions.push({ op: op as NumericOp, value: Number(operand.raw) });
  }
  if (conditions.length === 2) {
    const [lower, upper] = conditions as [{ op: NumericOp; value: number }, { op: NumericOp; value: number }];
    if ((lower.op !== '>' && lower.op !== '>=') || (upper.op !== '<' && upper.op !== '<=')) {
      return fail('a range must be a lower bound (> or >=) followed by an upper bound (< or <=).');
    }
    if (!(lower.value < upper.value)) return fail(`the lower bound ${lower.value} must be below the upper bound ${upper.value}.`);
  }
  return conditions;
}

/** Splits a wildcard on its unescaped `*` (`\*` is a literal star, `\\` a backslash). */
function compileWildcard(text: string, fail: (message: string) => never): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\') {
      const next = text[i + 1];
      if (next !== '*' && next !== '\\') return fail('a backslash may only escape * or \\.');
      current += next;
      i++;
    } else if (c === '*') {
      if (text[i + 1] === '*') return fail('consecutive wildcard characters (**) are not allowed.');
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function compileCidr(text: string, fail: (message: string) => never): Matcher {
  if (text.includes(':')) return fail('only IPv4 CIDR blocks are supported.');
  const slash = text.indexOf('/');
  const address = slash < 0 ? null : parseIPv4(text.slice(0, slash));
  const bits = slash < 0 ? NaN : Number(text.slice(slash + 1));
  if (address === null || !/^\d{1,2}$/.test(text.slice(slash + 1)) || bits > 32) {
    return fail(`${JSON.stringify(text)} is not an IPv4 CIDR block such as "10.0.0.0/24".`);
  }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return { type: 'cidr', network: (address & mask) >>> 0, mask };
}

// ---------------------------------------------------------------------------------------------
// Matching

function kinesisView(compiled: CompiledFilters, eventRecord: Record<string, unknown>): Record<string, unknown> {
  const kinesis = (eventRecord.kinesis ?? {}) as Record<string, unknown>;
  return {
    kinesisSchemaVersion: kinesis.kinesisSchemaVersion,
    partitionKey: kinesis.partitionKey,
    sequenceNumber: kinesis.sequenceNumber,
    approximateArrivalTimestamp: kinesis.approximateArrivalTimestamp,
    eventSource: eventRecord.eventSource,
    eventVersion: eventRecord.eventVersion,
    eventID: eventRecord.eventID,
    eventName: eventRecord.eventName,
    data: compiled.usesData ? decodeData(kinesis.data, compiled.exactNumbers) : undefined,
  };
}

function dynamodbView(eventRecord: Record<string, unknown>): Record<string, unknown> {
  const { awsRegion: _region, eventSourceARN: _arn, ...view } = eventRecord;
  return view;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeData(data: unknown, keepNumberText: boolean): unknown {
  if (typeof data !== 'string') return NOT_JSON;
  try {
    const text = UTF8.decode(Buffer.from(data, 'base64'));
    const parsed: unknown = JSON.parse(text);
    return keepNumberText ? parseKeepingNumbers(text) : parsed;
  } catch {
    return NOT_JSON;
  }
}

function matchNode(node: PatternNode, value: unknown): boolean {
  for (const field of node.fields) {
    const fieldValue = isObject(value) && Object.hasOwn(value, field.key) ? value[field.key] : undefined;
    if (fieldValue === NOT_JSON) return false;
    if ('node' in field) {
      const objects = objectsIn(fieldValue);
      if (objects.length === 0 ? !matchNode(field.node, undefined) : !objects.some((o) => matchNode(field.node, o))) return false;
    } else {
      const leaves = leavesIn(fieldValue);
      if (!field.matchers.some((m) => matchLeaves(m, leaves))) return false;
    }
  }
  return node.ors.every((alternatives) => alternatives.some((alternative) => matchNode(alternative, value)));
}

function matchLeaves(matcher: Matcher, leaves: Leaf[]): boolean {
  if (matcher.type === 'exists') return matcher.value === leaves.length > 0;
  return leaves.some((leaf) => matchLeaf(matcher, leaf));
}

function matchLeaf(matcher: Exclude<Matcher, { type: 'exists' }>, leaf: Leaf): boolean {
  switch (matcher.type) {
    case 'exact':
      return leaf === matcher.value;
    case 'exactNumber':
      return isNumber(leaf) && numberText(leaf) === matcher.raw;
    case 'prefix':
    case 'suffix': {
      if (typeof leaf !== 'string') return false;
      const [text, affix] = matcher.ignoreCase ? [fold(leaf), fold(matcher.value)] : [leaf, matcher.value];
      return matcher.type === 'prefix' ? text.startsWith(affix) : text.endsWith(affix);
    }
    case 'equalsIgnoreCase':
      return typeof leaf === 'string' && fold(leaf) === fold(matcher.value);
    case 'anythingBut':
      if (typeof leaf === 'string') return !matcher.strings.has(leaf);
      if (isNumber(leaf)) return !matcher.numbers.includes(numberValue(leaf));
      return true;
    case 'numeric': {
      if (!isNumber(leaf)) return false;
      const n = numberValue(leaf);
      return matcher.conditions.every(({ op, value }) =>
        op === '<' ? n < value : op === '<=' ? n <= value : op === '=' ? n === value : op === '>' ? n > value : n >= value);
    }
    case 'wildcard':
      return typeof leaf === 'string' && matchWildcard(matcher.parts, leaf);
    case 'cidr': {
      if (typeof leaf !== 'string') return false;
      const address = parseIPv4(leaf);
      return address !== null && ((address & matcher.mask) >>> 0) === matcher.network;
    }
  }
}

/** Glob match by ordered, leftmost search of the literal parts: linear, no backtracking blow-up. */
function matchWildcard(parts: string[], text: string): boolean {
  const first = parts[0]!;
  if (parts.length === 1) return text === first;
  const last = parts[parts.length - 1]!;
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let position = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = text.indexOf(parts[i]!, position);
    if (found < 0 || found + parts[i]!.length > end) return false;
    position = found + parts[i]!.length;
  }
  return true;
}

/** The primitive values at a path: arrays (however nested) contribute their elements, objects nothing. */
function leavesIn(value: unknown): Leaf[] {
  const leaves: Leaf[] = [];
  walk(value, (v) => { if (!isObject(v)) leaves.push(v as Leaf); });
  return leaves;
}

function objectsIn(value: unknown): Record<string, unknown>[] {
  const objects: Record<string, unknown>[] = [];
  walk(value, (v) => { if (isObject(v)) objects.push(v); });
  return objects;
}

/** Visits the non-array values in `value`, flattening arrays iteratively (data may nest deeply). */
function walk(value: unknown, visit: (v: unknown) => void): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) { visit(value); return; }
  const stack: unknown[][] = [value];
  const indexes: number[] = [0];
  while (stack.length > 0) {
    const top = stack.length - 1;
    const array = stack[top]!;
    const i = indexes[top]!;
    if (i >= array.length) { stack.pop(); indexes.pop(); continue; }
    indexes[top] = i + 1;
    const element = array[i];
    if (Array.isArray(element)) { stack.push(element); indexes.push(0); } else visit(element);
  }
}

// ---------------------------------------------------------------------------------------------
// Values

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonNumber);
}

const isNumber = (leaf: Leaf): leaf is number | JsonNumber => typeof leaf === 'number' || leaf instanceof JsonNumber;
const numberText = (leaf: number | JsonNumber) => (typeof leaf === 'number' ? String(leaf) : leaf.raw);
const numberValue = (leaf: number | JsonNumber) => (typeof leaf === 'number' ? leaf : Number(leaf.raw));
const fold = (text: string) => text.toLowerCase();

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof JsonNumber) return `the number ${value.raw}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function parseIPv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return null;
  let address = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return null;
    address = address * 256 + octet;
  }
  return address;
}

/**
 * Parses JSON text that JSON.parse has already accepted, keeping each number's text as a
 * JsonNumber (JSON.parse would turn 300.0 into 300). Iterative, so deep nesting cannot
 * overflow the stack; objects have no prototype, so a "__proto__" key is just a key.
 */
const NUMBER_CHARS = new Set('0123456789eE.+-');

function parseKeepingNumbers(text: string): unknown {
  type Frame = { array: unknown[] } | { object: Record<string, unknown>; key: string | null };
  const stack: Frame[] = [];
  let root: unknown;
  const put = (value: unknown) => {
    const frame = stack[stack.length - 1];
    if (!frame) root = value;
    else if ('array' in frame) frame.array.push(value);
    else { frame.object[frame.key!] = value; frame.key = null; }
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '{') {
      const object = Object.create(null) as Record<string, unknown>;
      put(object);
      stack.push({ object, key: null });
      i++;
    } else if (c === '[') {
      const array: unknown[] = [];
      put(array);
      stack.push({ array });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1)) as string;
      const frame = stack[stack.length - 1];
      if (frame && 'object' in frame && frame.key === null) frame.key = s;
      else put(s);
      i = j + 1;
    } else if (c === 't') { put(true); i += 4; }
    else if (c === 'f') { put(false); i += 5; }
    else if (c === 'n') { put(null); i += 4; }
    else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && NUMBER_CHARS.has(text[j]!)) j++;
      put(new JsonNumber(text.slice(i, j)));
      i = j;
    } else {
      i++; // whitespace, ',' and ':'
    }
  }
  return root;
}
