/**
 * The one write path for records (putRecords, writeItems, importRecords all end here).
 *
 * One statement (a prepared one: a single round trip) that (1) locks the target shard rows in
 * key order and moves their last_arrival and record_count forward, (2) only then, and only if
 * every target shard is still open, takes sequence numbers, and (3) inserts the rows from
 * unnest with their dense per-shard ordinals. Because the shard lock is held until commit,
 * records of a shard become visible in sequence order: a reader keyed on (shard, seq) never
 * sees a later record before an earlier one, so a cursor can never skip a record that commits
 * late. When a target shard has closed nothing is inserted and ShardMovedError is thrown.
 *
 * The statement is atomic on its own (when a target shard has closed, no shard's counts move
 * and nothing is inserted), so putRecords runs it outside a transaction.
 *
 * From COPY_MIN_ROWS rows, outside a caller's transaction, on Postgres: steps (1) and (2) are a
 * statement of their own, and (3) a binary COPY of the rows (recordsCopy.ts), in one
 * transaction.
 *
 * The base64 payloads travel as one comma-joined text parameter (base64 has no commas) rather
 * than a text[] literal, which the driver would otherwise escape character by character; the
 * trailing comma and slice keep empty payloads (string_to_array('') is an empty array).
 */
import { sql } from 'drizzle-orm';
import { type Database, type DatabaseHandle, retryingConflicts } from '../db.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import { ensurePartitionsForDatabaseTime, isMissingPartition } from './partitions.ts';
import { COPY_COLUMNS, encodeRecordsCopy } from './recordsCopy.ts';

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

/** Appends the rows; returns their sequence numbers in row order. */
export async function appendRecords(handle: DatabaseHandle, executor: Database | undefined, rows: PendingRecord[]): Promise<bigint[]> {
  return (await appendRecordsPlaced(handle, executor, rows)).seqs;
}

/** Where a statement put a shard's rows: the ordinal before its first row, and their arrival. */
export interface ShardPlacement {
  shardKey: number;
  ordinalBefore: number;
  /** Epoch microseconds. */
  arrivedUs: number;
}

/** appendRecords, also saying where each target shard's rows went (for RecentRecords). */
export async function appendRecordsPlaced(
  handle: DatabaseHandle, executor: Database | undefined, rows: PendingRecord[],
  /** Told when nothing is left of the write but its commit (the COPY path only). */
  onCommit?: () => void,
): Promise<{ seqs: bigint[]; placed: ShardPlacement[] }> {
  if (rows.length === 0) return { seqs: [], placed: [] };
  // Each row's place among its shard's rows (1-based), given here rather than ranked in SQL,
  // where the window would sort the rows, payloads and all; the last rank is the shard's count.
  const counts = new Map<number, number>();
  const ranks = rows.map((r) => {
    const rank = (counts.get(r.shardKey) ?? 0) + 1;
    counts.set(r.shardKey, rank);
    return rank;
  });
  const keys = [...counts.keys()].sort((a, b) => a - b);
  if (!executor && handle.copyTransaction && rows.length >= COPY_MIN_ROWS) {
    return handle.copyTransaction<{ seqs: bigint[]; placed: ShardPlacement[] }, ReservedRow>(
      reserveStatement(keys, counts, rows.length), COPY_STATEMENT, ([reserved]) => {
        const result = reservedOf(reserved, rows.length);
        const placements = new Map(result.placed.map((p) => [p.shardKey, p]));
        return { data: encodeRecordsCopy(rows, result.seqs, ranks, placements), result };
      }, onCommit);
  }
  // Alone (no executor) the statement is its own transaction: a deadlock with a writer that
  // locked shards in another order aborted all of it, so it can run again.
  const statement = sql`
    with ${reserveCtes(keys, counts, rows.length)}, input as (
      select * from unnest(
          ${sql.param(rows.map((r) => r.shardKey))}::bigint[],
          ${sql.param(rows.map((r) => r.partitionKey))}::text[],
          (string_to_array(${rows.map((r) => r.dataBase64).join(',')}::text || ',', ','))[1:${rows.length}::int],
          ${sql.param(rows.map((r) => r.sizeBytes))}::int[],
          ${nullable(rows.map((r) => r.eventName ?? null))}::text[],
          ${nullable(rows.map((r) => r.eventId ?? null))}::text[],
          ${nullable(rows.map((r) => (r.origin === undefined || r.origin === null ? null : JSON.stringify(r.origin))))}::text[],
          ${sql.param(ranks)}::int[]
        ) with ordinality as u(k, pk, d, z, en, ei, o, rank, i)
    ), inserted as (
      insert into records (shard_key, seq, ordinal, arrived_at, partition_key, data, size_bytes, event_name, event_id, origin)
      select u.k, seqs.v[u.i], g.before + u.rank, g.last_arrival, u.pk, decode(u.d, 'base64'), u.z, u.en, u.ei, u.o::jsonb
        from input u join grown g on g.key = u.k cross join seqs
       where seqs.v is not null
      returning 1
    )
    ${RESERVED_COLUMNS}`;
  const [result] = executor
    ? await handle.prepared<ReservedRow>(statement, executor)
    : await retryingConflicts(() => handle.prepared<ReservedRow>(statement));
  return reservedOf(result, rows.length);
}

