/**
 * `npm run bench`: performance scenarios, each measured next to a raw baseline in the same run.
 * Ingest is here; delivery throughput (bench/delivery.ts), put → invoke latency
 * (bench/latency.ts), replay throughput (bench/replay.ts), the dashboard's lag query
 * (bench/lagQuery.ts), live subscribers (bench/subscribers.ts) and their fan-out alone
 * (bench/fanout.ts) run after it, in that order.
 * The Kinesis API through the AWS SDK against kinesalite (bench/kinesisSdk.ts) runs last.
 * BENCH_ONLY=name,name… (ingest, delivery, latency, replay, lagQuery, subscribers, fanout, kinesisSdk) runs only those.
 *
 * Scenario "ingest": putRecords of 1 KiB records in calls of 500 through the GraphQL API of a
 * real server process (api/server.ts), from CONCURRENCY clients at once; baseline: the same
 * rows inserted with plain multi-row INSERTs through the same driver with the same number of
 * connections, into a plain table with the records table's columns and indexes.
 * Runs on PGlite always, and on Postgres when DATABASE_URL is set.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { deliveryScenario } from './delivery.ts';
import { fanoutScenario } from './fanout.ts';
import { kinesisSdkScenario } from './kinesisSdk.ts';
import { lagQueryScenario } from './lagQuery.ts';
import { latencyScenario } from './latency.ts';
import { replayScenario } from './replay.ts';
import { subscribersScenario } from './subscribers.ts';
import { SERVER_NODE_FLAGS } from './common.ts';

const RECORD_BYTES = 1024;
const PER_CALL = 500;
const CALLS = Number(process.env.BENCH_CALLS ?? 120);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
/** Calls made before measuring, on both sides: the server's JIT and pools reach their steady state. */
const WARMUP_CALLS = Number(process.env.BENCH_WARMUP_CALLS ?? 40);
/** Interleaved rounds on Postgres; the median ratio is the figure. */
const ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 3);
const ROOT = new URL('..', import.meta.url).pathname;

const payload = randomBytes(RECORD_BYTES).toString('base64');
const partitionKeys = Array.from({ length: PER_CALL * 4 }, (_, i) => `customer-${i}`);
const callBodies = Array.from({ length: 4 }, (_, v) => JSON.stringify({
  query: 'mutation($r: [PutRecordInput!]!) { putRecords(streamName: "bench", records: $r) { failedRecordCount } }',
  variables: { r: partitionKeys.slice(v * PER_CALL, (v + 1) * PER_CALL).map((partitionKey) => ({ partitionKey, data: payload })) },
}));

async function runConcurrently(calls: number, concurrency: number, call: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < calls; i = next++) await call(i);
  }));
  return (calls * PER_CALL) / ((performance.now() - started) / 1000);
}

