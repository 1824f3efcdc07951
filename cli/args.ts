/**
 * Argument parsing of the scripting commands (Node's util.parseArgs, strict): the options
 * every command shares (--url, --token, --json, --help) and the parsers of option values.
 * Every bad value is a UsageError whose message names the option.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './errors.ts';

export const DEFAULT_URL = 'http://127.0.0.1:4000/graphql';

type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandSpec {
  name: string;
  /** one line: what the command does */
  summary: string;
  /** the synopsis line(s), without the common options */
  synopsis: string;
  /** option lines shown by --help */
  details: string;
  options: Options;
}

export interface Common {
  url: string;
  token: string | undefined;
  json: boolean;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

const COMMON_OPTIONS: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const COMMON_HELP = `common options:
  --url URL       GraphQL endpoint of the server (env SHARDLINE_URL; default ${DEFAULT_URL})
  --token TOKEN   sent as "Authorization: Bearer TOKEN" (env SHARDLINE_TOKEN)
  --json          machine-readable JSON on stdout instead of tables and text
  -h, --help      this help`;

export function usageOf(spec: CommandSpec): string {
  return `usage: ${spec.synopsis}`;
}

export function helpOf(spec: CommandSpec): string {
  return `${spec.summary}\n\n${usageOf(spec)}\n\n${spec.details}\n\n${COMMON_HELP}`;
}

export interface Parsed { common: Common; values: Values; help: boolean }

/** Parses a command's arguments; unknown options, missing values and stray words are UsageErrors. */
export function parseCommand(spec: CommandSpec, argv: string[], env: NodeJS.ProcessEnv = process.env): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...spec.options }, strict: true, allowPositionals: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, '.'), usageOf(spec));
  }
  const values = parsed.values as Values;
  if (parsed.positionals.length) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}" (options take the form --name value).`, usageOf(spec));
  }
  const help = values.help === true;
  const rawUrl = (values.url as string | undefined) ?? (env.SHARDLINE_URL || DEFAULT_URL);
  const token = (values.token as string | undefined) ?? (env.SHARDLINE_TOKEN || undefined);
  return { common: { url: help ? rawUrl : parseUrl(rawUrl, spec), token, json: values.json === true }, values, help };
}

/** An http(s) URL; a bare origin (no path) gets the server's path /graphql. */
export function parseUrl(raw: string, spec?: CommandSpec): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL such as ${DEFAULT_URL}, got "${raw}".`, spec && usageOf(spec));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url must be an http:// or https:// URL such as ${DEFAULT_URL}, got "${raw}".`, spec && usageOf(spec));
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/graphql';
  return url.toString();
}

/** Argument readers bound to one command, so that every error carries its usage line. */
export class Reader {
  constructor(
    readonly spec: CommandSpec,
    readonly values: Values,
  ) {}

  fail(message: string): never {
    throw new UsageError(message, usageOf(this.spec));
  }

  string(name: string): string | undefined {
    const value = this.values[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.trim() === '') this.fail(`--${name} needs a value.`);
    return value;
  }

  required(name: string, what: string): string {
    return this.string(name) ?? this.fail(`--${name} ${what} is required.`);
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** A positive integer (1 or more). */
  positiveInt(name: string): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    // The API's Int is 32-bit: a larger number would come back as the server's error, not this one.
    if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || Number(raw) > 2_147_483_647) {
      this.fail(`--${name} must be a whole number from 1 to 2147483647, got "${raw}".`);
    }
    return Number(raw);
  }

  /** A comma-separated list of non-empty items. */
  list(name: string): string[] | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const items = raw.split(',').map((s) => s.trim());
    if (items.some((s) => s === '')) this.fail(`--${name} must be a comma-separated list without empty items, got "${raw}".`);
    return items;
  }

  /** Shard ids, comma-separated; a bare number n stands for shardId-<n, 12 digits>. */
  shardIds(name: string): string[] | undefined {
    return this.list(name)?.map((s) => (/^\d{1,12}$/.test(s) ? `shardId-${s.padStart(12, '0')}` : s));
  }

  /** Options of which at most one may be given. */
  exclusive(...names: string[]): void {
    const given = names.filter((n) => this.values[n] !== undefined);
    if (given.length > 1) this.fail(`give either ${names.map((n) => `--${n}`).join(' or ')}, not both.`);
  }

  position(name: string, allowed: readonly PositionKind[]): PositionInput | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    try {
      return parsePosition(raw, allowed);
    } catch (error) {
      this.fail(`--${name} ${(error as Error).message}`);
    }
  }
}

export type PositionKind = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP' | 'AT_SEQUENCE_NUMBER' | 'AFTER_SEQUENCE_NUMBER';
export interface PositionInput { type: PositionKind; sequenceNumber?: string; timestamp?: string }

const SPELLING: Record<PositionKind, string> = {
  TRIM_HORIZON: 'TRIM_HORIZON',
  LATEST: 'LATEST',
  AT_TIMESTAMP: 'an ISO time such as 2026-11-01T10:00:00Z',
  AT_SEQUENCE_NUMBER: 'seq:<sequence number>',
  AFTER_SEQUENCE_NUMBER: 'after:<sequence number>',
};

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/**
 * TRIM_HORIZON | LATEST | ISO time (with a zone; a bare date is midnight UTC) | seq:<n> | after:<n>,
 * limited to `allowed`. The error message completes "--option …".
 */
export function parsePosition(raw: string, allowed: readonly PositionKind[]): PositionInput {
  const text = raw.trim();
  const expected = (hint?: string) => `must be ${allowed.map((k) => SPELLING[k]).join(' | ')}, got "${raw}"${hint ? ` (${hint})` : ''}.`;
  let position: PositionInput;
  const upper = text.toUpperCase();
  const sequence = /^(seq|after):(.*)$/i.exec(text);
  if (upper === 'TRIM_HORIZON' || upper === 'LATEST') {
    position = { type: upper };
  } else if (sequence) {
    const number = sequence[2]!.trim();
    if (!/^\d{1,128}$/.test(number)) throw new Error(expected('a sequence number is decimal digits'));
    position = { type: sequence[1]!.toLowerCase() === 'seq' ? 'AT_SEQUENCE_NUMBER' : 'AFTER_SEQUENCE_NUMBER', sequenceNumber: number };
  } else if (ISO_TIME.test(text) || ISO_DATE.test(text)) {
    const date = new Date(text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    if (Number.isNaN(date.getTime())) throw new Error(expected('not a valid date'));
    position = { type: 'AT_TIMESTAMP', timestamp: date.toISOString() };
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(text)) {
    throw new Error(expected(`give the time zone, e.g. ${text}Z`));
  } else {
    throw new Error(expected());
  }
  if (!allowed.includes(position.type)) throw new Error(expected());
  return position;
}

/** How a position reads in messages: the words of the GraphQL API. */
export function describePosition(position: PositionInput): string {
  return [position.type, position.sequenceNumber ?? position.timestamp].filter(Boolean).join(' ');
}
