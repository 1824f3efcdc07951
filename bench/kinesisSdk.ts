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
 * Target (bench/README.md): shardline ≥ 3× kinesalite on both.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateStreamCommand, DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import postgres from 'postgres';
import { fmt } from './common.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const PER_CALL = 500;
const RECORD_BYTES = 1024;
const SHARDS = 4;
const CALLS = Number(process.env.BENCH_SDK_CALLS ?? 100);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);

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
  const { match, child } = await spawnAndWait(['--import', 'tsx', 'api/server.ts'], { PORT: '0', ...env }, /serving (http:\S+)/);
  return { endpoint: new URL(match[1]!).origin, stop: () => stopChild(child) };
}

async function startKinesalite(): Promise<Target> {
  const script = `const k = require('kinesalite')({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
    k.listen(0, '127.0.0.1', () => console.log('kinesalite on ' + k.address().port));`;
  const { match, child } = await spawnAndWait(['-e', script], {}, /kinesalite on (\d+)/);
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
  const stream = `bench-sdk-${randomBytes(3).toString('hex')}`;
  try {
    await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: SHARDS }));
    for (;;) {
      const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      if (s?.StreamStatus === 'ACTIVE') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const put = async (i: number) => {
      const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: calls[i % 4]! }));
      if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records failed`);
    };
    const run = async (n: number) => {
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < n; i = next++) await put(i);
      }));
      return (n * PER_CALL) / ((performance.now() - started) / 1000);
    };
    await run(4); // warm-up (its records are read back below too)
    const puts = await run(CALLS);

    const { Shards: shards } = await client.send(new ListShardsCommand({ StreamName: stream }));
    const total = (CALLS + 4) * PER_CALL;
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

function report(backend: string, operation: string, shardline: number, kinesalite: number): void {
  console.log(`kinesisSdk ${backend.padEnd(9)} ${operation.padEnd(10)} shardline ${fmt(shardline).padStart(8)} records/s   `
    + `kinesalite ${fmt(kinesalite).padStart(8)} records/s   ratio ${(shardline / kinesalite).toFixed(2)}`);
}

export async function kinesisSdkScenario(): Promise<void> {
  console.log(`kinesisSdk: @aws-sdk/client-kinesis, PutRecords ${CALLS} calls of ${PER_CALL} × ${RECORD_BYTES} B over ${SHARDS} shards `
    + `(${CONCURRENCY} concurrent), then GetRecords of every record (one reader per shard, Limit 10,000)`);
  const kinesalite = await startKinesalite();
  let baseline: Figures;
  try {
    baseline = await measure(kinesalite.endpoint);
  } finally {
    await kinesalite.stop();
  }
  const url = process.env.DATABASE_URL;
  if (url) {
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const name = `shardline_bench_sdk_${randomBytes(4).toString('hex')}`;
    await admin.unsafe(`create database ${name}`);
    try {
      const server = await startShardline({ DATABASE_URL: Object.assign(new URL(url), { pathname: `/${name}` }).toString() });
      const figures = await measure(server.endpoint).finally(() => server.stop());
      report('postgres', 'PutRecords', figures.puts, baseline.puts);
      report('postgres', 'GetRecords', figures.gets, baseline.gets);
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'shardline-bench-sdk-'));
    try {
      const server = await startShardline({ DATABASE_URL: '', SHARDLINE_DATA_DIR: dir });
      const figures = await measure(server.endpoint).finally(() => server.stop());
      report('pglite', 'PutRecords', figures.puts, baseline.puts);
      report('pglite', 'GetRecords', figures.gets, baseline.gets);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
