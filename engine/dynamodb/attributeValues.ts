/**
 * DynamoDB AttributeValue JSON (aws-semantics §3.5): validation, the canonical key string of an
 * item, item equality, item size, and numbers as DynamoDB stores them. Validation keeps values
 * as given (imports and captures carry what DynamoDB itself emitted); writeItems stores numbers
 * the way DynamoDB does, leading and trailing zeros trimmed (storedNumbers).
 */
import { invalidArgument } from '../errors.ts';
import { isBase64 } from '../records/base64.ts';

export type AttributeValue =
  | { S: string } | { N: string } | { B: string } | { BOOL: boolean } | { NULL: true }
  | { M: Item } | { L: AttributeValue[] } | { SS: string[] } | { NS: string[] } | { BS: string[] };
export type Item = Record<string, AttributeValue>;

const TYPES = new Set(['S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L', 'SS', 'NS', 'BS']);
/** DynamoDB's item size limit. */
export const MAX_ITEM_BYTES = 400 * 1024;
/** DynamoDB's key value limits: a partition key value, and a sort key value. */
export const MAX_PARTITION_KEY_BYTES = 2048;
export const MAX_SORT_KEY_BYTES = 1024;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const NUMBER = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * A number string in canonical form (sign, significant digits, exponent), or undefined when it
 * is not a DynamoDB number: at most 38 significant digits, magnitude 1e-130 to below 1e126.
 */
export function normalizeNumber(value: string): string | undefined {
  const m = NUMBER.exec(value);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const [, sign, int = '', frac = '', exp = '0'] = m;
  let digits = (int + frac).replace(/^0+/, '');
  if (digits === '') return '0';
  let exponent = Number(exp) - frac.length;
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  digits = trimmed;
  const magnitude = exponent + digits.length - 1;
  if (digits.length > 38 || magnitude < -130 || magnitude > 125) return undefined;
  return `${sign === '-' ? '-' : ''}${digits}${exponent === 0 ? '' : `e${exponent}`}`;
}

/**
 * A valid number string as DynamoDB stores and returns it: plain decimal notation, no plus sign,
 * no leading zeros, no trailing zeros after the point ("01.50" → "1.5", "1e2" → "100",
 * "-0.0" → "0").
 */
export function storedNumber(value: string): string {
  const canonical = normalizeNumber(value);
  if (canonical === undefined) throw new Error(`not a DynamoDB number: ${value}`);
  const [mantissa = canonical, exp = '0'] = canonical.split('e');
  const negative = mantissa.startsWith('-');
  const digits = negative ? mantissa.slice(1) : mantissa;
  const exponent = Number(exp);
  const point = digits.length + exponent;
  const plain = exponent >= 0 ? digits + '0'.repeat(exponent)
    : point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}`
    : `0.${'0'.repeat(-point)}${digits}`;
  return negative ? `-${plain}` : plain;
}

/** A copy of a validated item with every number (N, NS, nested ones too) in its stored form. */
export function storedNumbers(item: Item): Item {
  // fromEntries defines each name as an own property, __proto__ included.
  return Object.fromEntries(Object.entries(item).map(([name, value]) => [name, storedValue(value)]));
}

function storedValue(value: AttributeValue): AttributeValue {
  if ('N' in value) return { N: storedNumber(value.N) };
  if ('NS' in value) return { NS: value.NS.map(storedNumber) };
  if ('M' in value) return { M: storedNumbers(value.M) };
  if ('L' in value) return { L: value.L.map(storedValue) };
  return value;
}

/** DynamoDB's limit on nested attributes (maps and lists within maps and lists). */
export const MAX_NESTING = 32;

/** Checks one AttributeValue; errors name `path` and the rule broken. `depth`: the maps and lists around it. */
export function validateAttributeValue(value: unknown, path: string, depth = 0): AttributeValue {
  if (depth > MAX_NESTING) throw invalidArgument(`${path} nests deeper than ${MAX_NESTING} levels of maps and lists (DynamoDB's limit).`);
  if (!isObject(value)) throw invalidArgument(`${path} must be an AttributeValue object such as {"S": "text"}.`);
  const types = Object.keys(value);
  if (types.length !== 1 || !TYPES.has(types[0]!)) {
    throw invalidArgument(
      `${path} must have exactly one type key (S, N, B, BOOL, NULL, M, L, SS, NS or BS), got ${JSON.stringify(types)}.`,
    );
  }
  const type = types[0]!;
  const v = value[type];
  switch (type) {
    case 'S':
      if (typeof v !== 'string') throw invalidArgument(`${path}.S must be a string.`);
      break;
    case 'N':
      if (typeof v !== 'string' || normalizeNumber(v) === undefined) {
        throw invalidArgument(`${path}.N must be a string holding a number (up to 38 digits), got ${JSON.stringify(v)}.`);
      }
      break;
    case 'B':
      if (typeof v !== 'string' || !isBase64(v)) throw invalidArgument(`${path}.B must be a base64 string.`);
      break;
    case 'BOOL':
      if (typeof v !== 'boolean') throw invalidArgument(`${path}.BOOL must be true or false.`);
      break;
    case 'NULL':
      if (v !== true) throw invalidArgument(`${path}.NULL must be true.`);
      break;
    case 'M':
      validateItem(v, `${path}.M`, depth + 1);
      break;
    case 'L':
      if (!Array.isArray(v)) throw invalidArgument(`${path}.L must be an array of AttributeValues.`);
      v.forEach((element, i) => validateAttributeValue(element, `${path}.L[${i}]`, depth + 1));
      break;
    default:
      validateSet(type as 'SS' | 'NS' | 'BS', v, `${path}.${type}`);
  }
  return value as AttributeValue;
}

