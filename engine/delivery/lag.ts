/**
 * Lag figures of a mapping: one row per (shard, lane) lease, read in O(1) per lease whatever
 * the store's size — the newest and the oldest unprocessed (still kept) records are single index
 * probes, and records behind is the shard's dense record count minus the ordinal before that
 * oldest one (parallelizationFactor 1). With several lanes per shard, records behind is a count of that lane's records
 * after its checkpoint, capped at LANE_COUNT_CAP.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import type { LeaseState } from './leaseTable.ts';
import { shardIdOf } from '../streams/model.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';

export interface ShardLag {
  shardId: string;
  lane: number;
  state: LeaseState;
  owner: string | null;
  checkpointSequenceNumber: string | null;
  latestSequenceNumber: string | null;
  recordsBehind: number;
  iteratorAgeMs: number | null;
  oldestUnprocessedAgeMs: number | null;
  consecutiveFailures: number;
  lastInvokedAt: Date | null;
  /** WAITING_FOR_PARENT: the parent (or adjacent parent) shards not yet read to their end. */
  waitingOnShardIds: string[];
  /** Records acknowledged per second over the last minute. */
  drainRatePerSecond: number;
  /** Records behind ÷ drain rate; null when nothing is behind or nothing drains. */
  estimatedDrainSeconds: number | null;
  /**
   * How long until the oldest unprocessed record passes the stream's retention (and is
   * trimmed) or the mapping's maximumRecordAgeSeconds (and is discarded), whichever is sooner;
   * null when nothing is unprocessed.
   */
  timeToDataLossSeconds: number | null;
}

const LANE_COUNT_CAP = 1_000_000;

export async function mappingLag(handle: DatabaseHandle, mappingId: string): Promise<ShardLag[]> {
  const rows = await handle.query<{
    shard_index: number; lane: number; state: LeaseState; owner: string | null; live: boolean | null;
    checkpoint_seq: string | null; latest: string | null; behind: unknown; iterator_age_ms: unknown;
    oldest_ms: number | null; now_ms: number; consecutive_failures: number; last_invoked_ms: number | null;
    waiting_on: number[] | null; drained: unknown; retention_hours: number; max_age_s: number;
  }>(sql`
    select s.shard_index, l.lane, l.state, l.owner, l.expires_at > now() as live,
           -- A checkpoint the starting position set is no record the mapping is done with.
           case when l.checkpoint_is_start then null else l.checkpoint_seq::text end as checkpoint_seq,
           latest.seq::text as latest,
           -- Counted from the oldest unprocessed record still kept: records past retention are
           -- gone, and the lane will never see them.
           case when m.parallelization_factor = 1 then coalesce(s.record_count - oldest.ordinal + 1, 0)
                else (select count(*) from (select 1 from records r
                       where r.shard_key = l.shard_key and r.seq > coalesce(l.checkpoint_seq, -1)
                         and r.arrived_at >= now() - make_interval(hours => st.retention_hours)
                         and mod(hashtext(r.partition_key)::bigint + 2147483648, m.parallelization_factor) = l.lane
                       limit ${LANE_COUNT_CAP}::int) c) end as behind,
           l.iterator_age_ms,
           (extract(epoch from oldest.arrived_at) * 1000)::float8 as oldest_ms,
           (extract(epoch from now()) * 1000)::float8 as now_ms,
           l.consecutive_failures,
           (extract(epoch from l.last_invoked_at) * 1000)::float8 as last_invoked_ms,
           case when l.state = 'WAITING_FOR_PARENT' then
             (select array_agg(p.shard_index order by p.shard_index) from shards p
               where p.stream_id = s.stream_id and p.shard_index in (s.parent_index, s.adjacent_parent_index)
                 and exists (select 1 from leases pl where pl.mapping_id = l.mapping_id and pl.shard_key = p.key and pl.state <> 'SHARD_END'))
           end as waiting_on,
           (select coalesce(sum(i.record_count), 0) from invocations i
             where i.mapping_id = l.mapping_id and i.shard_key = l.shard_key and i.lane = l.lane and i.outcome = 'OK'
               and i.replay_id is null and i.started_at > now() - interval '60 seconds') as drained,
           st.retention_hours, m.maximum_record_age_seconds as max_age_s
      from leases l
      join event_source_mappings m on m.id = l.mapping_id
      join shards s on s.key = l.shard_key
      join streams st on st.id = s.stream_id
      left join lateral (select r.seq from records r where r.shard_key = l.shard_key order by r.seq desc limit 1) latest on true
      left join lateral (
        select r.arrived_at, r.ordinal from records r
         where r.shard_key = l.shard_key and r.seq > coalesce(l.checkpoint_seq, -1)
           and r.arrived_at >= now() - make_interval(hours => st.retention_hours)
           and (m.parallelization_factor = 1 or mod(hashtext(r.partition_key)::bigint + 2147483648, m.parallelization_factor) = l.lane)
         order by r.seq limit 1) oldest on true
     where l.mapping_id = ${mappingId}
     order by s.shard_index, l.lane`);
  return rows.map((r) => ({
    shardId: shardIdOf(r.shard_index),
    lane: r.lane,
    state: r.state,
    owner: r.live ? r.owner : null,
    checkpointSequenceNumber: r.checkpoint_seq === null ? null : formatSequenceNumber(r.checkpoint_seq),
    latestSequenceNumber: r.latest === null ? null : formatSequenceNumber(r.latest),
    recordsBehind: Number(r.behind),
    iteratorAgeMs: r.iterator_age_ms === null ? null : Number(r.iterator_age_ms),
    oldestUnprocessedAgeMs: r.oldest_ms === null ? null : Math.max(0, Math.round(r.now_ms - r.oldest_ms)),
    consecutiveFailures: r.consecutive_failures,
    lastInvokedAt: r.last_invoked_ms === null ? null : new Date(r.last_invoked_ms),
    ...derived(r),
  }));
}

function derived(r: { behind: unknown; oldest_ms: number | null; now_ms: number; waiting_on: number[] | null; drained: unknown; retention_hours: number; max_age_s: number }) {
  const behind = Number(r.behind);
  const drainRatePerSecond = Number(r.drained) / 60;
  let timeToDataLossSeconds: number | null = null;
  if (r.oldest_ms !== null && behind > 0) {
    const deadlines = [r.oldest_ms + r.retention_hours * 3_600_000];
    if (r.max_age_s !== -1) deadlines.push(r.oldest_ms + r.max_age_s * 1000);
    const untilDeadline = (Math.min(...deadlines) - r.now_ms) / 1000;
    // At the current drain rate the whole backlog is done within drainSeconds, and no record in
    // it is older than the oldest: if that fits before the deadline, nothing is lost.
    const drainSeconds = drainRatePerSecond > 0 ? behind / drainRatePerSecond : Infinity;
    if (drainSeconds > untilDeadline) timeToDataLossSeconds = Math.max(0, Math.round(untilDeadline));
  }
  return {
    waitingOnShardIds: (r.waiting_on ?? []).map((i) => shardIdOf(Number(i))),
    drainRatePerSecond,
    estimatedDrainSeconds: behind > 0 && drainRatePerSecond > 0 ? Math.round(behind / drainRatePerSecond) : null,
    timeToDataLossSeconds,
  };
}
