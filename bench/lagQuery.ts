/**
 * Scenario "lagQuery": the dashboard's lag query — every mapping's per-shard `lag`, its
 * `recordsBehind` and `maxIteratorAgeMs` — as one GraphQL POST through buildApp (in-process
 * server, real HTTP), on a large store: RECORDS tiny records (16 B) over 64 shards of one
 * stream, read by 10 mappings whose checkpoints stand somewhere in the middle of every shard
 * (mapping j at (j + 1)/11 of each shard), so millions of records are behind each mapping.
 *
 * The store is built straight through SQL (bench/sqlFill.ts), on an engine that does not
 * deliver (delivery: false): the mappings are created through the engine, their leases
 * inserted directly with checkpoint_seq / checkpoint_ordinal of a record in the middle of the
 * shard (and an iterator age, a last invocation time). The build time is reported apart.
 *
 * Figure: p50 and p99 (nearest rank: with 50 samples or fewer, the slowest) of up to QUERIES
 * sequential queries after WARMUP ones, sampling cut short after BUDGET_MS once MIN_QUERIES are
 * in. Baseline, in the same run: what a naive implementation would do — count(*) the records
 * after every lease's checkpoint — timed once; and the ratio. On Postgres the query is asked
 * again through a second engine after ALTER DATABASE … SET jit = off (see bench/README.md).
 *
 * Postgres: 10,000,000 records. PGlite: a scaled-down store (200,000 records), same shape.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { buildApp } from '../api/app.ts';
import { openDatabase } from '../engine/db.ts';
import { DEFAULT_ENGINE_OPTIONS, Engine } from '../engine/engine.ts';
import { type Backend, backends, openTestEngine } from '../test/harness.ts';
import { sqlFill } from './sqlFill.ts';
import { fmt } from './common.ts';

const RECORD_BYTES = 16;
const SHARDS = 64;
const MAPPINGS = 10;
const RECORDS: Record<Backend['name'], number> = {
  postgres: Number(process.env.BENCH_LAG_RECORDS ?? 10_000_000),
  pglite: Number(process.env.BENCH_LAG_RECORDS_PGLITE ?? 200_000),
};
const QUERIES = Number(process.env.BENCH_LAG_QUERIES ?? 50);
const WARMUP = 5;
/** Sampling stops early (after at least MIN_QUERIES) once the queries have taken this long. */
const BUDGET_MS = Number(process.env.BENCH_LAG_BUDGET_MS ?? 60_000);
const MIN_QUERIES = 5;
const LAG_CALLS = 10;
const TARGET_MS = 50;

const SHARD_LAG = 'shardId lane state owner checkpointSequenceNumber latestSequenceNumber recordsBehind iteratorAgeMs consecutiveFailures lastInvokedAt';
const QUERY = JSON.stringify({ query: `{ eventSourceMappings { id recordsBehind maxIteratorAgeMs lag { ${SHARD_LAG} } } }` });

interface Answer {
  data?: { eventSourceMappings: { id: string; recordsBehind: number; maxIteratorAgeMs: number | null; lag: { recordsBehind: number }[] }[] };
  errors?: unknown;
}


/** Nearest-rank percentile. */
function percentile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

interface Figures {
  records: number; buildSeconds: number; fillSeconds: number; samples: number[]; naiveMs: number; behind: number;
  /** engine.lag() calls one dashboard query makes, and the time of one call (one mapping, 64 leases). */
  lagCallsPerQuery: number; lagCall: number[];
  /** Postgres: the same query with jit = off for the database (new connections). */
  jitOff?: { samples: number[]; lagCall: number[] };
}

async function ask(url: string): Promise<Answer> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: QUERY });
  return (await response.json()) as Answer;
}

