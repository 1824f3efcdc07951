/**
 * Fills an empty stream straight through SQL, for scenarios whose store is too large to put
 * through the API in a bench run (bench/replay.ts, bench/lagQuery.ts, bench/subscribers.ts).
 *
 * One `INSERT … SELECT FROM generate_series` per chunk, through the engine's own handle, with
 * what the write path (engine/records/appendRecords.ts) would have written: records dealt
 * round-robin over the stream's open shards, sequence numbers taken from `record_seq` (the
 * range is reserved with nextval + setval first, so every seq is the sequence's own and later
 * puts continue after it), dense per-shard ordinals 1, 2, 3 …, arrival times rising with seq
 * and spread over the last `spanMs`, and then each shard's record_count and last_arrival set
 * as the write path keeps them. Partition keys are `pk-<n>` (not routed by their hash: nothing
 * these scenarios read depends on it), or `fail` for every failEvery-th record.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Engine } from '../engine/engine.ts';

export interface FillOptions {
  count: number;
  recordBytes: number;
  /** Arrival times spread evenly over the last spanMs (Default: 10 minutes). */
  spanMs?: number;
  /** Every failEvery-th record (1-based) gets partition key "fail". */
  failEvery?: number;
  /** Rows per INSERT statement. (Default: 250,000) */
  chunk?: number;
}

export interface FillResult {
  /** Shard keys in shard-index order: record n (0-based) is in shardKeys[n % shardKeys.length]. */
  shardKeys: number[];
  /** seq of record n is firstSeq + n; its ordinal in its shard is floor(n / shards) + 1. */
  firstSeq: bigint;
  seconds: number;
}

export async function sqlFill(engine: Engine, streamName: string, options: FillOptions): Promise<FillResult> {
  const { handle } = engine;
  const started = performance.now();
  const stream = await engine.catalog.get(streamName);
  const shards = (await engine.catalog.shards(stream, 'OPEN')).sort((a, b) => a.shardIndex - b.shardIndex);
  const shardKeys = shards.map((s) => s.key);
  const [{ n: existing } = { n: 0 }] = await handle.query<{ n: unknown }>(
    sql`select coalesce(sum(record_count), 0) as n from shards where key = any(${sql.param(shardKeys)}::bigint[])`);
  if (Number(existing) !== 0) throw new Error(`sqlFill: stream ${streamName} is not empty`);
  const count = options.count;
  const spanUs = Math.round((options.spanMs ?? 600_000) * 1000);
  const failEvery = options.failEvery ?? 0;
  const chunk = options.chunk ?? 250_000;
  const hex = randomBytes(options.recordBytes).toString('hex');

  // Reserve count sequence values: [first, first + count).
  const [reserved] = await handle.query<{ first: string }>(sql`
    with f as (select nextval('record_seq') as first)
    select f.first::text as first from f, lateral (select setval('record_seq', f.first + ${count}::bigint - 1)) s`);
  const firstSeq = BigInt(reserved!.first);
  const [clock] = await handle.query<{ t0: string }>(sql`select (clock_timestamp() - make_interval(secs => ${spanUs / 1e6}::float8))::text as t0`);
  const t0 = clock!.t0;
  const stepUs = spanUs / count;

  for (let from = 0; from < count; from += chunk) {
    const to = Math.min(count, from + chunk) - 1;
    await handle.query(sql`
      insert into records (shard_key, seq, ordinal, arrived_at, partition_key, data, size_bytes)
      select (${sql.param(shardKeys)}::bigint[])[1 + (g % ${shardKeys.length}::int)],
             ${String(firstSeq)}::bigint + g,
             g / ${shardKeys.length}::int + 1,
             ${t0}::timestamptz + make_interval(secs => g * ${stepUs / 1e6}::float8),
             case when ${failEvery}::int > 0 and (g + 1) % greatest(${failEvery}::int, 1) = 0 then 'fail' else 'pk-' || g end,
             decode(${hex}::text, 'hex'),
             ${options.recordBytes}::int
        from generate_series(${from}::bigint, ${to}::bigint) as g`);
  }
  // What the write path keeps per shard: its record count (the newest ordinal) and last arrival.
  const S = shardKeys.length;
  const perShard = shardKeys.map((_, i) => (i < count ? Math.floor((count - 1 - i) / S) + 1 : 0));
  const lastIndex = perShard.map((n, i) => (n > 0 ? i + (n - 1) * S : null));
  await handle.query(sql`
    update shards s set record_count = c.n,
           last_arrival = case when c.g is null then s.last_arrival else ${t0}::timestamptz + make_interval(secs => c.g * ${stepUs / 1e6}::float8) end
      from unnest(${sql.param(shardKeys)}::bigint[], ${sql.param(perShard)}::bigint[], ${sql.param(lastIndex)}::bigint[]) as c(k, n, g)
     where s.key = c.k`);
  await handle.query(sql`vacuum analyze records`);
  return { shardKeys, firstSeq, seconds: (performance.now() - started) / 1000 };
}
