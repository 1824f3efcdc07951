/**
 * The one write path for records (putRecords, writeItems, importRecords all end here).
 *
 * Inside the caller's transaction it (1) locks the target shard rows in key order and moves
 * their last_arrival forward, (2) takes sequence numbers, (3) inserts the rows with one
 * INSERT … SELECT FROM unnest. Because the shard lock is held until commit, records of a shard
 * become visible in sequence order: a reader keyed on (shard, seq) never sees a later record
 * before an earlier one, so a cursor can never skip a record that commits late.
 *
 * Hand-written SQL through drizzle's `sql`: one statement per step with array parameters is
 * several times faster than a query-builder insert of 500 rows. The base64 payloads travel as
 * one comma-joined text parameter (base64 has no commas) rather than a text[] literal, which
 * the driver would otherwise escape character by character; the trailing comma and slice keep
 * empty payloads (string_to_array('') is an empty array).
 */
import { sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { type StreamCatalog, nextSequenceValues } from '../streams/streamCatalog.ts';
import { ensurePartitionsForDatabaseTime, isMissingPartition } from './partitions.ts';

export interface PendingRecord {
  shardKey: number;
  partitionKey: string;
  /** The record's bytes, base64 (decoded by Postgres). */
  dataBase64: string;
  sizeBytes: number;
  eventName?: string | null;
  eventId?: string | null;
  /** Imported records: what the original event said (eventID, sequence number, arrival …). */
  origin?: unknown;
}

/** A shard closed (or its stream was deleted) between routing and locking: route again. */
export class ShardMovedError extends Error {}

export async function appendRecords(handle: DatabaseHandle, tx: Database, rows: PendingRecord[]): Promise<bigint[]> {
  if (rows.length === 0) return [];
  const counts = new Map<number, number>();
  for (const r of rows) counts.set(r.shardKey, (counts.get(r.shardKey) ?? 0) + 1);
  const keys = [...counts.keys()].sort((a, b) => a - b);
  const locked = await handle.query<{ key: unknown; count: unknown }>(sql`
    with locked as (
      select key from shards where key = any(${sql.param(keys)}::bigint[]) order by key for update
    )
    update shards s
       set last_arrival = greatest(coalesce(s.last_arrival, clock_timestamp()), clock_timestamp()),
           record_count = s.record_count + c.n
      from locked
      join unnest(${sql.param(keys)}::bigint[], ${sql.param(keys.map((k) => counts.get(k)!))}::int[]) as c(k, n) on c.k = locked.key
     where s.key = locked.key and s.closed_at is null
       and exists (select 1 from streams st where st.id = s.stream_id and st.deleted_at is null)
    returning s.key, s.record_count as count`, tx);
  if (locked.length !== keys.length) throw new ShardMovedError('A target shard closed; routing again.');
  // Dense ordinals: each shard's rows take the numbers just below its new record count.
  const nextOrdinal = new Map(locked.map((r) => [Number(r.key), Number(r.count) - counts.get(Number(r.key))! + 1]));
  const ordinals = rows.map((r) => {
    const ordinal = nextOrdinal.get(r.shardKey)!;
    nextOrdinal.set(r.shardKey, ordinal + 1);
    return ordinal;
  });
  const seqs = await nextSequenceValues(handle, tx, rows.length);
  await tx.execute(sql`
    insert into records (shard_key, seq, ordinal, arrived_at, partition_key, data, size_bytes, event_name, event_id, origin)
    select u.k, u.s, u.n, sh.last_arrival, u.pk, decode(u.d, 'base64'), u.z, u.en, u.ei, u.o::jsonb
      from unnest(
        ${sql.param(rows.map((r) => r.shardKey))}::bigint[],
        ${sql.param(seqs.map(String))}::bigint[],
        ${sql.param(ordinals)}::bigint[],
        ${sql.param(rows.map((r) => r.partitionKey))}::text[],
        (string_to_array(${rows.map((r) => r.dataBase64).join(',')}::text || ',', ','))[1:${rows.length}::int],
        ${sql.param(rows.map((r) => r.sizeBytes))}::int[],
        ${sql.param(rows.map((r) => r.eventName ?? null))}::text[],
        ${sql.param(rows.map((r) => r.eventId ?? null))}::text[],
        ${sql.param(rows.map((r) => (r.origin === undefined || r.origin === null ? null : JSON.stringify(r.origin))))}::text[]
      ) as u(k, s, n, pk, d, z, en, ei, o)
      join shards sh on sh.key = u.k`);
  return seqs;
}

/**
 * Runs a write in a transaction with the stream's open shards, routing again (up to 5 times)
 * when a reshard closed a target shard in between, and creating the day's partition when the
 * housekeeper has not yet (a fresh database, or a clock that jumped).
 */
export async function withOpenShards<T>(
  handle: DatabaseHandle,
  catalog: StreamCatalog,
  streamName: string,
  write: (tx: Database, stream: StreamInfo, open: ShardInfo[]) => Promise<T>,
): Promise<{ stream: StreamInfo; result: T }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await handle.transaction(async (tx) => {
        const stream = await catalog.get(streamName, tx);
        const open = await catalog.shards(stream, 'OPEN', tx);
        return { stream, result: await write(tx, stream, open) };
      });
    } catch (raw) {
      if (attempt >= 5) throw raw;
      if (isMissingPartition(raw)) await ensurePartitionsForDatabaseTime(handle);
      else if (!(raw instanceof ShardMovedError)) throw raw;
    }
  }
}