/** Asks the query WARMUP times, then up to QUERIES times within BUDGET_MS; returns the timed samples. */
async function sample(url: string, expected: { behind: number }): Promise<{ samples: number[]; asked: number }> {
  const first = await ask(url);
  if (first.errors || !first.data) throw new Error(`lagQuery: ${JSON.stringify(first.errors)}`);
  const answered = first.data.eventSourceMappings;
  const total = answered.reduce((sum, m) => sum + m.recordsBehind, 0);
  if (answered.length !== MAPPINGS || answered.some((m) => m.lag.length !== SHARDS) || total !== expected.behind) {
    throw new Error(`lagQuery: ${answered.length} mappings, ${total} records behind; expected ${MAPPINGS} × ${SHARDS} leases, ${expected.behind} behind`);
  }
  let asked = 1;
  const warmStarted = performance.now();
  for (; asked < WARMUP && performance.now() - warmStarted < BUDGET_MS / 4; asked++) await ask(url);
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < QUERIES && (samples.length < MIN_QUERIES || performance.now() - started < BUDGET_MS)) {
    const before = performance.now();
    const answer = await ask(url);
    samples.push(performance.now() - before);
    asked++;
    if (answer.errors) throw new Error(`lagQuery: ${JSON.stringify(answer.errors)}`);
  }
  return { samples, asked };
}

/** Times LAG_CALLS calls of engine.lag() for one mapping. */
async function timeLagCalls(engine: Engine, mappingId: string): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < LAG_CALLS; i++) {
    const before = performance.now();
    await engine.lag(mappingId);
    out.push(performance.now() - before);
  }
  return out;
}

async function measure(backend: Backend): Promise<Figures> {
  const count = RECORDS[backend.name];
  const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-bench-functions-'));
  writeFileSync(join(functionsDir, 'noop.mjs'), 'export async function handler() { return null; }');
  const t = await openTestEngine(backend, { functionsDir, delivery: false });
  const app = buildApp({ engine: t.engine });
  try {
    const { engine } = t;
    const buildStarted = performance.now();
    await engine.catalog.create({ name: 'store', shardCount: SHARDS });
    const fill = await sqlFill(engine, 'store', { count, recordBytes: RECORD_BYTES, spanMs: 30 * 60_000, chunk: 500_000 });
    const mappingIds: string[] = [];
    for (let j = 0; j < MAPPINGS; j++) {
      // One mapping per (stream, function): a function each.
      await engine.createFunction({ name: `noop${j}`, module: 'noop.mjs#handler' });
      const mapping = await engine.createMapping({ streamName: 'store', functionName: `noop${j}`, startingPosition: 'TRIM_HORIZON', batchSize: 100 });
      mappingIds.push(mapping.id);
    }
    // Leases as delivery would have left them: a checkpoint on a record in the middle of each shard.
    const rows: { mapping: string; key: number; seq: string; ordinal: number; age: number }[] = [];
    let behind = 0;
    for (let j = 0; j < MAPPINGS; j++) {
      for (let i = 0; i < SHARDS; i++) {
        const inShard = i < count ? Math.floor((count - 1 - i) / SHARDS) + 1 : 0;
        const ordinal = Math.floor((inShard * (j + 1)) / (MAPPINGS + 1));
        if (ordinal < 1) continue;
        rows.push({ mapping: mappingIds[j]!, key: fill.shardKeys[i]!, seq: String(fill.firstSeq + BigInt((ordinal - 1) * SHARDS + i)), ordinal, age: 1000 * (j + 1) + i });
        behind += inShard - ordinal;
      }
    }
    await engine.handle.query(sql`
      insert into leases (mapping_id, shard_key, lane, state, checkpoint_seq, checkpoint_ordinal, iterator_age_ms, last_invoked_at)
      select u.m, u.k, 0, 'IDLE', u.s, u.o, u.a, now()
        from unnest(${sql.param(rows.map((r) => r.mapping))}::text[], ${sql.param(rows.map((r) => r.key))}::bigint[],
                    ${sql.param(rows.map((r) => r.seq))}::bigint[], ${sql.param(rows.map((r) => r.ordinal))}::bigint[],
                    ${sql.param(rows.map((r) => r.age))}::bigint[]) as u(m, k, s, o, a)`);
    await engine.handle.query(sql`analyze leases`);
    // The checkpoints name real records at those ordinals.
    const [check] = await engine.handle.query<{ n: unknown }>(sql`
      select count(*) as n from leases l join records r on r.shard_key = l.shard_key and r.seq = l.checkpoint_seq and r.ordinal = l.checkpoint_ordinal`);
    if (Number(check?.n) !== rows.length) throw new Error(`lagQuery: ${check?.n} of ${rows.length} checkpoints name their record`);
    const buildSeconds = (performance.now() - buildStarted) / 1000;

    const url = await app.start(0, '127.0.0.1');
    // Counting how many engine.lag() calls a dashboard query makes (the resolvers of lag, recordsBehind and maxIteratorAgeMs).
    let lagCalls = 0;
    const lag = engine.lag.bind(engine);
    engine.lag = (mappingId: string) => {
      lagCalls++;
      return lag(mappingId);
    };
    const { samples, asked } = await sample(url, { behind });
    engine.lag = lag;
    const lagCallsPerQuery = lagCalls / asked;
    const lagCall = await timeLagCalls(engine, mappingIds[0]!);

    // The naive figure: count the records after every checkpoint.
    const naiveStarted = performance.now();
    const [naive] = await engine.handle.query<{ n: unknown }>(sql`
      select sum(c.n) as n from leases l
        cross join lateral (select count(*) as n from records r where r.shard_key = l.shard_key and r.seq > l.checkpoint_seq) c`);
    const naiveMs = performance.now() - naiveStarted;
    if (Number(naive?.n) !== behind) throw new Error(`lagQuery: the naive count says ${naive?.n} records behind, expected ${behind}`);

    // Postgres: the same with jit = off for this database — what the profile points at (see bench/README.md).
    let jitOff: Figures['jitOff'];
    if (t.databaseUrl) {
      const name = new URL(t.databaseUrl).pathname.slice(1);
      await engine.handle.query(sql.raw(`alter database ${name} set jit = off`));
      const handle = await openDatabase({ databaseUrl: t.databaseUrl });
      const second = new Engine(handle, { ...DEFAULT_ENGINE_OPTIONS, functionsDir, delivery: false });
      const secondApp = buildApp({ engine: second });
      try {
        const secondUrl = await secondApp.start(0, '127.0.0.1');
        jitOff = { samples: (await sample(secondUrl, { behind })).samples, lagCall: await timeLagCalls(second, mappingIds[0]!) };
      } finally {
        await secondApp.stop();
        await handle.close();
      }
    }
    return { records: count, buildSeconds, fillSeconds: fill.seconds, samples, naiveMs, behind, lagCallsPerQuery, lagCall, jitOff };
  } finally {
    await app.stop();
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  }
}