/**
 * From this many rows a write outside a transaction goes to Postgres as a binary COPY
 * (recordsCopy.ts): it costs Postgres less per row, but its transaction takes three round trips
 * and the commit where the one statement takes one, which a handful of rows would feel.
 */
export const COPY_MIN_ROWS = 64;
const COPY_STATEMENT = `copy records (${COPY_COLUMNS}) from stdin (format binary)`;

type ReservedRow = { seqs: string[] | string | null; placed: [number | string, number | string, string][] | string | null };

/**
 * Steps (1) and (2) of the header: the locked, grown shard rows and the sequence numbers, as the
 * CTEs `locked`, `grown` and `seqs` (v: the numbers in order, null when a target shard closed).
 */
function reserveCtes(keys: number[], counts: Map<number, number>, n: number) {
  // locked reads each row as it is once locked (a reshard that closed it meanwhile shows), and
  // grown moves no shard unless every target shard is open: nothing of a refused write stays.
  return sql`locked as (
      select key, closed_at from shards where key = any(${sql.param(keys)}::bigint[]) order by key for update
    ), grown as (
      update shards s
         set last_arrival = greatest(coalesce(s.last_arrival, clock_timestamp()), clock_timestamp()),
             record_count = s.record_count + c.n
        from locked
        join unnest(${sql.param(keys)}::bigint[], ${sql.param(keys.map((k) => counts.get(k)!))}::int[]) as c(k, n) on c.k = locked.key
       where s.key = locked.key and s.closed_at is null
         and (select count(*) from locked l where l.closed_at is null) = ${keys.length}::int
         and exists (select 1 from streams st where st.id = s.stream_id and st.deleted_at is null)
      returning s.key, s.record_count - c.n as before, s.last_arrival
    ), seqs as (
      -- The one-time filter waits for every shard row of grown (so for its lock) before the
      -- first nextval; sorted, the numbers go to the rows in order.
      select array_agg(v order by v) as v from (
        select nextval('record_seq') as v from generate_series(1, ${n}::int)
         where (select count(*) from grown) = ${keys.length}::int
      ) taken
    )`;
}

const RESERVED_COLUMNS = sql`select (select v::text[] from seqs) as seqs,
           (select json_agg(json_build_array(key, before, (extract(epoch from last_arrival) * 1000000)::int8::text)) from grown) as placed`;

/** The COPY path's first statement: the shards grown and the numbers taken, nothing inserted yet. */
function reserveStatement(keys: number[], counts: Map<number, number>, n: number) {
  return sql`with ${reserveCtes(keys, counts, n)} ${RESERVED_COLUMNS}`;
}

function reservedOf(result: ReservedRow | undefined, n: number): { seqs: bigint[]; placed: ShardPlacement[] } {
  const raw = result?.seqs ?? null;
  const seqs = typeof raw === 'string' ? parseTextArray(raw) : raw;
  if (!seqs || seqs.length !== n) throw new ShardMovedError('A target shard closed; routing again.');
  const placed = typeof result!.placed === 'string' ? JSON.parse(result!.placed) as [number, number, string][] : result!.placed ?? [];
  return {
    seqs: seqs.map((v) => BigInt(v)),
    placed: placed.map(([key, before, us]) => ({ shardKey: Number(key), ordinalBefore: Number(before), arrivedUs: Number(us) })),
  };
}

/** A column that is null throughout travels as one null: unnest pads a null array with nulls. */
function nullable(values: (string | null)[]) {
  return values.some((v) => v !== null) ? sql.param(values) : sql`null`;
}

/** PGlite may hand a text[] back as its literal: {1,2,3} (numbers need no quoting). */
function parseTextArray(literal: string): string[] {
  const inner = literal.slice(1, -1);
  return inner === '' ? [] : inner.split(',');
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
