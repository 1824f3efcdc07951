/**
 * restoreCheckpoints: an undo for checkpoint moves. For each lease of a mapping, the earliest
 * ledger entry after `at` (a seek or a discard) names, in its `from`, where the checkpoint stood
 * just before it; the checkpoint goes back there. Ordinary advances since `at` that no ledger
 * entry follows are kept (those records were acknowledged). Fenced like a seek (epoch bump,
 * owner cleared) and itself recorded in the ledger and the audit log. It does not reach back
 * across a parallelizationFactor change (CONFLICT).
 */
import { sql } from 'drizzle-orm';
import type { AuditLog } from '../audit.ts';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError } from '../errors.ts';
import { recordCheckpointMoves } from './checkpointMoves.ts';
import type { MappingCatalog } from './mappingCatalog.ts';

export async function restoreCheckpoints(
  handle: DatabaseHandle, mappings: MappingCatalog, audit: AuditLog, mappingId: string, at: Date, actor: string,
): Promise<number> {
  await mappings.get(mappingId);
  return handle.transaction(async (tx) => {
    // A parallelizationFactor change gave every lane other keys and started them all at the
    // slowest one's checkpoint: the checkpoints from before it belong to lanes that no longer
    // exist as they were, and putting them back would skip records (or restart a new lane at the
    // stream's start). Restoring goes back to after the change at the earliest.
    const [relaned] = await handle.query<{ at: unknown }>(sql`
      select max(c.at) as at from checkpoint_ledger c
       where c.mapping_id = ${mappingId} and c.at > ${at.toISOString()}::timestamptz and c.reason like 'parallelizationFactor %'`, tx);
    if (relaned?.at) {
      const when = new Date(relaned.at as string | Date).toISOString();
      throw new ShardlineError('CONFLICT',
        `restoreCheckpoints cannot go back across the parallelizationFactor change at ${when}; restore to a time after it, or seek.`);
    }
    const restored = await handle.query<{ shard_key: unknown; lane: number; from_seq: string | null; to_seq: string | null }>(sql`
      with firsts as (
        select distinct on (c.shard_key, c.lane) c.shard_key, c.lane, c.from_seq
          from checkpoint_ledger c
         where c.mapping_id = ${mappingId} and c.at > ${at.toISOString()}::timestamptz
         order by c.shard_key, c.lane, c.id),
      old as (
        select l.shard_key, l.lane, l.checkpoint_seq from leases l
          join firsts f on f.shard_key = l.shard_key and f.lane = l.lane
         where l.mapping_id = ${mappingId} for update of l)
      update leases l
         set checkpoint_seq = f.from_seq,
             checkpoint_ordinal = coalesce((select r.ordinal from records r where r.shard_key = l.shard_key and r.seq = f.from_seq limit 1), 0),
             owner = null, expires_at = null, epoch = l.epoch + 1, consecutive_failures = 0, checkpoint_is_start = false,
             window_start = null, window_state = null, -- windows start afresh, as after a seek
             state = case when l.state = 'SHARD_END' then 'IDLE' else l.state end
        from firsts f join old o on o.shard_key = f.shard_key and o.lane = f.lane
       where l.mapping_id = ${mappingId} and l.shard_key = f.shard_key and l.lane = f.lane
      returning l.shard_key, l.lane, o.checkpoint_seq::text as from_seq, f.from_seq::text as to_seq`, tx);
    await recordCheckpointMoves(tx, mappingId, restored, `restore to ${at.toISOString()}`, actor);
    await audit.record('mapping.restoreCheckpoints', `mapping:${mappingId}`, { at: at.toISOString(), leases: restored.length }, actor, tx);
    return restored.length;
  });
}
