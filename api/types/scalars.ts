/** DateTime (ISO-8601 UTC with milliseconds) and JSON scalars. */
import { GraphQLError, Kind, type ValueNode } from 'graphql';
import { builder } from '../builder.ts';

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-](\d{2}):(\d{2}))$/;

/**
 * The range every stored timestamp column and every computation on it (a metrics window reaches
 * back days before `from`) can hold; outside it Postgres would refuse the value.
 */
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function parseDate(value: unknown): Date {
  const parts = typeof value === 'string' ? ISO.exec(value) : null;
  if (parts) {
    const [year, month, day, hour, minute, second = '0', , , offsetHour = '0', offsetMinute = '0'] = parts.slice(1);
    // The calendar fields as written: Date would roll 2026-02-31 over to March 3.
    const valid = +month! >= 1 && +month! <= 12 && +day! >= 1 && +day! <= new Date(Date.UTC(+year!, +month!, 0)).getUTCDate()
      && +hour! <= 23 && +minute! <= 59 && +second <= 59 && +offsetHour <= 23 && +offsetMinute <= 59;
    const date = new Date(value as string);
    if (valid && !Number.isNaN(date.getTime())) {
      if (date.getTime() >= EARLIEST && date.getTime() <= LATEST) return date;
      throw new GraphQLError(`DateTime must lie between 1970-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z, got ${JSON.stringify(value)}.`, {
        extensions: { code: 'INVALID_ARGUMENT' },
      });
    }
  }
  throw new GraphQLError(`DateTime must be an ISO-8601 timestamp such as 2026-11-01T00:00:00.000Z, got ${JSON.stringify(value)}.`, {
    extensions: { code: 'INVALID_ARGUMENT' },
  });
}

builder.scalarType('DateTime', {
  description: 'ISO-8601 with milliseconds, UTC',
  serialize: (value) => (value instanceof Date ? value : new Date(value as string)).toISOString(),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});

function literal(ast: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
    case Kind.ENUM:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map((v) => literal(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[ast.name.value];
  }
}

/**
 * JSON inputs nest at most this deep: DynamoDB items (32 levels of maps and lists, two JSON
 * levels each) fit, and nothing deeper reaches code that walks values recursively.
 */
const MAX_JSON_DEPTH = 100;

/** Checks the depth without recursing, so no input can exhaust the stack here. */
function shallowEnough<T>(value: T): T {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) {
      throw new GraphQLError(`JSON values may nest at most ${MAX_JSON_DEPTH} levels of objects and arrays.`, {
        extensions: { code: 'INVALID_ARGUMENT' },
      });
    }
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return value;
}

builder.scalarType('JSON', {
  serialize: (value) => value,
  parseValue: (value) => shallowEnough(value),
  parseLiteral: (ast, variables) => shallowEnough(literal(ast, variables)),
});
