/**
 * Scenario "kinesisSdk": the Kinesis API through the real AWS SDK (@aws-sdk/client-kinesis),
 * against shardline (a server process on Postgres, or on PGlite without DATABASE_URL) and, as
 * the baseline of the same run, against kinesalite (an in-memory Kinesis implementation, in a
 * process of its own). Both get the same client settings: HTTP/1.1 keep-alive (kinesalite serves
 * no HTTP/2), CONCURRENCY callers.
 *
 *   PutRecords  SDK_CALLS calls of 500 records × 1 KiB over 4 shards, CONCURRENCY at once
 *   GetRecords  every record read back: one reader per shard from TRIM_HORIZON, Limit 10,000,
 *               until each shard is drained
 *
 * The machine is shared, so the two servers are measured in ROUNDS interleaved rounds (both
 * processes up throughout, the order alternating, a fresh stream each time) and the median of
 * the per-round ratios is the figure. A whole round, not counted, warms both servers and the
 * client first: with only the per-round warm-up calls, the first round found a fresh shardline
 * server spending 18–19 ms of CPU per 1,000 records put against 10–12 ms in later rounds. The
 * SDK client's own ceiling is measured last against a server that answers every call with a
 * canned response (a process of its own): no server can be measured faster than that.
 *
 * Target (bench/README.md): shardline ≥ 3× kinesalite on both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand, DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import postgres from 'postgres';
import { SERVER_NODE_FLAGS, fmt } from './common.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const PER_CALL = 500;
const RECORD_BYTES = 1024;
const SHARDS = 4;
const CALLS = Number(process.env.BENCH_SDK_CALLS ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const ROUNDS = Number(process.env.BENCH_SDK_ROUNDS ?? 5);
/** PutRecords calls to a stream of their own before measuring, on both servers: JITs warm. */
const WARMUP_CALLS = Number(process.env.BENCH_SDK_WARMUP_CALLS ?? 40);
/** Diagnostics: a directory; the shardline server writes a CPU profile of its whole run there (node --cpu-prof). */
const PROFILE_DIR = process.env.BENCH_SDK_PROFILE_DIR;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Target { endpoint: string; stop: () => Promise<void> }

