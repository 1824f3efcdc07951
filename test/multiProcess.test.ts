/**
 * Several engine processes on one Postgres: leases spread evenly, and when a worker is killed
 * with SIGKILL mid-stream another takes its leases over after they expire; every record
 * reaches the function at least once, in order per key, and no checkpoint is ever ahead of
 * what the function acknowledged (the function's own log is the judge). Postgres only.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const postgresBackend = backends.find((b) => b.name === 'postgres');

function startWorker(databaseUrl: string, functionsDir: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/shardline.ts', 'worker'], {
    cwd: ROOT,
    env: {
      ...process.env, DATABASE_URL: databaseUrl, SHARDLINE_FUNCTIONS_DIR: functionsDir,
      SHARDLINE_LEASE_TTL_SECONDS: '2', SHARDLINE_HEARTBEAT_MS: '200', SHARDLINE_IDLE_POLL_MS: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.on('data', (d) => process.stderr.write(`[worker ${child.pid}] ${d}`));
  return child;
}

describe('engine processes sharing leases (postgres)', { skip: postgresBackend ? false : 'needs DATABASE_URL' }, () => {
  let t: TestEngine;
  const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-mp-'));
  const workers: ChildProcess[] = [];
  before(async () => {
    t = await openTestEngine(postgresBackend!, { functionsDir, delivery: false });
  });
  after(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  });

  it('spreads leases, survives a SIGKILL mid-stream, delivers everything in order per key', async () => {
    // The function's log: every delivered record, and per shard the highest acknowledged sequence.
    const delivered: { key: string; n: number; shard: string; seq: string }[] = [];
    const acked = new Map<string, string>();
    const server = createServer(async (req, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      const event = JSON.parse(text);
      for (const r of event.Records) {
        const [key, n] = Buffer.from(r.kinesis.data, 'base64').toString().split(':');
        delivered.push({ key: key!, n: Number(n), shard: r.eventID.split(':')[0], seq: r.kinesis.sequenceNumber });
      }
      const last = event.Records.at(-1);
      const shard = last.eventID.split(':')[0];
      if (!acked.has(shard) || acked.get(shard)! < last.kinesis.sequenceNumber) acked.set(shard, last.kinesis.sequenceNumber);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('null');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      await t.engine.catalog.create({ name: 'mp', shardCount: 4 });
      await t.engine.createFunction({ name: 'mp-fn', url });
      const mapping = await t.engine.createMapping({
        streamName: 'mp', functionName: 'mp-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10, parallelizationFactor: 2,
      });
      workers.push(startWorker(t.databaseUrl!, functionsDir), startWorker(t.databaseUrl!, functionsDir));

      const owners = async () => new Map((await t.engine.handle.query<{ owner: string; n: number }>(sql`
        select owner, count(*)::int as n from leases where owner is not null and expires_at > now() group by owner`)).map((r) => [r.owner, r.n]));
      const spread = await waitFor(async () => {
        const o = await owners();
        return o.size === 2 && [...o.values()].every((n) => n === 4) ? o : undefined;
      }, 'eight leases spread 4 + 4 over the two workers', 20_000);
      assert.deepEqual([...spread.values()], [4, 4]);

      const keys = Array.from({ length: 20 }, (_, i) => `key${i}`);
      let written = 0;
      const produce = async (calls: number) => {
        for (let c = 0; c < calls; c++) {
          const batch = keys.map((key) => ({ partitionKey: key, data: b64(`${key}:${written}`) }));
          written++;
          const result = await t.engine.putRecords('mp', batch);
          assert.equal(result.failedRecordCount, 0);
        }
      };
      await produce(40);
      await waitFor(() => delivered.length > 200, 'delivery under way', 20_000);
      workers[0]!.kill('SIGKILL');
      // Right after the kill: no checkpoint ahead of what the function acknowledged.
      const checkpointsAfterKill = await t.engine.lag(mapping.id);
      for (const row of checkpointsAfterKill) {
        if (row.checkpointSequenceNumber) assert.ok(row.checkpointSequenceNumber <= (acked.get(row.shardId) ?? ''), `${row.shardId} checkpoint not ahead`);
      }
      await produce(40);
      const total = written * keys.length;
      const unique = () => new Set(delivered.map((d) => `${d.key}:${d.n}`)).size;
      await waitFor(() => unique() >= total, `all ${total} records delivered (got ${unique()})`, 30_000);
      const survivor = await owners();
      assert.equal(survivor.size, 1, 'the surviving worker took every lease over');
      for (const key of keys) {
        const seen = new Set<number>();
        const firsts = delivered.filter((d) => d.key === key && !seen.has(d.n) && seen.add(d.n)).map((d) => d.n);
        assert.deepEqual(firsts, [...firsts].sort((a, b) => a - b), `${key} delivered in order`);
        assert.equal(firsts.length, written);
      }
      const lag = await waitFor(async () => {
        const rows = await t.engine.lag(mapping.id);
        return rows.every((r) => r.recordsBehind === 0) ? rows : undefined;
      }, 'every lane caught up', 20_000);
      for (const row of lag) {
        if (row.checkpointSequenceNumber) assert.ok(row.checkpointSequenceNumber <= acked.get(row.shardId)!, `${row.shardId} checkpoint not ahead`);
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('finishes a replay in another process when the one running it is killed', async () => {
    const seen: string[] = [];
    const server = createServer(async (req, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      for (const r of JSON.parse(text).Records) seen.push(Buffer.from(r.kinesis.data, 'base64').toString());
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('null');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await t.engine.catalog.create({ name: 'rp', shardCount: 2 });
      await t.engine.createFunction({ name: 'rp-fn', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
      const inside = Array.from({ length: 120 }, (_, i) => `in${i}`);
      await t.engine.putRecords('rp', inside.map((d, i) => ({ partitionKey: `k${i % 7}`, data: b64(d) })));
      const first = startWorker(t.databaseUrl!, functionsDir);
      workers.push(first);
      const job = await t.engine.startReplay({ streamName: 'rp', from: { type: 'TRIM_HORIZON' }, functionName: 'rp-fn', ratePerSecond: 60, batchSize: 5 });
      await t.engine.putRecords('rp', [{ partitionKey: 'k', data: b64('outside') }]);
      await waitFor(async () => (await t.engine.replays.get(job.id)).deliveredRecords >= 20, 'the replay under way in the first worker', 20_000);
      first.kill('SIGKILL');
      workers.push(startWorker(t.databaseUrl!, functionsDir));
      const done = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return j.state === 'SUCCEEDED' ? j : undefined;
      }, 'the second worker finished the replay', 30_000);
      assert.equal(done.totalRecords, 120);
      assert.deepEqual([...new Set(seen)].sort(), [...inside].sort(), 'every window record at least once, none outside the window');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('pushes failures and lag raised by a worker process to a subscriber of another process', async () => {
    writeFileSync(join(functionsDir, 'flaky.mjs'), `
      export async function handler(event) {
        if (event.Records.some((r) => Buffer.from(r.kinesis.data, 'base64').toString() === 'bad')) throw new Error('bad record');
        return null;
      }`);
    // This process serves the API with delivery disabled; a worker process delivers.
    await t.engine.notifier.start();
    const app = buildApp({ engine: t.engine });
    const url = await app.start(0, '127.0.0.1');
    const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    try {
      await t.engine.catalog.create({ name: 'xp', shardCount: 1 });
      await t.engine.createFunction({ name: 'flaky', module: 'flaky.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'xp', functionName: 'flaky', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 0 });
      workers.push(startWorker(t.databaseUrl!, functionsDir));
      const failures: any[] = [];
      const lags: any[] = [];
      client.subscribe({ query: 'subscription { failures(streamName: "xp") { failure { kind at } } }' }, { next: (v: any) => failures.push(v.data.failures), error: () => {}, complete: () => {} });
      client.subscribe({ query: `subscription { lag(mappingId: "${mapping.id}") { recordsBehind } }` }, { next: (v: any) => lags.push(v.data.lag), error: () => {}, complete: () => {} });
      await waitFor(async () => (await t.engine.lag(mapping.id)).some((l) => l.owner !== null), 'the worker holds the lease', 20_000);
      await waitFor(() => lags.length > 0, 'the current lag at once');
      await t.engine.putRecords('xp', [{ partitionKey: 'k', data: b64('ok') }, { partitionKey: 'k', data: b64('bad') }]);
      const discard = await waitFor(() => failures.find((f) => f.failure.kind === 'RETRIES_EXHAUSTED'), 'the worker\'s failure reached this process', 20_000);
      assert.ok(discard.failure.at);
      await waitFor(() => lags.at(-1)?.recordsBehind === 0, 'lag updates from the worker settle at zero', 20_000);
    } finally {
      await client.dispose();
      await app.stop();
    }
  });
});
