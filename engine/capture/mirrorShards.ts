/**
 * The local stream's shard layout follows the source's. Source shards are registered as they
 * are listed; a local shard is created, with the source's shard id (when it has the
 * `shardId-<12 digits>` form; otherwise the next free index), hash key range and parents, when
 * its parents have been read to their end; it is closed when the source shard has been read to
 * its end. So open local shards never overlap, and a child's records follow its parents'.
 *
 * Every write names the capture lease (source id, owner, epoch) and checks it under the source
 * row lock: a process that lost the source, or a source that was stopped, writes nothing.
 */
import { sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { shardIndexOf } from '../streams/model.ts';
import type { SourceDescription, SourceShard } from './sourceClient.ts';

export interface CaptureLease { sourceId: string; owner: string; epoch: number }

export type StartType = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP' | 'SKIP';

export interface CaptureShardRow {
  sourceShardId: string;
  parentShardId: string | null;
  adjacentParentShardId: string | null;
  shardKey: number | null;
  state: 'WAITING_FOR_PARENT' | 'READING' | 'SHARD_END';
  startType: StartType;
  lastSequenceNumber: string | null;
}

/** Thrown inside a transaction when the lease is no longer held: it rolls back. */
export class LeaseLost extends Error {}

/** The local stream of the source was deleted: the capture stops (there is nowhere to store). */
export class LocalStreamGone extends Error {
  constructor() {
    super('The local stream of this capture source has been deleted; the capture stopped.');
  }
}

/** The source stream is not the one this capture followed (deleted and created again, or another endpoint). */
export class SourceReplaced extends Error {}

/**
 * Records which source stream the capture follows at its first description, and checks it at
 * every later one: a stream created again under the same name has the same shard ids, and its
 * records would be taken for the old stream's (or never read, where the old shard had ended).
 */
export async function checkSourceIdentity(handle: DatabaseHandle, lease: CaptureLease, description: SourceDescription): Promise<void> {
  const identity = `${description.arn} created ${description.createdAt?.toISOString() ?? 'at an unknown time'}`;
  const [row] = await handle.query<{ source_identity: string }>(sql`
    update capture_sources set source_identity = coalesce(source_identity, ${identity})
     where id = ${lease.sourceId} and owner = ${lease.owner} and epoch = ${lease.epoch} and state <> 'STOPPED'
    returning source_identity`);
  if (!row) throw new LeaseLost(`Capture source ${lease.sourceId} is no longer held by ${lease.owner}.`);
  if (row.source_identity !== identity) {
    throw new SourceReplaced(`The source stream is not the one this capture followed (${row.source_identity}; now ${identity}): `
      + 'it was deleted and created again, or the endpoint serves another one. The capture stopped; capture it into another local stream.');
  }
}

/** Locks the source row if this owner still holds it at this epoch; throws LeaseLost otherwise. */
export async function checkLease(handle: DatabaseHandle, tx: Database, lease: CaptureLease, recordsAdded = 0): Promise<void> {
  const rows = await handle.query(sql`
    update capture_sources set records_captured = records_captured + ${recordsAdded}::bigint
     where id = ${lease.sourceId} and owner = ${lease.owner} and epoch = ${lease.epoch} and state <> 'STOPPED'
    returning 1`, tx);
  if (rows.length !== 1) throw new LeaseLost(`Capture source ${lease.sourceId} is no longer held by ${lease.owner}.`);
}

interface Row {
  source_shard_id: string; parent_shard_id: string | null; adjacent_parent_shard_id: string | null; shard_key: unknown;
  state: CaptureShardRow['state']; start_type: StartType; last_sequence_number: string | null;
}

const toRow = (r: Row): CaptureShardRow => ({
  sourceShardId: r.source_shard_id,
  parentShardId: r.parent_shard_id,
  adjacentParentShardId: r.adjacent_parent_shard_id,
  shardKey: r.shard_key === null ? null : Number(r.shard_key),
  state: r.state,
  startType: r.start_type,
  lastSequenceNumber: r.last_sequence_number,
});

export async function captureShardRows(handle: DatabaseHandle, sourceId: string, executor?: Database): Promise<CaptureShardRow[]> {
  const rows = await handle.query<Row>(sql`
    select source_shard_id, parent_shard_id, adjacent_parent_shard_id, shard_key, state, start_type, last_sequence_number
      from capture_shards where source_id = ${sourceId} order by source_shard_id`, executor);
  return rows.map(toRow);
}

/**
 * Gives the local stream the source's retention and view type and makes it ACTIVE (the first
 * time), and registers the source shards not met before. Where a new shard starts reading:
 * at the first listing, the source's starting position (LATEST skips shards already closed);
 * afterwards, its first record (it was created after the capture started).
 */
export async function registerShards(
  handle: DatabaseHandle, lease: CaptureLease, description: SourceDescription, listed: SourceShard[],
  startingPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP',
): Promise<CaptureShardRow[]> {
  return handle.transaction(async (tx) => {
    await checkLease(handle, tx, lease);
    const live = await handle.query(sql`
      select 1 from streams st join capture_sources c on c.stream_id = st.id
       where c.id = ${lease.sourceId} and st.deleted_at is null`, tx);
    if (live.length === 0) throw new LocalStreamGone();
    await handle.query(sql`
      update streams st
         set status = 'ACTIVE',
             retention_hours = case when st.kind = 'KINESIS' then least(8760, greatest(24, ${description.retentionHours}::int)) else 24 end,
             view_type = coalesce(${description.viewType}::text, st.view_type)
        from capture_sources c
       where c.id = ${lease.sourceId} and st.id = c.stream_id and st.status = 'CREATING'`, tx);
    const known = await captureShardRows(handle, lease.sourceId, tx);
    const knownIds = new Set(known.map((s) => s.sourceShardId));
    const first = known.length === 0;
    const fresh = listed.filter((s) => !knownIds.has(s.shardId));
    if (fresh.length > 0) {
      const startOf = (s: SourceShard): StartType => {
        if (!first) return 'TRIM_HORIZON';
        if (startingPosition === 'LATEST' && s.endingSequenceNumber !== null) return 'SKIP';
        return startingPosition;
      };
      await handle.query(sql`
        insert into capture_shards (source_id, source_shard_id, parent_shard_id, adjacent_parent_shard_id, hash_start, hash_end, state, start_type)
        select ${lease.sourceId}, u.id, u.parent, u.adjacent, u.hs::numeric, u.he::numeric, 'WAITING_FOR_PARENT', u.st
          from unnest(${sql.param(fresh.map((s) => s.shardId))}::text[], ${sql.param(fresh.map((s) => s.parentShardId))}::text[],
                      ${sql.param(fresh.map((s) => s.adjacentParentShardId))}::text[], ${sql.param(fresh.map((s) => s.startingHashKey))}::text[],
                      ${sql.param(fresh.map((s) => s.endingHashKey))}::text[], ${sql.param(fresh.map(startOf))}::text[])
               as u(id, parent, adjacent, hs, he, st)
        on conflict do nothing`, tx);
    }
    return captureShardRows(handle, lease.sourceId, tx);
  });
}

/** Shards whose parents (those the capture knows) have been read to their end, and that are not at their end themselves. */
export function readyShards(rows: CaptureShardRow[]): CaptureShardRow[] {
  const byId = new Map(rows.map((r) => [r.sourceShardId, r]));
  const done = (id: string | null) => id === null || !byId.has(id) || byId.get(id)!.state === 'SHARD_END';
  return rows.filter((r) => r.state !== 'SHARD_END' && done(r.parentShardId) && done(r.adjacentParentShardId));
}

/**
 * Creates the local shard of a source shard (once): the source's shard id when free, else the
 * stream's next index; the parents' local shards as parents; DYNAMODB shards keep their
 * parent's table partition, roots take the next one. Returns the local shard key.
 */
export async function ensureLocalShard(handle: DatabaseHandle, lease: CaptureLease, sourceShardId: string): Promise<number> {
  return handle.transaction(async (tx) => {
    await checkLease(handle, tx, lease);
    const [source] = await handle.query<{ stream_id: unknown }>(sql`select stream_id from capture_sources where id = ${lease.sourceId}`, tx);
    const streamId = Number(source!.stream_id);
    // Shard changes of one stream are serial: the stream row lock, as streamCatalog.ts and resharding.ts take it.
    const [stream] = await handle.query<{ next: number; kind: string }>(sql`
      select next_shard_index as next, kind from streams where id = ${streamId} and deleted_at is null for update`, tx);
    if (!stream) throw new LocalStreamGone();
    const [row] = await handle.query<{ shard_key: unknown; parent: string | null; adjacent: string | null; hs: string; he: string }>(sql`
      select shard_key, parent_shard_id as parent, adjacent_parent_shard_id as adjacent, hash_start::text as hs, hash_end::text as he
        from capture_shards where source_id = ${lease.sourceId} and source_shard_id = ${sourceShardId}`, tx);
    if (row!.shard_key !== null) return Number(row!.shard_key);
    const parents = await handle.query<{ source_shard_id: string; shard_index: number; partition: number | null }>(sql`
      select c.source_shard_id, s.shard_index, s.partition from capture_shards c join shards s on s.key = c.shard_key
       where c.source_id = ${lease.sourceId} and c.source_shard_id = any(${sql.param([row!.parent, row!.adjacent].filter((p) => p !== null))}::text[])`, tx);
    const parentOf = (id: string | null) => parents.find((p) => p.source_shard_id === id);
    const wanted = shardIndexOf(sourceShardId);
    const taken = wanted === undefined ? [] : await handle.query(sql`
      select 1 from shards where stream_id = ${streamId} and shard_index = ${wanted}`, tx);
    const index = wanted !== undefined && taken.length === 0 ? wanted : Number(stream.next);
    let partition: number | null = null;
    if (stream.kind === 'DYNAMODB') {
      partition = parentOf(row!.parent)?.partition ?? null;
      if (partition === null) {
        const [max] = await handle.query<{ p: number }>(sql`
          select coalesce(max(partition), -1)::int + 1 as p from shards where stream_id = ${streamId}`, tx);
        partition = max!.p;
      }
    }
    const [created] = await handle.query<{ key: unknown }>(sql`
      insert into shards (stream_id, shard_index, parent_index, adjacent_parent_index, hash_start, hash_end, partition, starting_seq)
      values (${streamId}, ${index}, ${parentOf(row!.parent)?.shard_index ?? null}, ${parentOf(row!.adjacent)?.shard_index ?? null},
              ${row!.hs}::numeric, ${row!.he}::numeric, ${partition}, nextval('record_seq'))
      returning key`, tx);
    await handle.query(sql`update streams set next_shard_index = greatest(next_shard_index, ${index + 1}) where id = ${streamId}`, tx);
    await handle.query(sql`
      update capture_shards set shard_key = ${Number(created!.key)}, state = 'READING', updated_at = now()
       where source_id = ${lease.sourceId} and source_shard_id = ${sourceShardId}`, tx);
    return Number(created!.key);
  });
}

/** Closes the local shard of a source shard read to its end, as resharding closes a parent. */
export async function closeLocalShard(handle: DatabaseHandle, lease: CaptureLease, sourceShardId: string, shardKey: number): Promise<void> {
  await handle.transaction(async (tx) => {
    await checkLease(handle, tx, lease);
    await handle.query(sql`
      update shards set ending_seq = nextval('record_seq'), closed_at = now() where key = ${shardKey} and closed_at is null`, tx);
    await handle.query(sql`
      update capture_shards set state = 'SHARD_END', millis_behind_latest = 0, updated_at = now()
       where source_id = ${lease.sourceId} and source_shard_id = ${sourceShardId}`, tx);
  });
}

/** Records the source's MillisBehindLatest of a shard when a page brought no records. */
export async function saveShardLag(handle: DatabaseHandle, lease: CaptureLease, sourceShardId: string, millisBehindLatest: number): Promise<void> {
  await handle.query(sql`
    update capture_shards c set millis_behind_latest = ${millisBehindLatest}::bigint, updated_at = now()
      from capture_sources s
     where c.source_id = ${lease.sourceId} and c.source_shard_id = ${sourceShardId} and s.id = c.source_id
       and s.owner = ${lease.owner} and s.epoch = ${lease.epoch}
       and c.millis_behind_latest is distinct from ${millisBehindLatest}::bigint`);
}
