/**
 * Scenario "replay": throughput of a replay job to an in-process no-op module function. A
 * 4-shard stream is filled with RECORDS records of 1 KiB straight through SQL (bench/sqlFill.ts:
 * generate_series into the records table with the write path's seq, ordinal and arrival, and
 * the shards' record_count and last_arrival set; a 1M-record fill through putRecords would take
 * longer than the replay itself); then startReplay of the whole stream (from TRIM_HORIZON, no
 * `to`: the window ends at each shard's latest record), functionName, batchSize 1000, no rate.
 * The figure runs from the startReplay call (which plans the window: a count per shard) until
 * the job is SUCCEEDED.
 *
 * Baseline: a raw keyset scan of the same window through the same driver, the columns the lane
 * reader selects with encode(data, 'base64'), by shard_key and seq > last ORDER BY seq LIMIT
 * 1000 — with one reader going through the shards in turn, as a replay job does (one lane, one
 * batch in flight, ranges in shard order). The scan with 4 readers at once, one per shard (the
 * delivery scenario's baseline), is printed beside it with its ratio.
 *
 * Runs on PGlite always, and on Postgres (a fresh database, dropped afterwards) when
 * DATABASE_URL is set.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { Engine } from '../engine/engine.ts';
import { type Backend, backends, openTestEngine } from '../test/harness.ts';
import { countingNoopModule, fmt, type RawQuery, rawReader, sleep } from './common.ts';
import { sqlFill } from './sqlFill.ts';

const RECORD_BYTES = Number(process.env.BENCH_REPLAY_RECORD_BYTES ?? 1024);
const SHARDS = 4;
const BATCH_SIZE = 1000;
const RECORDS: Record<Backend['name'], number> = {
  postgres: Number(process.env.BENCH_REPLAY_RECORDS ?? 1_000_000),
  pglite: Number(process.env.BENCH_REPLAY_RECORDS_PGLITE ?? 50_000),
};
const WARMUP_RECORDS = 8000;
const TIMEOUT_MS = 600_000;

declare global {
  // Set by the no-op function written below: records it was handed, per stream name.
  var __shardlineBenchReplayed: Map<string, number> | undefined;
}

const NOOP_MODULE = countingNoopModule('__shardlineBenchReplayed');


/** Replays the whole stream to the no-op function; returns seconds from startReplay to SUCCEEDED. */
async function replayAll(engine: Engine, stream: string, count: number): Promise<{ seconds: number; planSeconds: number }> {
  const delivered = (globalThis.__shardlineBenchReplayed ??= new Map());
  delivered.set(stream, 0);
  const deadline = Date.now() + TIMEOUT_MS;
  const started = performance.now();
  const job = await engine.startReplay({ streamName: stream, from: { type: 'TRIM_HORIZON' }, functionName: 'noop', batchSize: BATCH_SIZE });
  const planSeconds = (performance.now() - started) / 1000;
  if (job.totalRecords !== count) throw new Error(`replay of ${stream}: planned ${job.totalRecords} records, expected ${count}`);
  // Cheap wait first (no database queries), then the job's state itself.
  while ((delivered.get(stream) ?? 0) < count) {
    if (Date.now() > deadline) throw new Error(`replay of ${stream}: ${delivered.get(stream)} of ${count} records after ${TIMEOUT_MS} ms`);
    await sleep(5);
  }
  for (;;) {
    const [row] = await engine.handle.query<{ state: string; delivered: number; error: string | null }>(
      sql`select state, delivered_records as delivered, error from replay_jobs where id = ${job.id}`);
    if (row?.state === 'SUCCEEDED') {
      if (Number(row.delivered) !== count) throw new Error(`replay of ${stream}: SUCCEEDED with ${row.delivered} of ${count} records delivered`);
      break;
    }
    if (row?.state !== 'RUNNING' && row?.state !== 'PENDING') throw new Error(`replay of ${stream} ended ${row?.state}: ${row?.error}`);
    if (Date.now() > deadline) throw new Error(`replay of ${stream}: not SUCCEEDED after ${TIMEOUT_MS} ms`);
    await sleep(5);
  }
  return { seconds: (performance.now() - started) / 1000, planSeconds };
}

type Query = RawQuery;

