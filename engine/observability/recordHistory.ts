/**
 * Poison-record forensics: for one record of a shard, every attempt to deliver it — each
 * invocation whose batch held it (its outcome and error), each bisect split, partial batch
 * response and discard that covered it — oldest first, so an operator sees exactly which
 * record keeps failing and why.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError } from '../errors.ts';
import type { StreamInfo } from '../streams/model.ts';
import { formatSequenceNumber, parseSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';

export interface RecordAttempt {
  at: Date;
  /** INVOCATION, or FAILURE for a failure row (bisect, partial failure, discard …). */
  source: 'INVOCATION' | 'FAILURE';
  /** The invocation's outcome or the failure's kind. */
  kind: string;
  attempt: number;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
  recordCount: number;
  message: string | null;
  replayId: string | null;
}

export async function recordHistory(
  handle: DatabaseHandle, streams: StreamCatalog, stream: StreamInfo, mappingId: string, shardId: string, sequenceNumber: string,
): Promise<RecordAttempt[]> {
  const shard = (await streams.shards(stream, 'ALL')).find((s) => s.shardId === shardId);
  if (!shard) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${shardId} does not exist in stream ${stream.name}.`);
  const seq = parseSequenceNumber(sequenceNumber, 'sequenceNumber');
  const rows = await handle.query<{
    at_ms: number; source: 'INVOCATION' | 'FAILURE'; kind: string; attempt: number; first_seq: string; last_seq: string;
    record_count: number; message: string | null; replay_id: string | null;
  }>(sql`
    -- With parallelizationFactor above 1 a batch's range holds other lanes' records too: only
    -- the batches of the record's own lane held it. Failure rows keep their lane count; a live
    -- invocation is taken at the mapping's factor now (a replay's, whatever its lane).
    with rec as (select hashtext(r.partition_key)::bigint + 2147483648 as h from records r
                  where r.shard_key = ${shard.key} and r.seq = ${String(seq)}::bigint limit 1),
         m as (select parallelization_factor as f from event_source_mappings where id = ${mappingId})
    select (extract(epoch from started_at) * 1000)::float8 as at_ms, 'INVOCATION' as source, outcome as kind, attempt,
           first_seq::text as first_seq, last_seq::text as last_seq, record_count, error as message, replay_id, id
      from invocations i
     where mapping_id = ${mappingId} and shard_key = ${shard.key}
       and first_seq <= ${String(seq)}::bigint and last_seq >= ${String(seq)}::bigint
       and (i.replay_id is not null or coalesce((select f from m), 1) = 1 or not exists (select 1 from rec)
            or mod((select h from rec), (select f from m)) = i.lane)
    union all
    select (extract(epoch from at) * 1000)::float8, 'FAILURE', kind, attempt, first_seq::text, last_seq::text, record_count, message, null, id
      from failures f
     where mapping_id = ${mappingId} and shard_key = ${shard.key}
       and first_seq <= ${String(seq)}::bigint and last_seq >= ${String(seq)}::bigint
       and (f.lanes = 1 or not exists (select 1 from rec) or mod((select h from rec), f.lanes) = f.lane)
     order by 1, 2 desc, id
     limit 1000`);
  return rows.map((r) => ({
    at: new Date(r.at_ms), source: r.source, kind: r.kind, attempt: r.attempt,
    firstSequenceNumber: formatSequenceNumber(r.first_seq), lastSequenceNumber: formatSequenceNumber(r.last_seq),
    recordCount: r.record_count, message: r.message, replayId: r.replay_id,
  }));
}
