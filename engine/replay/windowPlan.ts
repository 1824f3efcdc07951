/**
 * Turning a replay window into per-shard ranges: records in (after, end] of each shard in
 * scope, resolved once when the job starts. Window bounds are inclusive at both ends (NOTES):
 * AT_TIMESTAMP from takes arrival ≥ from, AT_TIMESTAMP to arrival ≤ to; AT_SEQUENCE_NUMBER
 * includes that record, AFTER_SEQUENCE_NUMBER excludes it; an absent `to` is the latest record
 * of each shard at this moment, so a replay always ends.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { formBatch } from '../delivery/batchForming.ts';
import type { EventContext } from '../delivery/eventShapes.ts';
import type { CompiledFilters } from '../delivery/filterPatterns.ts';
import { inLane, readLane } from '../delivery/laneReader.ts';
import type { Position, RecordReader } from '../records/readRecords.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { parseSequenceNumber } from '../streams/sequenceNumbers.ts';

export interface PlannedRange { shard: ShardInfo; afterSeq: bigint; endSeq: bigint; total: number; bytes: number }

export function describePosition(position: Position): string {
  if (position.type === 'AT_TIMESTAMP') return `AT_TIMESTAMP ${position.timestamp?.toISOString()}`;
  if (position.type === 'AT_SEQUENCE_NUMBER' || position.type === 'AFTER_SEQUENCE_NUMBER') return `${position.type} ${position.sequenceNumber}`;
  return position.type;
}

export async function scopeShards(reader: RecordReader, stream: StreamInfo, shardIds?: string[] | null): Promise<ShardInfo[]> {
  const all = await reader.scope(stream);
  if (!shardIds || shardIds.length === 0) return all;
  // A shard named twice would be delivered (and counted) twice.
  const twice = shardIds.find((id, i) => shardIds.indexOf(id) !== i);
  if (twice !== undefined) throw invalidArgument(`shardIds lists ${twice} twice.`);
  return shardIds.map((id) => {
    const shard = all.find((s) => s.shardId === id);
    if (!shard) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${id} does not exist in stream ${stream.name}.`);
    return shard;
  });
}

/** The first sequence number before the window, per shard. */
export async function windowStart(reader: RecordReader, shards: ShardInfo[], from: Position): Promise<Map<number, bigint>> {
  if (from.type === 'LATEST') throw invalidArgument('from.type must be TRIM_HORIZON, AT_TIMESTAMP, AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER for a replay.');
  const positions = await reader.resolve(shards, from);
  return new Map(shards.map((s) => [s.key, positions.get(s.shardIndex)!.after]));
}

/** The last sequence number inside the window, per shard. */
export async function windowEnd(handle: DatabaseHandle, reader: RecordReader, shards: ShardInfo[], to?: Position | null): Promise<Map<number, bigint>> {
  if (!to) {
    const latest = await reader.latestSeqs(shards);
    return new Map(shards.map((s) => [s.key, latest.get(s.key) ?? -1n]));
  }
  if (to.type === 'AT_SEQUENCE_NUMBER') {
    if (!to.sequenceNumber) throw invalidArgument('to.sequenceNumber is required for AT_SEQUENCE_NUMBER.');
    const seq = parseSequenceNumber(to.sequenceNumber, 'to.sequenceNumber');
    return new Map(shards.map((s) => [s.key, seq]));
  }
  if (to.type === 'AT_TIMESTAMP') {
    if (!to.timestamp) throw invalidArgument('to.timestamp is required for AT_TIMESTAMP.');
    const rows = await handle.query<{ k: unknown; last: string | null }>(sql`
      select c.k, (select r.seq::text from records r where r.shard_key = c.k and r.arrived_at < to_timestamp(${to.timestamp.getTime() + 1}::float8 / 1000)
                    order by r.arrived_at desc, r.seq desc limit 1) as last
        from unnest(${sql.param(shards.map((s) => s.key))}::bigint[]) as c(k)`);
    const byKey = new Map(rows.map((r) => [Number(r.k), r.last === null ? -1n : BigInt(r.last)]));
    return new Map(shards.map((s) => [s.key, byKey.get(s.key) ?? -1n]));
  }
  throw invalidArgument('to.type must be AT_TIMESTAMP or AT_SEQUENCE_NUMBER.');
}

/** Counts the records (and bytes) of a range that pass the filters; of one lane of it for a redrive. */
export async function countRange(
  handle: DatabaseHandle, stream: StreamInfo, shard: ShardInfo, afterSeq: bigint, endSeq: bigint,
  filters: CompiledFilters | undefined, ctx: EventContext, lane = { index: 0, count: 1 },
): Promise<{ total: number; bytes: number }> {
  if (endSeq <= afterSeq) return { total: 0, bytes: 0 };
  if (!filters || filters.patterns.length === 0) {
    const [row] = await handle.query<{ n: unknown; b: unknown }>(sql`
      select count(*) as n, coalesce(sum(r.size_bytes), 0) as b from records r
       where r.shard_key = ${shard.key} and r.seq > ${String(afterSeq)}::bigint and r.seq <= ${String(endSeq)}::bigint
         and r.arrived_at >= now() - make_interval(hours => ${stream.retentionHours}::int) and ${inLane(lane)}`);
    return { total: Number(row?.n ?? 0), bytes: Number(row?.b ?? 0) };
  }
  // With filters every record is judged, as delivery would.
  let total = 0;
  let bytes = 0;
  let after = afterSeq;
  for (;;) {
    const page = await readLane(handle, stream, shard, lane, after, 1000, endSeq);
    if (page.length === 0) return { total, bytes };
    const batch = formBatch(stream, filters, page, ctx);
    total += batch.records.length;
    bytes += batch.records.reduce((sum, r) => sum + r.record.sizeBytes, 0);
    after = batch.pageEnd.seq;
  }
}