function spawnAndWait(args: string[], env: Record<string, string>, pattern: RegExp): Promise<{ match: RegExpExecArray; child: ChildProcess }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const match = pattern.exec(out);
      if (match) resolve({ match, child });
    });
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${out}`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function startShardline(env: Record<string, string>): Promise<Target> {
  const { match, child } = await spawnAndWait([...SERVER_NODE_FLAGS, ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []), '--import', 'tsx', 'api/server.ts'], { PORT: '0', NODE_ENV: 'production', ...env }, /serving (http:\S+)/);
  return { endpoint: new URL(match[1]!).origin, stop: () => stopChild(child) };
}

async function startKinesalite(): Promise<Target> {
  const script = `const k = require('kinesalite')({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
    k.listen(0, '127.0.0.1', () => console.log('kinesalite on ' + k.address().port));`;
  const { match, child } = await spawnAndWait(['-e', script], {}, /kinesalite on (\d+)/);
  return { endpoint: `http://127.0.0.1:${match[1]}`, stop: () => stopChild(child) };
}

/** Answers PutRecords with a 500-entry success and GetRecords with 10,000 records of 1 KiB, without looking at the request. */
async function startCanned(): Promise<Target> {
  const script = `const http = require('node:http');
    const seq = (i) => String(10n ** 20n + BigInt(i));
    const data = require('node:crypto').randomBytes(${RECORD_BYTES}).toString('base64');
    const put = Buffer.from(JSON.stringify({ FailedRecordCount: 0, EncryptionType: 'NONE',
      Records: Array.from({ length: ${PER_CALL} }, (_, i) => ({ SequenceNumber: seq(i), ShardId: 'shardId-000000000000' })) }));
    const get = Buffer.from(JSON.stringify({ NextShardIterator: 'AAAA', MillisBehindLatest: 0,
      Records: Array.from({ length: 10000 }, (_, i) => ({ SequenceNumber: seq(i), ApproximateArrivalTimestamp: 1763888000.123, Data: data, PartitionKey: 'customer-' + i })) }));
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const body = String(req.headers['x-amz-target']).endsWith('.PutRecords') ? put : get;
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': body.length });
        res.end(body);
      });
    });
    server.listen(0, '127.0.0.1', () => console.log('canned on ' + server.address().port));`;
  const { match, child } = await spawnAndWait(['-e', script], {}, /canned on (\d+)/);
  return { endpoint: `http://127.0.0.1:${match[1]}`, stop: () => stopChild(child) };
}

function clientOf(endpoint: string): KinesisClient {
  return new KinesisClient({
    endpoint, region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' }, maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 }) }),
  });
}

const data = randomBytes(RECORD_BYTES);
const calls = Array.from({ length: 4 }, (_, v) =>
  Array.from({ length: PER_CALL }, (_, i) => ({ PartitionKey: `customer-${v * PER_CALL + i}`, Data: data })));

interface Figures { puts: number; gets: number }

async function measure(endpoint: string): Promise<Figures> {
  const client = clientOf(endpoint);
  const suffix = randomBytes(3).toString('hex');
  const stream = `bench-sdk-${suffix}`;
  try {
    const create = async (name: string) => {
      await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: SHARDS }));
      for (;;) {
        const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
        if (s?.StreamStatus === 'ACTIVE') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const run = async (name: string, n: number) => {
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < n; i = next++) {
          const out = await client.send(new PutRecordsCommand({ StreamName: name, Records: calls[i % 4]! }));
          if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records failed`);
        }
      }));
      return (n * PER_CALL) / ((performance.now() - started) / 1000);
    };
    // The warm-up goes to a stream of its own, so the read below is the measured puts' records.
    await create(`bench-sdk-warm-${suffix}`);
    await run(`bench-sdk-warm-${suffix}`, WARMUP_CALLS);
    await create(stream);
    const puts = await run(stream, CALLS);

    const { Shards: shards } = await client.send(new ListShardsCommand({ StreamName: stream }));
    const total = CALLS * PER_CALL;
    let read = 0;
    const started = performance.now();
    await Promise.all(shards!.map(async (shard) => {
      let iterator = (await client.send(new GetShardIteratorCommand({
        StreamName: stream, ShardId: shard.ShardId!, ShardIteratorType: 'TRIM_HORIZON',
      }))).ShardIterator;
      for (;;) {
        const out = await client.send(new GetRecordsCommand({ ShardIterator: iterator!, Limit: 10_000 }));
        read += out.Records?.length ?? 0;
        iterator = out.NextShardIterator;
        if ((out.Records?.length ?? 0) === 0 || !iterator) break;
      }
    }));
    const gets = read / ((performance.now() - started) / 1000);
    if (read !== total) throw new Error(`read ${read} records back, expected ${total}`);
    return { puts, gets };
  } finally {
    client.destroy();
  }
}

/** The SDK client alone: the same calls against canned responses (GetRecords: as many 10,000-record pages as the real read). */
async function measureCeiling(endpoint: string): Promise<Figures> {
  const client = clientOf(endpoint);
  try {
    const timed = async (n: number, perCall: number, call: () => Promise<unknown>) => {
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < n; i = next++) await call();
      }));
      return (n * perCall) / ((performance.now() - started) / 1000);
    };
    const put = () => client.send(new PutRecordsCommand({ StreamName: 'canned', Records: calls[0]! }));
    const get = () => client.send(new GetRecordsCommand({ ShardIterator: 'AAAA', Limit: 10_000 }));
    await timed(4, PER_CALL, put);
    await timed(2, 10_000, get);
    return { puts: await timed(CALLS, PER_CALL, put), gets: await timed(Math.ceil((CALLS * PER_CALL) / 10_000), 10_000, get) };
  } finally {
    client.destroy();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

function report(label: string, operation: string, shardline: number, kinesalite: number): void {
  console.log(`kinesisSdk ${label.padEnd(18)} ${operation.padEnd(10)} shardline ${fmt(shardline).padStart(8)} records/s   `
    + `kinesalite ${fmt(kinesalite).padStart(8)} records/s   ratio ${(shardline / kinesalite).toFixed(2)}`);
}

/** ROUNDS interleaved rounds against both servers, then the client's ceiling. */
async function compare(backend: string, shardline: Target): Promise<void> {
  const kinesalite = await startKinesalite();
  const rounds: { shardline: Figures; kinesalite: Figures }[] = [];
  try {
    console.log(`kinesisSdk warm-up round (not counted): load average ${load()}`);
    await measure(shardline.endpoint);
    await measure(kinesalite.endpoint);
    for (let r = 0; r < ROUNDS; r++) {
      console.log(`kinesisSdk round ${r + 1}: load average ${load()}`);
      const ours = r % 2 === 0 ? undefined : await measure(shardline.endpoint);
      const theirs = await measure(kinesalite.endpoint);
      const round = { shardline: ours ?? await measure(shardline.endpoint), kinesalite: theirs };
      rounds.push(round);
      report(`${backend} round ${r + 1}`, 'PutRecords', round.shardline.puts, round.kinesalite.puts);
      report(`${backend} round ${r + 1}`, 'GetRecords', round.shardline.gets, round.kinesalite.gets);
    }
  } finally {
    await kinesalite.stop();
  }
  const canned = await startCanned();
  const ceiling = await measureCeiling(canned.endpoint).finally(() => canned.stop());
  console.log(`kinesisSdk load average ${load()}; medians of ${ROUNDS} round(s), ratio = median of the rounds' ratios:`);
  for (const [operation, key] of [['PutRecords', 'puts'], ['GetRecords', 'gets']] as const) {
    console.log(`kinesisSdk ${backend.padEnd(18)} ${operation.padEnd(10)} shardline ${fmt(median(rounds.map((r) => r.shardline[key]))).padStart(8)} records/s   `
      + `kinesalite ${fmt(median(rounds.map((r) => r.kinesalite[key]))).padStart(8)} records/s   `
      + `ratio ${median(rounds.map((r) => r.shardline[key] / r.kinesalite[key])).toFixed(2)}   `
      + `(SDK client alone, canned responses: ${fmt(ceiling[key])} records/s)`);
  }
}

export async function kinesisSdkScenario(): Promise<void> {
  console.log(`kinesisSdk: @aws-sdk/client-kinesis, PutRecords ${CALLS} calls of ${PER_CALL} × ${RECORD_BYTES} B over ${SHARDS} shards `
    + `(${CONCURRENCY} concurrent), then GetRecords of every record (one reader per shard, Limit 10,000); ${ROUNDS} interleaved round(s)`);
  const url = process.env.DATABASE_URL;
  if (url) {
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const name = `shardline_bench_sdk_${randomBytes(4).toString('hex')}`;
    await admin.unsafe(`create database ${name}`);
    try {
      const server = await startShardline({ DATABASE_URL: Object.assign(new URL(url), { pathname: `/${name}` }).toString() });
      await compare('postgres', server).finally(() => server.stop());
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'shardline-bench-sdk-'));
    try {
      const server = await startShardline({ DATABASE_URL: '', SHARDLINE_DATA_DIR: dir });
      await compare('pglite', server).finally(() => server.stop());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
