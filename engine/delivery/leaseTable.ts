/**
 * The lease table, in the manner of the Kinesis Client Library's: one lease per
 * (mapping, shard, lane), with an owner, an expiry and an epoch.
 *
 * Lease states (the `state` column; lane.ts drives the transitions):
 *   WAITING_FOR_PARENT → IDLE        the parent (and adjacent parent) shards reached SHARD_END
 *   IDLE ↔ PROCESSING                a batch is handed to the function, and comes back
 *   PROCESSING → RETRYING → …        a failed batch waits to be retried
 *   IDLE → SHARD_END                 a closed shard read to its end (terminal)
 *
 * Ownership: a process claims unowned or expired leases up to its fair share (leases of
 * enabled mappings / live owners), renews them every heartbeat, and when it is still below its
 * share steals from the most loaded owner (as the KCL does), so leases spread evenly. Every claim bumps the epoch; a checkpoint write names the epoch it
 * was read with, so a process that lost its lease can never move the checkpoint (fencing in
 * the database, not in JS). Times are the database's now().
 */
import { type SQL, sql } from 'drizzle-orm';
import { type Database, type DatabaseHandle, retryingConflicts } from '../db.ts';

export type LeaseState = 'WAITING_FOR_PARENT' | 'IDLE' | 'PROCESSING' | 'RETRYING' | 'SHARD_END';

export interface Lease {
  mappingId: string;
  shardKey: number;
  lane: number;
  state: LeaseState;
  epoch: number;
  checkpointSeq: bigint | null;
  checkpointOrdinal: number;
  /** Tumbling windows: the open window's start and the state its last invocation returned. */
  windowStart: Date | null;
  windowState: unknown;
}

/** Which lease a write is for, and the epoch it was read with (the fence). */
export type LeaseIdentity = Pick<Lease, 'mappingId' | 'shardKey' | 'lane' | 'epoch'>;

/** What a lease write records. */
export interface LeaseProgress {
  state: LeaseState;
  checkpoint?: { seq: bigint; ordinal: number };
  consecutiveFailures?: number;
  iteratorAgeMs?: number;
  invoked?: boolean;
  /** Tumbling windows: the open window to keep, or null to drop it after its final invocation. */
  window?: { start: Date; state: unknown } | null;
  /**
   * False for writes that move no checkpoint (the PROCESSING state shown in lag): they skip
   * the WAL flush at commit, as losing one in a crash loses nothing.
   */
  durable?: boolean;
}

export const leaseKey = (l: { mappingId: string; shardKey: number; lane: number }) => `${l.mappingId}/${l.shardKey}/${l.lane}`;

interface LeaseRow {
  mapping_id: string; shard_key: unknown; lane: number; state: LeaseState; epoch: unknown;
  checkpoint_seq: string | null; checkpoint_ordinal: unknown; window_start_ms: number | null; window_state: string | null;
}

const toLease = (r: LeaseRow): Lease => ({
  mappingId: r.mapping_id,
  shardKey: Number(r.shard_key),
  lane: r.lane,
  state: r.state,
  epoch: Number(r.epoch),
  checkpointSeq: r.checkpoint_seq === null ? null : BigInt(r.checkpoint_seq),
  checkpointOrdinal: Number(r.checkpoint_ordinal),
  windowStart: r.window_start_ms === null ? null : new Date(r.window_start_ms),
  windowState: r.window_state === null ? null : JSON.parse(r.window_state),
});

const RETURNING = sql`returning l.mapping_id, l.shard_key, l.lane, l.state, l.epoch, l.checkpoint_seq::text as checkpoint_seq,
  l.checkpoint_ordinal, (extract(epoch from l.window_start) * 1000)::float8 as window_start_ms, l.window_state::text as window_state`;

export class LeaseTable {
  constructor(
    private readonly handle: DatabaseHandle,
    readonly owner: string,
    private readonly ttlMs: number,
  ) {}

  /** Creates the leases mappings have met (createLeases), for every mapping. */
  async sync(): Promise<void> {
    await createLeases(this.handle);
  }