function validateSet(type: 'SS' | 'NS' | 'BS', members: unknown, path: string): void {
  if (!Array.isArray(members) || members.length === 0) throw invalidArgument(`${path} must be a non-empty array.`);
  const seen = new Set<string>();
  members.forEach((member, i) => {
    if (typeof member !== 'string') throw invalidArgument(`${path}[${i}] must be a string.`);
    const canonical = setMember(type, member);
    if (canonical === undefined) {
      throw invalidArgument(`${path}[${i}] must be ${type === 'NS' ? 'a number string' : 'base64'}, got ${JSON.stringify(member)}.`);
    }
    if (seen.has(canonical)) throw invalidArgument(`${path}[${i}] repeats a member: set members must be unique.`);
    seen.add(canonical);
  });
}

/** The comparable form of a set member: normalised number, re-encoded bytes, or the string. */
function setMember(type: 'SS' | 'NS' | 'BS', member: string): string | undefined {
  if (type === 'NS') return normalizeNumber(member);
  if (type === 'BS') return isBase64(member) ? Buffer.from(member, 'base64').toString('base64') : undefined;
  return member;
}

/** Checks an item (a map of attribute names to AttributeValues). */
export function validateItem(value: unknown, path: string, depth = 0): Item {
  if (!isObject(value)) throw invalidArgument(`${path} must be an object of attribute names to AttributeValues.`);
  for (const [name, attribute] of Object.entries(value)) {
    if (name === '') throw invalidArgument(`${path} has an empty attribute name.`);
    validateAttributeValue(attribute, `${path}.${name}`, depth);
  }
  return value as Item;
}

/**
 * Validates an item's key attributes and returns them with their canonical string: the
 * attributes sorted by name, numbers normalised, as JSON. Key attributes are S, N or B, non-empty.
 * The first attribute, in the order given, is the partition key (at most 2,048 bytes) and a
 * second the sort key (at most 1,024), as DescribeStream's KeySchema reads them back.
 */
