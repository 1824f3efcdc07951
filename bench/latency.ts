/**
 * Scenario "latency": put → invoke latency of an event source mapping with no batching window.
 * A mapping (maximumBatchingWindowSeconds 0) on a 1-shard stream calls an in-process module
 * function that notes performance.now() when a record reaches it; single records of 1 KiB are
 * put one at a time with engine.putRecords, a few ms apart, each sample being (time the
 * function saw the record − time just before the put call).
 *
 * Baseline, in the same run and the same database: the raw put → LISTEN-woken read. One
 * connection runs `INSERT …; NOTIFY` (one round trip, one transaction), another LISTENs and on
 * wake-up reads the new row; the sample is (row read − time just before the INSERT). On PGlite
 * both sides use the engine's own PGlite instance and its in-process listen/NOTIFY.
 * Engine and raw samples alternate, so whatever else the machine is doing disturbs both alike.
 *
 * Runs on PGlite always, and on Postgres (a fresh database, dropped afterwards) when
 * DATABASE_URL is set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import type { Engine } from '../engine/engine.ts';
import { type Backend, backends, openTestEngine } from '../test/harness.ts';
import { sleep } from './common.ts';

const RECORD_BYTES = 1024;
const SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 500);
const WARMUP = 50;
const GAP_MS = 3;
const SAMPLE_TIMEOUT_MS = 10_000;

declare global {
  // Set by the bench, called by the stamping function written below.
  var __shardlineBenchSeen: ((partitionKey: string, at: number) => void) | undefined;
}

const STAMP_MODULE = `
export async function handler(event) {
  const at = performance.now();
  for (const r of event.Records) globalThis.__shardlineBenchSeen?.(r.kinesis.partitionKey, at);
  return null;
}`;

const payload = randomBytes(RECORD_BYTES).toString('base64');

/** Resolves with what `arm` is given, or fails after SAMPLE_TIMEOUT_MS. */
function expect(what: string, arm: (resolve: (at: number) => void) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not seen after ${SAMPLE_TIMEOUT_MS} ms`)), SAMPLE_TIMEOUT_MS);
    arm((at) => {
      clearTimeout(timer);
      resolve(at);
    });
  });
}

/** Nearest-rank percentile. */
function percentile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** A sample: ms from just before the put to the record seen, and ms the put call itself took. */
interface Sampler { sample(i: number): Promise<{ seen: number; put: number }>; close(): Promise<void> }

/** put → invoke through the engine. */
async function engineSampler(engine: Engine): Promise<Sampler> {
  const waiting = new Map<string, (at: number) => void>();
  globalThis.__shardlineBenchSeen = (key, at) => {
    waiting.get(key)?.(at);
    waiting.delete(key);
  };
  await engine.catalog.create({ name: 'latency', shardCount: 1 });
  await engine.createFunction({ name: 'stamp', module: 'stamp.mjs#handler' });
  const mapping = await engine.createMapping({
    streamName: 'latency', functionName: 'stamp', startingPosition: 'TRIM_HORIZON', maximumBatchingWindowSeconds: 0,
  });
  const deadline = Date.now() + SAMPLE_TIMEOUT_MS;
  while (!(await engine.lag(mapping.id)).some((row) => row.owner !== null)) {
    if (Date.now() > deadline) throw new Error('latency: the mapping\'s lease was never claimed');
    await sleep(20);
  }
  return {
    async sample(i) {
      const key = `sample-${i}`;
      const seen = expect(`engine sample ${i}`, (resolve) => waiting.set(key, resolve));
      const before = performance.now();
      const result = await engine.putRecords('latency', [{ partitionKey: key, data: payload }]);
      const put = performance.now() - before;
      if (result.failedRecordCount > 0) throw new Error(`putRecords failed: ${JSON.stringify(result.records)}`);
      return { seen: (await seen) - before, put };
    },
    async close() {
      globalThis.__shardlineBenchSeen = undefined;
    },
  };
}

const RAW_TABLE = 'create table raw_latency (id bigserial primary key, data bytea not null)';
/** base64 has no quotes, so the payload can sit in the statement: INSERT and NOTIFY go as one simple query. */
const RAW_PUT = `insert into raw_latency (data) values (decode('${payload}', 'base64')); notify raw_latency`;
const RAW_READ = `select id::text as id, encode(data, 'base64') as data from raw_latency where id > $1::bigint order by id`;

/** put → LISTEN-woken read on a real Postgres: a writer connection, a listening reader. */
async function rawPostgresSampler(url: string): Promise<Sampler> {
  const writer = postgres(url, { max: 1, onnotice: () => {} });
  const reader = postgres(url, { max: 1, onnotice: () => {} });
  await writer.unsafe(RAW_TABLE);
  let last = '0';
  let pending: ((at: number) => void) | undefined;
  const listening = await reader.listen('raw_latency', () => {
    void reader.unsafe(RAW_READ, [last]).then((rows) => {
      const at = performance.now();
      if (rows.length === 0) return;
      last = (rows[rows.length - 1] as unknown as { id: string }).id;
      pending?.(at);
      pending = undefined;
    });
  });
  await reader.unsafe('select 1'); // open the reader's query connection before the first sample
  return {
    async sample(i) {
      const seen = expect(`raw sample ${i}`, (resolve) => { pending = resolve; });
      const before = performance.now();
      await writer.unsafe(RAW_PUT);
      const put = performance.now() - before;
      return { seen: (await seen) - before, put };
    },
    async close() {
      await listening.unlisten();
      await Promise.all([writer.end(), reader.end()]);
    },
  };
}

/** The same on PGlite: one in-process instance, its own listen/NOTIFY. */
async function rawPgliteSampler(pg: PGlite): Promise<Sampler> {
  await pg.exec(RAW_TABLE);
  let last = '0';
  let pending: ((at: number) => void) | undefined;
  const unlisten = await pg.listen('raw_latency', () => {
    void pg.query<{ id: string }>(RAW_READ, [last]).then(({ rows }) => {
      const at = performance.now();
      if (rows.length === 0) return;
      last = rows[rows.length - 1]!.id;
      pending?.(at);
      pending = undefined;
    });
  });
  return {
    async sample(i) {
      const seen = expect(`raw sample ${i}`, (resolve) => { pending = resolve; });
      const before = performance.now();
      await pg.exec(RAW_PUT);
      const put = performance.now() - before;
      return { seen: (await seen) - before, put };
    },
    async close() {
      await unlisten();
    },
  };
}

interface Figures { engine: number[]; raw: number[]; enginePut: number[]; rawPut: number[] }

async function measure(backend: Backend): Promise<Figures> {
  const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-bench-functions-'));
  writeFileSync(join(functionsDir, 'stamp.mjs'), STAMP_MODULE);
  const t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 200, idlePollMs: 250 } });
  const samplers: Sampler[] = [];
  try {
    await t.engine.start();
    const engine = await engineSampler(t.engine);
    samplers.push(engine);
    const raw = t.databaseUrl
      ? await rawPostgresSampler(t.databaseUrl)
      : await rawPgliteSampler((t.engine.handle.db as unknown as { $client: PGlite }).$client);
    samplers.push(raw);
    const figures: Figures = { engine: [], raw: [], enginePut: [], rawPut: [] };
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const e = await engine.sample(i);
      await sleep(GAP_MS);
      const r = await raw.sample(i);
      await sleep(GAP_MS);
      if (i >= WARMUP) {
        figures.engine.push(e.seen);
        figures.raw.push(r.seen);
        figures.enginePut.push(e.put);
        figures.rawPut.push(r.put);
      }
    }
    return figures;
  } finally {
    for (const sampler of samplers) await sampler.close();
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  }
}

export async function latencyScenario(): Promise<void> {
  console.log(
    `latency: ${SAMPLES} single ${RECORD_BYTES} B puts (after ${WARMUP} warm-up), ~${GAP_MS} ms apart, mapping with window 0 to a ` +
      `module function, 1 shard; raw: INSERT; NOTIFY on one connection, LISTEN + read on another`,
  );
  const ms = (n: number) => `${n.toFixed(2).padStart(6)} ms`;
  for (const backend of backends) {
    const { engine, raw, enginePut, rawPut } = await measure(backend);
    const p99 = [percentile(engine, 0.99), percentile(raw, 0.99)] as const;
    console.log(
      `${'latency'.padEnd(8)} ${backend.name.padEnd(9)} engine p50 ${ms(percentile(engine, 0.5))} p99 ${ms(p99[0])}   ` +
        `raw LISTEN p50 ${ms(percentile(raw, 0.5))} p99 ${ms(p99[1])}   p99 ratio ${(p99[0] / p99[1]).toFixed(1)}`,
    );
    console.log(
      `${''.padEnd(18)} the put call alone: engine putRecords p50 ${ms(percentile(enginePut, 0.5))} p99 ${ms(percentile(enginePut, 0.99))}   ` +
        `raw INSERT; NOTIFY p50 ${ms(percentile(rawPut, 0.5))} p99 ${ms(percentile(rawPut, 0.99))}`,
    );
  }
  if (!process.env.DATABASE_URL) console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
}
