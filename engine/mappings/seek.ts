/**
 * Seeking a mapping: moving the checkpoints of its leases (all shards, or some) to a position,
 * safely while it runs. Each lease's epoch is bumped and its owner cleared in the same
 * transaction, so the batch in flight can no longer write its checkpoint; the poller claims the
 * lease again and the next batch starts at the new position. Every move is written to the
 * checkpoint ledger (from → to, who, why) and the audit log.
 */
import { sql } from 'drizzle-orm';
import type { AuditLog } from '../audit.ts';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import type { Position } from '../records/readRecords.ts';
import { recordCheckpointMoves } from './checkpointMoves.ts';
import { createLeases } from '../delivery/leaseTable.ts';
import { parseSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import type { MappingCatalog } from './mappingCatalog.ts';

export async function seekMapping(
  handle: DatabaseHandle,
  mappings: MappingCatalog,
  streams: StreamCatalog,
  audit: AuditLog,
  mappingId: string,
  position: Position,
  shardIds: string[] | null | undefined,
  actor: string,
): Promise<void> {
  const mapping = await mappings.get(mappingId);
  const stream = await mappings.streamOf(mapping);
  const all = await streams.shards(stream, 'ALL');
  const scope = shardIds && shardIds.length > 0 ? shardIds.map((id) => {
    const shard = all.find((s) => s.shardId === id);
    if (!shard) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${id} does not exist in stream ${stream.name}.`);
    return shard;
  }) : all;
  // The checkpoint is the last record before the position: (seq, ordinal) of that record.
  let target: ReturnType<typeof sql>;
  switch (position.type) {
    case 'TRIM_HORIZON':
      target = sql`select null::bigint as seq, 0::bigint as ordinal`;
      break;
    case 'LATEST':
      target = sql`select r.seq, r.ordinal from records r where r.shard_key = old.shard_key order by r.seq desc limit 1`;
      break;
    case 'AT_TIMESTAMP': {
      if (!position.timestamp) throw invalidArgument('position.timestamp is required for AT_TIMESTAMP.');
      // As createMapping's startingPositionTimestamp and Kinesis's GetShardIterator: a later
      // time would skip whatever arrives until then.
      if (position.timestamp.getTime() > Date.now()) {
        throw invalidArgument(`position.timestamp must not be in the future, got ${position.timestamp.toISOString()}.`);
      }
      target = sql`select r.seq, r.ordinal from records r where r.shard_key = old.shard_key
                    and r.arrived_at < ${position.timestamp.toISOString()}::timestamptz order by r.seq desc limit 1`;
      break;
    }
    case 'AT_SEQUENCE_NUMBER':
    case 'AFTER_SEQUENCE_NUMBER': {
      if (!position.sequenceNumber) throw invalidArgument(`position.sequenceNumber is required for ${position.type}.`);
      const seq = parseSequenceNumber(position.sequenceNumber, 'position.sequenceNumber');
      const bound = position.type === 'AT_SEQUENCE_NUMBER' ? sql`r.seq < ${String(seq)}::bigint` : sql`r.seq <= ${String(seq)}::bigint`;
      target = sql`select r.seq, r.ordinal from records r where r.shard_key = old.shard_key and ${bound} order by r.seq desc limit 1`;
      break;
    }
    default:
      throw invalidArgument('position.type must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER.');
  }
  await handle.transaction(async (tx) => {
    // Leases come from the poller's next heartbeat (or never, where no process delivers): a
    // seek right after createMapping must not find none and move nothing.
    await createLeases(handle, mappingId, tx);
    const moved = await handle.query<{ shard_key: unknown; lane: number; from_seq: string | null; to_seq: string | null }>(sql`
      with old as (
        select l.mapping_id, l.shard_key, l.lane, l.checkpoint_seq from leases l
         where l.mapping_id = ${mappingId} and l.shard_key = any(${sql.param(scope.map((s) => s.key))}::bigint[])
         for update)
      update leases l
         set checkpoint_seq = t.seq, checkpoint_ordinal = coalesce(t.ordinal, 0), checkpoint_is_start = false,
             state = case when l.state = 'SHARD_END' then 'IDLE' else l.state end,
             owner = null, expires_at = null, epoch = l.epoch + 1, consecutive_failures = 0,
             -- The lane starts windows afresh at its new position: an open window's state counts records it may now see again.
             window_start = null, window_state = null
        from old left join lateral (${target}) t on true
       where l.mapping_id = old.mapping_id and l.shard_key = old.shard_key and l.lane = old.lane
      returning l.shard_key, l.lane, old.checkpoint_seq::text as from_seq, l.checkpoint_seq::text as to_seq`, tx);
    await recordCheckpointMoves(tx, mappingId, moved,
      `seek ${position.type}${position.timestamp ? ` ${position.timestamp.toISOString()}` : ''}${position.sequenceNumber ? ` ${position.sequenceNumber}` : ''}`, actor);
    await audit.record('mapping.seek', `mapping:${mappingId}`, { position: { ...position, timestamp: position.timestamp?.toISOString() ?? null }, shardIds: shardIds ?? null, leases: moved.length }, actor, tx);
  });
}
