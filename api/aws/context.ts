/**
 * What the wire operations share: the engine, the ARN context, the clock (injectable, so tests
 * can expire iterators), the token codec and the iterator lifetimes.
 */
import type { Principal } from '../../engine/auth/scopes.ts';
import type { Engine } from '../../engine/engine.ts';
import { TokenCodec } from './iterators.ts';
import type { WireFormat } from './wire.ts';

export interface AwsApiOptions {
  /** Clock of iterator and NextToken issue and expiry, epoch ms. (Default: Date.now) */
  clock?: () => number;
  /** Lifetime of a Kinesis shard iterator. (Default: 5 minutes, as AWS) */
  kinesisIteratorTtlMs?: number;
  /** Lifetime of a DynamoDB Streams shard iterator. (Default: 15 minutes, as AWS) */
  dynamodbIteratorTtlMs?: number;
  /** Lifetime of a ListStreams / ListShards NextToken. (Default: 300 s, as AWS) */
  nextTokenTtlMs?: number;
  /** HMAC key of iterators and NextTokens (see iterators.ts). */
  tokenKey?: string;
  /** Largest request body accepted; larger ones get 413. (Default: 10 MiB) */
  maxBodyBytes?: number;
}

export interface AwsContext {
  engine: Engine;
  region: string;
  accountId: string;
  clock: () => number;
  tokens: TokenCodec;
  kinesisIteratorTtlMs: number;
  dynamodbIteratorTtlMs: number;
  nextTokenTtlMs: number;
  /** Who the call acts as (set per request; the audit log's actor). */
  principal?: Principal;
  /** The request's wire format (set per request), for operations that write their JSON directly. */
  format?: WireFormat;
}

export function awsContext(engine: Engine, options: AwsApiOptions = {}): AwsContext {
  return {
    engine,
    region: engine.options.region,
    accountId: engine.options.accountId,
    clock: options.clock ?? Date.now,
    tokens: new TokenCodec(options.tokenKey),
    kinesisIteratorTtlMs: options.kinesisIteratorTtlMs ?? 300_000,
    dynamodbIteratorTtlMs: options.dynamodbIteratorTtlMs ?? 900_000,
    nextTokenTtlMs: options.nextTokenTtlMs ?? 300_000,
  };
}

/** Java's Date.toString() in UTC, as AWS's iterator-expiry messages print instants. */
export function javaDate(ms: number): string {
  const d = new Date(ms);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}`;
}
