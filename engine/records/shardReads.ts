/**
 * One-shard reads for the AWS wire APIs (GetRecords): records of one shard after a position,
 * in sequence order, bounded by a count *and* a byte budget, plus what a GetRecords response
 * needs around them: whether anything is left to read and the arrival of the next unread
 * record (for MillisBehindLatest).
 *
 * The byte budget is applied in SQL with a running sum over the page (a streaming window over
 * the (shard, seq) index scan), so a 10,000-record limit over 1 MiB records never loads more
 * than the budget. The first record is always returned, so a read always makes progress.
 * Retention filters exactly as RecordReader.readAfter does: expired records are skipped.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { type StoredRecord, toStoredRecord } from './readRecords.ts';

export interface ShardPosition {
  /** Internal sequence value of the last record consumed (-1 before the first). */
  after: bigint;
  /** Arrival lower bound in epoch ms (lets Postgres prune partitions; 0 for none). */
  lowMs: number;
}

export interface ShardRead {
  records: StoredRecord[];
  /** The position just after the returned records (the given one when none were returned). */
  next: ShardPosition;
  /** Arrival of the first record left unread (within retention), or null when none is left. */
  nextArrival: Date | null;
}

export async function readShard(
  handle: DatabaseHandle,
  stream: StreamInfo,
  shard: ShardInfo,
  from: ShardPosition,
  limit: number,
  maxBytes: number,
): Promise<ShardRead> {
  const dataExpr = stream.kind === 'KINESIS' ? sql`encode(p.data, 'base64')` : sql`convert_from(p.data, 'UTF8')`;
  const rows = await handle.query<{
    seq: string; arrived_ms: number; partition_key: string; data: string | null; size_bytes: number;
    event_name: string | null; event_id: string | null; origin: string | null; included: boolean;
  }>(sql`
    select p.seq::text as seq, (extract(epoch from p.arrived_at) * 1000)::float8 as arrived_ms, p.partition_key,
           case when p.included then ${dataExpr} end as data,
           p.size_bytes, p.event_name, p.event_id, p.origin::text as origin, p.included
      from (
        select r.seq, r.arrived_at, r.partition_key, r.data, r.size_bytes, r.event_name, r.event_id, r.origin,
               (row_number() over w = 1
                 or (row_number() over w <= ${limit}::int and sum(r.size_bytes) over w <= ${maxBytes}::bigint)) as included
          from records r
         where r.shard_key = ${shard.key} and r.seq > ${from.after.toString()}::bigint
           and r.arrived_at >= greatest(to_timestamp(${from.lowMs}::float8 / 1000), now() - make_interval(hours => ${stream.retentionHours}::int))
        window w as (order by r.seq rows between unbounded preceding and current row)
         order by r.seq
         limit ${limit + 1}::int
      ) p
     order by p.seq`);
  const records: StoredRecord[] = [];
  let next = from;
  let nextArrival: Date | null = null;
  for (const row of rows) {
    if (!row.included) {
      nextArrival = new Date(Math.floor(row.arrived_ms));
      break;
    }
    records.push(toStoredRecord(stream, shard, { ...row, data: row.data ?? '' }));
    next = { after: BigInt(row.seq), lowMs: Math.floor(row.arrived_ms) };
  }
  return { records, next, nextArrival };
}

/**
 * The first record of a shard after a position, ignoring retention: its arrival and whether it
 * has passed retention (DynamoDB Streams' TrimmedDataAccessException), or undefined when none.
 */
export async function firstRecordAfter(
  handle: DatabaseHandle, stream: StreamInfo, shard: ShardInfo, after: bigint,
): Promise<{ seq: bigint; expired: boolean } | undefined> {
  const [row] = await handle.query<{ seq: string; expired: boolean }>(sql`
    select r.seq::text as seq, r.arrived_at < now() - make_interval(hours => ${stream.retentionHours}::int) as expired
      from records r where r.shard_key = ${shard.key} and r.seq > ${after.toString()}::bigint
     order by r.seq limit 1`);
  return row ? { seq: BigInt(row.seq), expired: row.expired } : undefined;
}

/**
 * Where a shard's retained data begins: the first record still within retention, with its
 * dense per-shard ordinal (an ordinal above 1 means earlier records have passed retention).
 */
export async function firstRetainedRecord(
  handle: DatabaseHandle, stream: StreamInfo, shard: ShardInfo,
): Promise<{ seq: bigint; ordinal: number } | undefined> {
  const [row] = await handle.query<{ seq: string; ordinal: string | number }>(sql`
    select r.seq::text as seq, r.ordinal from records r
     where r.shard_key = ${shard.key} and r.arrived_at >= now() - make_interval(hours => ${stream.retentionHours}::int)
     order by r.seq limit 1`);
  return row ? { seq: BigInt(row.seq), ordinal: Number(row.ordinal) } : undefined;
}

/** The dense ordinal of the record with this sequence number in the shard, if it is still stored. */
export async function recordOrdinal(handle: DatabaseHandle, shard: ShardInfo, seq: bigint): Promise<number | undefined> {
  const [row] = await handle.query<{ ordinal: string | number }>(sql`
    select r.ordinal from records r where r.shard_key = ${shard.key} and r.seq = ${seq.toString()}::bigint limit 1`);
  return row ? Number(row.ordinal) : undefined;
}