const SCAN = `
  select r.seq::text as seq, r.ordinal, (extract(epoch from r.arrived_at) * 1000)::float8 as arrived_ms,
         r.partition_key, encode(r.data, 'base64') as data, r.size_bytes,
         r.event_name, r.event_id, r.origin::text as origin
    from records r
   where r.shard_key = $1 and r.seq > $2::bigint
   order by r.seq
   limit ${BATCH_SIZE}`;

async function scanShard(query: Query, key: number): Promise<number> {
  let last = '-1';
  let n = 0;
  for (;;) {
    const rows = await query(SCAN, [key, last]);
    n += rows.length;
    if (rows.length < BATCH_SIZE) return n;
    last = rows[rows.length - 1]!.seq;
  }
}

/** Reads every record of the shards, `readers` shards at once (1: in turn); returns records/s. */
async function rawScan(query: Query, shardKeys: number[], readers: 1 | 'all', expected: number): Promise<number> {
  const started = performance.now();
  let total = 0;
  if (readers === 1) {
    for (const key of shardKeys) total += await scanShard(query, key);
  } else {
    total = (await Promise.all(shardKeys.map((key) => scanShard(query, key)))).reduce((a, b) => a + b, 0);
  }
  const seconds = (performance.now() - started) / 1000;
  if (total !== expected) throw new Error(`raw scan read ${total} records, expected ${expected}`);
  return total / seconds;
}

interface Figures { count: number; fillSeconds: number; planSeconds: number; engine: number; raw1: number; raw4: number }

async function measure(backend: Backend): Promise<Figures> {
  const count = RECORDS[backend.name];
  const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-bench-functions-'));
  writeFileSync(join(functionsDir, 'noop.mjs'), NOOP_MODULE);
  const t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 200, idlePollMs: 250 } });
  let reader: ReturnType<typeof rawReader> | undefined;
  try {
    const { engine } = t;
    await engine.start();
    await engine.createFunction({ name: 'noop', module: 'noop.mjs#handler' });
    reader = rawReader(t, SHARDS);
    const { query } = reader;

    // Warm-up: a small stream replayed the same way.
    for (const name of ['warmup', 'bench']) await engine.catalog.create({ name, shardCount: SHARDS });
    await sqlFill(engine, 'warmup', { count: WARMUP_RECORDS, recordBytes: RECORD_BYTES });
    await replayAll(engine, 'warmup', WARMUP_RECORDS);

    const fill = await sqlFill(engine, 'bench', { count, recordBytes: RECORD_BYTES });
    await rawScan(query, fill.shardKeys, 1, count); // warm-up pass: the same pages in cache for both
    const { seconds, planSeconds } = await replayAll(engine, 'bench', count);
    const raw1 = await rawScan(query, fill.shardKeys, 1, count);
    const raw4 = await rawScan(query, fill.shardKeys, 'all', count);
    return { count, fillSeconds: fill.seconds, planSeconds, engine: count / seconds, raw1, raw4 };
  } finally {
    await reader?.close();
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  }
}

export async function replayScenario(): Promise<void> {
  console.log(
    `replay: ${SHARDS} shards of ${RECORD_BYTES} B records (${fmt(RECORDS.pglite)} on PGlite, ${fmt(RECORDS.postgres)} on Postgres, ` +
      `filled through SQL), startReplay TRIM_HORIZON batchSize ${BATCH_SIZE} to a no-op module function, until SUCCEEDED; ` +
      `raw: keyset scan of the window, encode(data, 'base64'), 1 reader through the shards in turn (and ${SHARDS} readers at once)`,
  );
  for (const backend of backends) {
    const f = await measure(backend);
    console.log(
      `${'replay'.padEnd(8)} ${backend.name.padEnd(9)} engine ${fmt(f.engine).padStart(8)} records/s   ` +
        `raw scan 1 reader ${fmt(f.raw1).padStart(8)} records/s   ratio ${(f.engine / f.raw1).toFixed(2)}   ` +
        `(${SHARDS} readers: ${fmt(f.raw4)} records/s, ratio ${(f.engine / f.raw4).toFixed(2)})`,
    );
    console.log(
      `${''.padEnd(18)} ${fmt(f.count)} records; SQL fill ${f.fillSeconds.toFixed(1)} s; startReplay (plans the window) ${(f.planSeconds * 1000).toFixed(0)} ms of the replay's ${(f.count / f.engine).toFixed(1)} s`,
    );
  }
  if (!process.env.DATABASE_URL) console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
}