  /** Claims unowned or expired leases of enabled mappings, up to this owner's fair share. */
  async claim(): Promise<Lease[]> {
    const rows = await this.handle.query<LeaseRow>(sql`
      with active as (
        select l.mapping_id, l.shard_key, l.lane, l.owner, l.expires_at from leases l
          join event_source_mappings m on m.id = l.mapping_id
         where m.enabled and l.state <> 'SHARD_END'),
      others as (select count(distinct owner) as n from active where owner is not null and owner <> ${this.owner} and expires_at > now()),
      mine as (select count(*) as n from active where owner = ${this.owner} and expires_at > now()),
      want as (select greatest(0, ceil((select count(*) from active)::float8 / ((select n from others) + 1)) - (select n from mine))::int as n),
      candidates as (
        select l.mapping_id, l.shard_key, l.lane from leases l
          join event_source_mappings m on m.id = l.mapping_id
         where m.enabled and l.state <> 'SHARD_END' and (l.owner is null or l.expires_at < now())
         order by l.shard_key, l.lane, l.mapping_id
         limit (select n from want)
         for update of l skip locked)
      update leases l
         set owner = ${this.owner}, expires_at = now() + make_interval(secs => ${this.ttlMs / 1000}::float8), epoch = l.epoch + 1
        from candidates c
       where l.mapping_id = c.mapping_id and l.shard_key = c.shard_key and l.lane = c.lane
      ${RETURNING}`);
    return rows.map(toLease);
  }

  /** Extends this owner's unexpired leases; returns those still held, by key. */
  async renew(): Promise<Map<string, Pick<Lease, 'mappingId' | 'shardKey' | 'lane' | 'epoch'>>> {
    const rows = await this.handle.query<{ mapping_id: string; shard_key: unknown; lane: number; epoch: unknown }>(sql`
      update leases l set expires_at = now() + make_interval(secs => ${this.ttlMs / 1000}::float8)
       where l.owner = ${this.owner} and l.expires_at > now()
      returning l.mapping_id, l.shard_key, l.lane, l.epoch`);
    return new Map(rows.map((r) => {
      const lease = { mappingId: r.mapping_id, shardKey: Number(r.shard_key), lane: r.lane, epoch: Number(r.epoch) };
      return [leaseKey(lease), lease];
    }));
  }

  /**
   * Takes leases from the most loaded owner while this owner is below its fair share and that
   * owner above it (KCL-style lease stealing: how a newly started process gets its share).
   * The victim learns it at its next renewal; the epoch bump fences its checkpoint writes.
   * Only a lease between batches (IDLE, or WAITING_FOR_PARENT) is taken: a lane writes
   * PROCESSING, fenced by its epoch, before it invokes, so a lease taken here cannot have a batch
   * in flight, and its old lane cannot start one — a shard is never served by two processes.
   */
  async steal(): Promise<Lease[]> {
    const rows = await this.handle.query<LeaseRow>(sql`
      with active as (
        select l.mapping_id, l.shard_key, l.lane, l.owner, l.expires_at from leases l
          join event_source_mappings m on m.id = l.mapping_id
         where m.enabled and l.state <> 'SHARD_END'),
      owners as (select owner, count(*) as n from active where owner is not null and expires_at > now() group by owner),
      target as (select ceil((select count(*) from active)::float8 / ((select count(*) from owners where owner <> ${this.owner}) + 1))::int as n),
      mine as (select coalesce((select n from owners where owner = ${this.owner}), 0) as n),
      victim as (select owner, n from owners where owner <> ${this.owner} and n > (select n from target) order by n desc, owner limit 1),
      taken as (
        select l.mapping_id, l.shard_key, l.lane from leases l
          join active a on a.mapping_id = l.mapping_id and a.shard_key = l.shard_key and a.lane = l.lane
         where l.owner = (select owner from victim) and l.expires_at > now() and l.state in ('IDLE', 'WAITING_FOR_PARENT')
         order by l.shard_key desc, l.lane desc, l.mapping_id
         limit greatest(0, least((select n from target) - (select n from mine), (select n from victim) - (select n from target)))
         for update of l skip locked)
      update leases l
         set owner = ${this.owner}, expires_at = now() + make_interval(secs => ${this.ttlMs / 1000}::float8), epoch = l.epoch + 1
        from taken c
       where l.mapping_id = c.mapping_id and l.shard_key = c.shard_key and l.lane = c.lane
      ${RETURNING}`);
    return rows.map(toLease);
  }

  async release(lease: Pick<Lease, 'mappingId' | 'shardKey' | 'lane' | 'epoch'>): Promise<void> {
    await this.handle.query(sql`
      update leases set owner = null, expires_at = null
       where mapping_id = ${lease.mappingId} and shard_key = ${lease.shardKey} and lane = ${lease.lane}
         and owner = ${this.owner} and epoch = ${lease.epoch}`);
  }

