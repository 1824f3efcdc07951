/**
 * Reads the records of one shard lane after a checkpoint: a keyset range scan limited to the
 * batch, filtered to the lane. Records of a shard are spread over parallelizationFactor lanes by
 * a hash of the partition key, so one key's records always share a lane and keep their order.
 *
 * A read is bounded by bytes as well as by count: a batch of 10,000 records of 1 MB would
 * otherwise load 10 GB to send 6 MB. The budget is counted over the stored sizes with a
 * running sum over the index scan, and only records within it carry their data (the others'
 * large values are never detoasted); the first record always comes, so a read makes progress.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { type StoredRecord, toStoredRecord } from '../records/readRecords.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';

export interface LaneRecord { record: StoredRecord; seq: bigint; ordinal: number; arrivalMs: number }

/** A read's records; `cut` when the byte budget ended it before its count did (more may follow). */
export type LanePage = LaneRecord[] & { cut: boolean };

/** What one read may load, in stored bytes: what a 6 MB invocation payload could carry, and a margin. */
export const READ_BUDGET_BYTES = 8 * 1024 * 1024;

/** Whether a record (`records r`) belongs to the lane: its partition-key hash modulo the lane count. */
export function inLane(lane: { index: number; count: number }): SQL {
  return lane.count === 1
    ? sql`true`
    : sql`mod(hashtext(r.partition_key)::bigint + 2147483648, ${lane.count}::int) = ${lane.index}::int`;
}

export async function readLane(
  handle: DatabaseHandle,
  stream: StreamInfo,
  shard: ShardInfo,
  lane: { index: number; count: number },
  afterSeq: bigint | null,
  limit: number,
  /** Replays: read no record after this sequence number (the window's end, inclusive). */
  untilSeq?: bigint,
  maxBytes: number = READ_BUDGET_BYTES,
): Promise<LanePage> {
  // Postgres's base64 breaks lines every 76 characters. replace() (unlike translate()) removes
  // them for a little of the server's time, and spares the engine a copy of every payload and
  // its garbage (toStoredRecord then finds nothing to strip): replays ran ~30% faster.
  const dataExpr = stream.kind === 'KINESIS' ? sql`replace(encode(r.data, 'base64'), E'\n', '')` : sql`convert_from(r.data, 'UTF8')`;
  // A DYNAMODB record's size_bytes is DynamoDB's item size, a fraction of the JSON it loads:
  // the budget counts the stored JSON instead (as shardReads does).
  const bytes = stream.kind === 'DYNAMODB' ? sql`octet_length(r.data)` : sql`r.size_bytes`;
  // Prepared: the text only varies with the stream kind and whether lanes or a window end apply.
  const rows = await handle.prepared<{
    seq: string; ordinal: unknown; arrived_ms: number; partition_key: string; data: string | null;
    size_bytes: number; event_name: string | null; event_id: string | null; origin: string | null;
  }>(sql`
    select r.seq::text as seq, r.ordinal, (extract(epoch from r.arrived_at) * 1000)::float8 as arrived_ms,
           r.partition_key,
           case when row_number() over w = 1 or sum(${bytes}) over w <= ${maxBytes}::bigint then ${dataExpr} end as data,
           r.size_bytes, r.event_name, r.event_id, r.origin::text as origin
      from records r
     where r.shard_key = ${shard.key} and r.seq > ${String(afterSeq ?? -1n)}::bigint
       and r.arrived_at >= now() - make_interval(hours => ${stream.retentionHours}::int)
       and ${inLane(lane)}
       and ${untilSeq === undefined ? sql`true` : sql`r.seq <= ${String(untilSeq)}::bigint`}
    window w as (order by r.seq rows between unbounded preceding and current row)
     order by r.seq
     limit ${limit}::int`);
  const records: LaneRecord[] = [];
  for (const row of rows) {
    if (row.data === null) break; // past the budget: this record and the rest wait for the next read
    records.push({
      record: toStoredRecord(stream, shard, row as typeof row & { data: string }),
      seq: BigInt(row.seq),
      ordinal: Number(row.ordinal),
      arrivalMs: row.arrived_ms,
    });
  }
  return Object.assign(records, { cut: records.length < rows.length });
}