export async function lagQueryScenario(): Promise<void> {
  console.log(
    `lagQuery: the dashboard's lag query (every mapping's lag, recordsBehind, maxIteratorAgeMs; one GraphQL POST, in-process server) ` +
      `on ${SHARDS} shards × ${MAPPINGS} mappings, ${RECORD_BYTES} B records (${fmt(RECORDS.pglite)} on PGlite, ${fmt(RECORDS.postgres)} on Postgres), ` +
      `checkpoints mid-shard; ${QUERIES} queries after ${WARMUP} warm-up; raw: count(*) of the records behind every checkpoint, once`,
  );
  const ms = (n: number) => `${n.toFixed(1).padStart(7)} ms`;
  for (const backend of backends) {
    const f = await measure(backend);
    const p50 = percentile(f.samples, 0.5);
    const p99 = percentile(f.samples, 0.99);
    console.log(
      `${'lagQuery'.padEnd(8)} ${backend.name.padEnd(9)} query p50 ${ms(p50)} p99 ${ms(p99)} (${f.samples.length} queries)   ` +
        `raw count(*) ${ms(f.naiveMs)}   ratio (p50 / raw) ${(p50 / f.naiveMs).toFixed(3)}   target p99 ≤ ${TARGET_MS} ms: ${p99 <= TARGET_MS ? 'met' : 'NOT met'}`,
    );
    console.log(
      `${''.padEnd(18)} ${fmt(f.records)} records, ${fmt(f.behind)} behind in all; store built in ${f.buildSeconds.toFixed(1)} s ` +
        `(SQL fill + vacuum analyze ${f.fillSeconds.toFixed(1)} s); one query makes ${f.lagCallsPerQuery.toFixed(0)} engine.lag() calls, ` +
        `one call (${SHARDS} leases) p50 ${ms(percentile(f.lagCall, 0.5)).trim()}`,
    );
    if (f.jitOff) {
      console.log(
        `${''.padEnd(18)} with jit = off for the database: query p50 ${ms(percentile(f.jitOff.samples, 0.5))} p99 ${ms(percentile(f.jitOff.samples, 0.99))} ` +
          `(${f.jitOff.samples.length} queries), one engine.lag() call p50 ${ms(percentile(f.jitOff.lagCall, 0.5)).trim()}`,
      );
    }
  }
  if (!process.env.DATABASE_URL) console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
}