  async releaseAll(): Promise<void> {
    await this.handle.query(sql`update leases set owner = null, expires_at = null where owner = ${this.owner}`);
  }

  /**
   * Writes a lease's progress if, and only if, this owner still holds it at the same epoch, as
   * one statement (its own transaction). Returns false when the lease was lost (nothing is
   * written). A batch step's other rows go in the same statement: see stepCommit.ts.
   */
  async save(lease: LeaseIdentity, progress: LeaseProgress): Promise<boolean> {
    const rows = await retryingConflicts(() => this.handle.prepared(this.saveStatement(lease, progress)));
    return rows.length === 1;
  }

  /**
   * The fenced update of save(): `update leases … returning …`, one row when it applied. A write
   * that moves no checkpoint (durable: false) turns the WAL flush off for the commit of its own
   * transaction: set_config(…, true) is SET LOCAL, evaluated only for a row that is updated.
   */
  saveStatement(lease: LeaseIdentity, progress: LeaseProgress): SQL {
    const relaxed = progress.durable === false && !progress.checkpoint;
    const window = progress.window === undefined
      ? sql`window_start = window_start, window_state = window_state`
      : progress.window === null
        ? sql`window_start = null, window_state = null`
        : sql`window_start = ${progress.window.start.toISOString()}::timestamptz, window_state = ${JSON.stringify(progress.window.state ?? {})}::jsonb`;
    return sql`
      update leases set
        state = ${progress.state},
        checkpoint_seq = coalesce(${progress.checkpoint ? String(progress.checkpoint.seq) : null}::bigint, checkpoint_seq),
        checkpoint_ordinal = coalesce(${progress.checkpoint ? progress.checkpoint.ordinal : null}::bigint, checkpoint_ordinal),
        checkpoint_is_start = checkpoint_is_start and ${progress.checkpoint === undefined}::boolean,
        consecutive_failures = coalesce(${progress.consecutiveFailures ?? null}::int, consecutive_failures),
        iterator_age_ms = coalesce(${progress.iteratorAgeMs ?? null}::bigint, iterator_age_ms),
        last_invoked_at = case when ${progress.invoked ?? false}::boolean then now() else last_invoked_at end,
        ${window}
       where mapping_id = ${lease.mappingId} and shard_key = ${lease.shardKey} and lane = ${lease.lane}
         and owner = ${this.owner} and epoch = ${lease.epoch} and expires_at > now()
      returning ${relaxed ? sql`set_config('synchronous_commit', 'off', true)` : sql`1`}`;
  }
}

/**
 * Creates the leases a mapping meets (every mapping's, or one's): every lane of every listed
 * shard of its stream. The starting checkpoint is the last record that arrived before the
 * starting position's time (TRIM_HORIZON: none; LATEST: the mapping's creation; AT_TIMESTAMP:
 * the timestamp), so a shard created after the mapping is read from its first record; such a
 * checkpoint is marked as the start's (checkpoint_is_start) until the lane moves it. Existing
 * leases are left as they are.
 */
export async function createLeases(handle: DatabaseHandle, mappingId?: string, executor?: Database): Promise<void> {
  await handle.query(sql`
    insert into leases (mapping_id, shard_key, lane, state, checkpoint_seq, checkpoint_ordinal, checkpoint_is_start)
    select m.id, s.key, l.lane,
           case when s.parent_index is null then 'IDLE' else 'WAITING_FOR_PARENT' end,
           start.seq, coalesce(start.ordinal, 0), start.seq is not null
      from event_source_mappings m
      join streams st on st.id = m.stream_id and st.deleted_at is null
      join shards s on s.stream_id = m.stream_id
      cross join lateral generate_series(0, m.parallelization_factor - 1) as l(lane)
      left join lateral (
        select r.seq, r.ordinal from records r
         where r.shard_key = s.key
           and r.arrived_at < case m.starting_position when 'LATEST' then m.created_at
                                                      when 'AT_TIMESTAMP' then m.starting_position_timestamp
                                                      else '-infinity'::timestamptz end
         order by r.seq desc limit 1) as start on true
     where ${mappingId === undefined ? sql`true` : sql`m.id = ${mappingId}`}
       and not exists (select 1 from leases x where x.mapping_id = m.id and x.shard_key = s.key and x.lane = l.lane)
    on conflict (mapping_id, shard_key, lane) do nothing`, executor);
}
