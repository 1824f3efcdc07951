/**
 * Sequence numbers: internally one bigint from the `record_seq` sequence, taken while the
 * shard row is locked, so they rise strictly within a shard and follow arrival order across
 * shards. On the wire they are fixed-width decimal strings (21 digits: inside both the
 * Kinesis pattern and DynamoDB's 21–40 digits), so comparing them as strings or as numbers
 * gives the same order.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { invalidArgument } from '../errors.ts';

/** What a wire sequence number adds to the internal value (fixed width: 21 digits). */
export const SEQUENCE_NUMBER_OFFSET = 10n ** 20n;
const OFFSET = SEQUENCE_NUMBER_OFFSET;
const MAX_INTERNAL = (1n << 63n) - 1n;

export function formatSequenceNumber(seq: bigint | string | number): string {
  return (OFFSET + BigInt(seq)).toString();
}

/** The internal value of a wire sequence number, or an INVALID_ARGUMENT naming the field. */
export function parseSequenceNumber(value: string, field = 'sequenceNumber'): bigint {
  if (!/^(0|[1-9]\d{0,128})$/.test(value)) {
    throw invalidArgument(`${field} must be a decimal sequence number (up to 129 digits), got "${value}".`);
  }
  const internal = BigInt(value) - OFFSET;
  if (internal < 0n || internal > MAX_INTERNAL) {
    throw invalidArgument(`${field} "${value}" is not a sequence number of this server.`);
  }
  return internal;
}

/**
 * The highest internal value record_seq has handed out (committed or not): a number above it
 * was never issued, and positioning a reader there would skip every record written until the
 * counter passes it.
 */
export async function lastIssuedSequence(handle: DatabaseHandle): Promise<bigint> {
  const [row] = await handle.query<{ last: string }>(sql`
    select case when is_called then last_value else last_value - 1 end::text as last from record_seq`);
  return BigInt(row!.last);
}
