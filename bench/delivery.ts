/**
 * Scenario "delivery": throughput of an event source mapping to an in-process no-op module
 * function. A 4-shard stream is filled with RECORDS records of 1 KiB, then a mapping (batchSize
 * 1000, TRIM_HORIZON) is created; the figure runs from mapping creation until every record has
 * been acknowledged (the lag of every lease shows 0 records behind).
 *
 * Baseline: a raw keyset scan of the same records through the same driver — the columns the
 * engine's lane reader selects, with base64 of the data made in SQL by encode(), by shard_key
 * and seq > last ORDER BY seq LIMIT 1000, 4 readers at once, one per shard. The same scan with
 * the lane reader's exact data expression (translate() of the encode() to drop its line breaks)
 * is printed beside it: that one function costs the scan several times over.
 *
 * Runs on PGlite always, and on Postgres (a fresh database, dropped afterwards) when
 * DATABASE_URL is set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { Engine } from '../engine/engine.ts';
import { type Backend, backends, openTestEngine } from '../test/harness.ts';
import { countingNoopModule, fmt, type RawQuery, rawReader, sleep } from './common.ts';

const RECORD_BYTES = 1024;
const SHARDS = 4;
const BATCH_SIZE = 1000;
const PER_PUT = 500;
const RECORDS: Record<Backend['name'], number> = {
  postgres: Number(process.env.BENCH_DELIVERY_RECORDS ?? 100_000),
  pglite: Number(process.env.BENCH_DELIVERY_RECORDS_PGLITE ?? 20_000),
};
const WARMUP_RECORDS = 4000;
const TIMEOUT_MS = 180_000;

declare global {
  // Set by the no-op function written below: records it was handed, per stream name.
  var __shardlineBenchDelivered: Map<string, number> | undefined;
}

const NOOP_MODULE = countingNoopModule('__shardlineBenchDelivered');

const payload = randomBytes(RECORD_BYTES).toString('base64');

/** Fills a stream with `count` records in putRecords calls of 500, 4 calls at a time. */
async function fill(engine: Engine, stream: string, count: number): Promise<void> {
  const calls = Math.ceil(count / PER_PUT);
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let c = next++; c < calls; c = next++) {
      const n = Math.min(PER_PUT, count - c * PER_PUT);
      const result = await engine.putRecords(stream, Array.from({ length: n }, (_, i) => ({ partitionKey: `key-${c}-${i}`, data: payload })));
      if (result.failedRecordCount > 0) throw new Error(`putRecords failed for ${result.failedRecordCount} records`);
    }
  }));
}

/** Creates a mapping on `stream` and waits until every record is acknowledged; returns seconds. */
async function deliverAll(engine: Engine, stream: string, count: number): Promise<{ seconds: number; mappingId: string }> {
  const delivered = (globalThis.__shardlineBenchDelivered ??= new Map());
  delivered.set(stream, 0);
  const deadline = Date.now() + TIMEOUT_MS;
  const started = performance.now();
  const mapping = await engine.createMapping({ streamName: stream, functionName: 'noop', startingPosition: 'TRIM_HORIZON', batchSize: BATCH_SIZE });
  // Cheap wait first (no database queries), then the acknowledgement itself from the lag rows.
  while ((delivered.get(stream) ?? 0) < count) {
    if (Date.now() > deadline) throw new Error(`delivery of ${stream}: ${delivered.get(stream)} of ${count} records after ${TIMEOUT_MS} ms`);
    await sleep(5);
  }
  for (;;) {
    const lag = await engine.lag(mapping.id);
    if (lag.length === SHARDS && lag.every((row) => row.recordsBehind === 0)) break;
    if (Date.now() > deadline) throw new Error(`delivery of ${stream}: not acknowledged after ${TIMEOUT_MS} ms: ${JSON.stringify(lag)}`);
    await sleep(5);
  }
  return { seconds: (performance.now() - started) / 1000, mappingId: mapping.id };
}

type Query = RawQuery;

/** Base64 of the data made in SQL: plain encode() (the floor), and the engine's exact expression. */
const DATA_FLOOR = `encode(r.data, 'base64')`;
const DATA_ENGINE = `translate(encode(r.data, 'base64'), E'\\n', '')`;

const scanOf = (dataExpr: string) => `
  select r.seq::text as seq, r.ordinal, (extract(epoch from r.arrived_at) * 1000)::float8 as arrived_ms,
         r.partition_key, ${dataExpr} as data, r.size_bytes,
         r.event_name, r.event_id, r.origin::text as origin
    from records r
   where r.shard_key = $1 and r.seq > $2::bigint
   order by r.seq
   limit ${BATCH_SIZE}`;

/** Reads every record of the shards, one reader per shard at once; returns records/s. */
async function rawScan(query: Query, dataExpr: string, shardKeys: number[], expected: number): Promise<number> {
  const scan = scanOf(dataExpr);
  const started = performance.now();
  const counts = await Promise.all(shardKeys.map(async (key) => {
    let last = '-1';
    let n = 0;
    for (;;) {
      const rows = await query(scan, [key, last]);
      n += rows.length;
      if (rows.length < BATCH_SIZE) return n;
      last = rows[rows.length - 1]!.seq;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const total = counts.reduce((a, b) => a + b, 0);
  if (total < expected) throw new Error(`raw scan read ${total} records, expected at least ${expected}`);
  return total / seconds;
}

async function measure(backend: Backend): Promise<{ engine: number; raw: number; rawEngineSql: number }> {
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

    // Warm-up: a small stream delivered the same way, then its mapping deleted.
    for (const name of ['warmup', 'bench']) await engine.catalog.create({ name, shardCount: SHARDS });
    await fill(engine, 'warmup', WARMUP_RECORDS);
    const warm = await deliverAll(engine, 'warmup', WARMUP_RECORDS);
    await engine.deleteMapping(warm.mappingId);

    await fill(engine, 'bench', count);
    const stream = await engine.catalog.get('bench');
    const shardKeys = (await engine.catalog.shards(stream, 'OPEN')).map((s) => s.key);
    await rawScan(query, DATA_FLOOR, shardKeys, count); // warm-up pass: the same pages in cache for both
    const { seconds } = await deliverAll(engine, 'bench', count);
    const raw = await rawScan(query, DATA_FLOOR, shardKeys, count);
    const rawEngineSql = await rawScan(query, DATA_ENGINE, shardKeys, count);
    return { engine: count / seconds, raw, rawEngineSql };
  } finally {
    await reader?.close();
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  }
}

export async function deliveryScenario(): Promise<void> {
  console.log(
    `delivery: ${SHARDS} shards of ${RECORD_BYTES} B records (${fmt(RECORDS.pglite)} on PGlite, ${fmt(RECORDS.postgres)} on Postgres), ` +
      `mapping batchSize ${BATCH_SIZE} TRIM_HORIZON to a no-op module function; raw: keyset scan, ${SHARDS} readers, encode(data, 'base64')`,
  );
  for (const backend of backends) {
    const { engine, raw, rawEngineSql } = await measure(backend);
    console.log(
      `${'delivery'.padEnd(8)} ${backend.name.padEnd(9)} engine ${fmt(engine).padStart(8)} records/s   ` +
        `raw scan ${fmt(raw).padStart(8)} records/s   ratio ${(engine / raw).toFixed(2)}   ` +
        `(raw scan with the engine's translate(): ${fmt(rawEngineSql)} records/s)`,
    );
  }
  if (!process.env.DATABASE_URL) console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
}
