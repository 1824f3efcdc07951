/**
 * The Kinesis hash-key space: 0 … 2^128−1, decimal strings on the wire. A record goes to the
 * open shard whose inclusive range holds MD5(utf8(partitionKey)) read as an unsigned
 * big-endian 128-bit integer, or its explicitHashKey.
 */
import * as crypto from 'node:crypto';

export const MAX_HASH_KEY = (1n << 128n) - 1n;

/** One-shot crypto.hash (Node ≥ 20.12) costs about half a createHash object per record. */
const md5Hex: (text: string) => string = typeof crypto.hash === 'function'
  ? (text) => crypto.hash('md5', text, 'hex')
  : (text) => crypto.createHash('md5').update(text, 'utf8').digest('hex');

export function hashKeyOf(partitionKey: string): bigint {
  return BigInt(`0x${md5Hex(partitionKey)}`);
}

/** Parses a decimal hash key; undefined when it is not one in [0, 2^128−1]. */
export function parseHashKey(value: string): bigint | undefined {
  if (!/^(0|[1-9]\d{0,38})$/.test(value)) return undefined;
  const key = BigInt(value);
  return key <= MAX_HASH_KEY ? key : undefined;
}

/** N even ranges: shard i covers [i·h, (i+1)·h − 1], the last one ends at 2^128−1. */
export function evenRanges(count: number, start = 0n, end = MAX_HASH_KEY): { start: bigint; end: bigint }[] {
  const width = (end - start + 1n) / BigInt(count);
  return Array.from({ length: count }, (_, i) => ({
    start: start + BigInt(i) * width,
    end: i === count - 1 ? end : start + BigInt(i + 1) * width - 1n,
  }));
}