function startServer(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'api/server.ts'], {
    cwd: ROOT, env: { ...process.env, PORT: '0', NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /serving (http:\S+)/.exec(out);
      if (m) resolve({ url: m[1]!, child });
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** A client of the server's GraphQL API with the bench stream created: each call measures CALLS putRecords. */
async function apiIngest(url: string): Promise<() => Promise<number>> {
  const gql = async (body: string) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const json = (await response.json()) as { errors?: unknown };
    if (json.errors) throw new Error(JSON.stringify(json.errors));
  };
  await gql(JSON.stringify({ query: 'mutation { createStream(input: {name: "bench", shardCount: 4}) { name } }' }));
  await runConcurrently(WARMUP_CALLS, CONCURRENCY, (i) => gql(callBodies[i % 4]!));
  return () => runConcurrently(CALLS, CONCURRENCY, (i) => gql(callBodies[i % 4]!));
}

const RAW_TABLE = `create table raw_records (
  shard_key bigint not null, seq bigint not null, arrived_at timestamptz not null, partition_key text not null,
  data bytea not null, size_bytes int not null, primary key (shard_key, seq, arrived_at));
  create index raw_records_arrival on raw_records (shard_key, arrived_at);`;

function rawRows(call: number) {
  const data = Buffer.from(payload, 'base64');
  return partitionKeys.slice((call % 4) * PER_CALL, (call % 4 + 1) * PER_CALL).map((partition_key, i) => ({
    shard_key: i % 4, seq: call * PER_CALL + i, arrived_at: new Date(), partition_key, data, size_bytes: RECORD_BYTES,
  }));
}

/** Plain INSERTs with the table made and warmed: each call measures CALLS more statements. */
async function rawPostgres(url: string): Promise<{ measure: () => Promise<number>; end: () => Promise<void> }> {
  const sql = postgres(url, { max: CONCURRENCY, onnotice: () => {} });
  await sql.unsafe(RAW_TABLE);
  let seqBase = 0;
  const insert = (i: number) => sql`insert into raw_records ${sql(rawRows(i + seqBase))}`.then(() => {});
  await runConcurrently(WARMUP_CALLS, CONCURRENCY, insert);
  return {
    measure: () => {
      seqBase += 1000;
      return runConcurrently(CALLS, CONCURRENCY, insert);
    },
    end: () => sql.end(),
  };
}

async function rawPglite(dir: string): Promise<number> {
  const db = new PGlite(dir);
  await db.exec(RAW_TABLE);
  let seqBase = 0;
  const insert = async (i: number) => {
    const rows = rawRows(i + seqBase);
    const params: unknown[] = [];
    const values = rows.map((r, j) => {
      params.push(r.shard_key, r.seq, r.arrived_at, r.partition_key, r.data, r.size_bytes);
      const b = j * 6;
      return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6})`;
    });
    await db.query(`insert into raw_records values ${values.join(',')}`, params);
  };
  await runConcurrently(WARMUP_CALLS, CONCURRENCY, insert);
  seqBase = 1000;
  const rate = await runConcurrently(CALLS, CONCURRENCY, insert);
  await db.close();
  return rate;
}

function report(name: string, backend: string, figure: number, baseline: number): void {
  console.log(
    `${name.padEnd(8)} ${backend.padEnd(9)} api ${Math.round(figure).toLocaleString('en').padStart(8)} records/s   ` +
      `raw INSERT ${Math.round(baseline).toLocaleString('en').padStart(8)} records/s   ratio ${(figure / baseline).toFixed(2)}`,
  );
}

const SCENARIOS = ['ingest', 'delivery', 'latency', 'replay', 'lagQuery', 'subscribers', 'fanout', 'kinesisSdk'] as const;
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`BENCH_ONLY: unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
}
const selected = (name: (typeof SCENARIOS)[number]) => !only || only.includes(name);

async function ingestScenario(): Promise<void> {
  console.log(`ingest: ${CALLS} putRecords calls of ${PER_CALL} × ${RECORD_BYTES} B records, ${CONCURRENCY} concurrent clients/connections`);
  {
    const dir = mkdtempSync(join(tmpdir(), 'shardline-bench-'));
    try {
      const server = await startServer({ DATABASE_URL: '', SHARDLINE_DATA_DIR: join(dir, 'api') });
      const api = await apiIngest(server.url).then((measure) => measure()).finally(() => stopServer(server.child));
      const raw = await rawPglite(join(dir, 'raw'));
      report('ingest', 'pglite', api, raw);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const url = process.env.DATABASE_URL;
  if (url) {
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const names = [`shardline_bench_${randomBytes(4).toString('hex')}`, `shardline_bench_raw_${randomBytes(4).toString('hex')}`];
    for (const name of names) await admin.unsafe(`create database ${name}`);
    const urlOf = (name: string) => Object.assign(new URL(url), { pathname: `/${name}` }).toString();
    try {
      // Both sides stay up and are measured in interleaved rounds, alternating which goes first:
      // Postgres's state drifts within a run (shared buffers filling with dirty pages, a
      // checkpoint and the full-page writes after it), and it should weigh on both alike.
      const server = await startServer({ DATABASE_URL: urlOf(names[0]!) });
      try {
        const api = await apiIngest(server.url);
        const raw = await rawPostgres(urlOf(names[1]!));
        const ratios: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          let apiRate = 0;
          let rawRate = 0;
          if (round % 2 === 0) {
            apiRate = await api();
            rawRate = await raw.measure();
          } else {
            rawRate = await raw.measure();
            apiRate = await api();
          }
          ratios.push(apiRate / rawRate);
          report(`  round ${round + 1}`, 'postgres', apiRate, rawRate);
        }
        await raw.end();
        const median = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)]!;
        console.log(`ingest   postgres  median ratio of ${ROUNDS} rounds ${median.toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`);
      } finally {
        await stopServer(server.child);
      }
    } finally {
      for (const name of names) await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  } else {
    console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
  }
}

async function main(): Promise<void> {
  if (selected('ingest')) await ingestScenario();
  if (selected('delivery')) await deliveryScenario();
  if (selected('latency')) await latencyScenario();
  if (selected('replay')) await replayScenario();
  if (selected('lagQuery')) await lagQueryScenario();
  if (selected('subscribers')) await subscribersScenario();
  if (selected('fanout')) await fanoutScenario();
  if (selected('kinesisSdk')) await kinesisSdkScenario();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