export function canonicalKey(value: unknown, path: string): { keys: Item; itemKey: string } {
  if (!isObject(value) || Object.keys(value).length === 0) {
    throw invalidArgument(`${path} must be a non-empty object of key attributes, such as {"id": {"S": "a"}}.`);
  }
  const given = Object.keys(value);
  const names = [...given].sort();
  if (names.length > 2) {
    throw invalidArgument(`${path} must hold a partition key and at most one sort key, got ${names.length} attributes.`);
  }
  // No prototype: a key attribute named __proto__ must be a property like any other name.
  const canonical: Record<string, Record<string, string>> = Object.create(null);
  for (const name of names) {
    const attribute = validateAttributeValue(value[name], `${path}.${name}`) as Record<string, unknown>;
    const [type] = Object.keys(attribute) as [string];
    const v = attribute[type];
    if (type !== 'S' && type !== 'N' && type !== 'B') {
      throw invalidArgument(`${path}.${name} is a key attribute and must be of type S, N or B, got ${type}.`);
    }
    const text = v as string;
    if (text === '') throw invalidArgument(`${path}.${name}.${type} is a key attribute and must not be empty.`);
    const sortKey = given.length === 2 && name === given[1];
    const limit = sortKey ? MAX_SORT_KEY_BYTES : MAX_PARTITION_KEY_BYTES;
    if (Buffer.byteLength(text, type === 'B' ? 'base64' : 'utf8') > limit) {
      throw invalidArgument(`${path}.${name} is the ${sortKey ? 'sort' : 'partition'} key and must be at most ${limit} bytes (DynamoDB's limit).`);
    }
    canonical[name] = { [type]: type === 'N' ? normalizeNumber(text)! : type === 'B' ? Buffer.from(text, 'base64').toString('base64') : text };
  }
  return { keys: value as Item, itemKey: JSON.stringify(canonical) };
}

/** Deep equality of two attribute values; sets compare as sets, numbers by value. */
export function attributeValuesEqual(a: AttributeValue, b: AttributeValue): boolean {
  const [type] = Object.keys(a) as [string];
  if (!(type in b)) return false;
  const x = (a as Record<string, unknown>)[type];
  const y = (b as Record<string, unknown>)[type];
  switch (type) {
    case 'N':
      return normalizeNumber(x as string) === normalizeNumber(y as string);
    case 'B':
      return Buffer.from(x as string, 'base64').equals(Buffer.from(y as string, 'base64'));
    case 'M':
      return itemsEqual(x as Item, y as Item);
    case 'L': {
      const l = x as AttributeValue[];
      const r = y as AttributeValue[];
      return l.length === r.length && l.every((element, i) => attributeValuesEqual(element, r[i]!));
    }
    case 'SS':
    case 'NS':
    case 'BS': {
      const t = type as 'SS' | 'NS' | 'BS';
      const left = new Set((x as string[]).map((m) => setMember(t, m)));
      const right = new Set((y as string[]).map((m) => setMember(t, m)));
      return left.size === right.size && [...left].every((m) => right.has(m));
    }
    default:
      return x === y;
  }
}

/** Deep equality of two items, whatever the attribute order. */
export function itemsEqual(a: Item, b: Item): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  return names.every((name) => Object.hasOwn(b, name) && attributeValuesEqual(a[name]!, b[name]!));
}

/** Item size by DynamoDB's rules (names plus values; numbers ~1 byte per 2 digits + 1). */
export function itemSize(item: Item): number {
  let size = 0;
  for (const [name, value] of Object.entries(item)) size += Buffer.byteLength(name, 'utf8') + valueSize(value);
  return size;
}

function valueSize(value: AttributeValue): number {
  const [type] = Object.keys(value) as [string];
  const v = (value as Record<string, unknown>)[type];
  switch (type) {
    case 'S':
      return Buffer.byteLength(v as string, 'utf8');
    case 'N':
      return numberSize(v as string);
    case 'B':
      return Buffer.byteLength(v as string, 'base64');
    case 'BOOL':
    case 'NULL':
      return 1;
    case 'M':
      return 3 + Object.keys(v as Item).length + itemSize(v as Item);
    case 'L':
      return 3 + (v as AttributeValue[]).reduce((sum, element) => sum + 1 + valueSize(element), 0);
    case 'SS':
      return (v as string[]).reduce((sum, m) => sum + Buffer.byteLength(m, 'utf8'), 0);
    case 'NS':
      return (v as string[]).reduce((sum, m) => sum + numberSize(m), 0);
    default:
      return (v as string[]).reduce((sum, m) => sum + Buffer.byteLength(m, 'base64'), 0);
  }
}

function numberSize(value: string): number {
  const digits = (normalizeNumber(value) ?? value).replace(/^-/, '').replace(/e.*$/, '');
  return Math.ceil(digits.length / 2) + 1;
}
