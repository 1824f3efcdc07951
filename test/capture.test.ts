/**
 * Capture sources against independent implementations, on each backend: kinesalite (Kinesis)
 * started in this process on a loopback port, and shardline's own DynamoDB Streams API served
 * by a second server on its own database (there is no DynamoDB Streams emulator on npm).
 * Records arrive in order per shard with their original sequence numbers; a stop and restart
 * (and a handover to another engine) resumes with no gap and no duplicate; a split on the
 * source is followed; source errors are a visible state, never a crash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateStreamCommand, KinesisClient, MergeShardsCommand, PutRecordsCommand,
  ResourceInUseException, SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { type App, buildApp } from '../api/app.ts';
import { CaptureRunner, type CaptureRunnerOptions, DEFAULT_CAPTURE_OPTIONS } from '../engine/capture/captureRunner.ts';
import type { CaptureSourceInfo } from '../engine/capture/captureSources.ts';
import type { SourceClient } from '../engine/capture/sourceClient.ts';
import type { Engine } from '../engine/engine.ts';
import { DEFAULT_ENGINE_OPTIONS, Engine as EngineClass } from '../engine/engine.ts';
import type { StoredRecord } from '../engine/records/readRecords.ts';
import { type TestEngine, backends, bounded, openTestEngine, rejectsWith, waitFor } from './harness.ts';
import { type Kinesalite, activeStream, recreateStream, startKinesalite } from './kinesaliteServer.ts';
import { startSourceProxy } from './sourceProxy.ts';

// Capture reads credentials from the SDK's default provider chain: the environment here.
process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const FAST = {
  delivery: { heartbeatMs: 100, leaseTtlMs: 2000, idlePollMs: 50 },
  capture: { idlePollMs: 25, discoveryMs: 200, minBackoffMs: 50, maxBackoffMs: 400 },
  onError: () => {},
};

let streamCounter = 0;
const uniqueName = (prefix: string) => `${prefix}-${process.pid}-${++streamCounter}`;

/** Every record of a local stream, shard by shard in sequence order. */
async function readAll(engine: Engine, stream: string): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await engine.reader.page(stream, { first: 1000, after });
    records.push(...page.records.map((e) => e.record));
    if (!page.hasNextPage) return records;
    after = page.endCursor ?? undefined;
  }
}

const originSeq = (r: StoredRecord) => (r.origin as { sequenceNumber: string }).sequenceNumber;

/** Puts records into kinesalite; returns what it answered per record: shard and sequence number. */
async function putSource(k: Kinesalite, stream: string, texts: string[]) {
  const out: { shardId: string; sequenceNumber: string; text: string; partitionKey: string }[] = [];
  for (let i = 0; i < texts.length; i += 500) {
    const chunk = texts.slice(i, i + 500);
    const result = await k.client.send(new PutRecordsCommand({
      StreamName: stream, Records: chunk.map((text) => ({ PartitionKey: `pk-${text}`, Data: Buffer.from(text) })),
    }));
    assert.equal(result.FailedRecordCount ?? 0, 0);
    result.Records!.forEach((r, j) => out.push({ shardId: r.ShardId!, sequenceNumber: r.SequenceNumber!, text: chunk[j]!, partitionKey: `pk-${chunk[j]}` }));
  }
  return out;
}

/** What kinesalite holds, per shard in order, as [text, sequence number]. */
const perShard = (put: { shardId: string; sequenceNumber: string; text: string }[]) => {
  const shards = new Map<string, [string, string][]>();
  for (const p of put) (shards.get(p.shardId) ?? shards.set(p.shardId, []).get(p.shardId)!).push([p.text, p.sequenceNumber]);
  for (const list of shards.values()) list.sort((a, b) => (BigInt(a[1]) < BigInt(b[1]) ? -1 : 1));
  return shards;
};

const capturedPerShard = (records: StoredRecord[]) => {
  const shards = new Map<string, [string, string][]>();
  for (const r of records) {
    (shards.get(r.shardId) ?? shards.set(r.shardId, []).get(r.shardId)!).push([Buffer.from(r.data, 'base64').toString(), originSeq(r)]);
  }
  return shards;
};

for (const backend of backends) {
  describe(`capture sources (${backend.name})`, () => {
    let t: TestEngine;
    let k: Kinesalite;

    before(async () => {
      k = await startKinesalite();
      t = await openTestEngine(backend, FAST);
      await t.engine.start();
    });
    after(async () => {
      await t.close();
      await k.close();
    });

    async function sourceStream(shards: number): Promise<string> {
      const name = uniqueName('src');
      await k.client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
      await activeStream(k.client, name);
      return name;
    }

    const source = (id: string) => t.engine.captures.get(id);

    /**
     * An engine that runs no capture itself, and capture runners on it with the options a test
     * needs (short timeouts, slow discovery, …); close() stops them and drops the engine.
     */
    async function ownRunners() {
      const local = await openTestEngine(backend, { delivery: false, onError: () => {} });
      const runners: CaptureRunner[] = [];
      return {
        engine: local.engine,
        start: async (options: Partial<CaptureRunnerOptions>) => {
          const runner = new CaptureRunner(local.engine.handle, local.engine.events, `own-${runners.length}`, {
            ...DEFAULT_CAPTURE_OPTIONS, ...FAST.capture, leaseTtlMs: 5000, heartbeatMs: 100, ...options,
          }, () => {});
          runners.push(runner);
          await runner.start();
          return runner;
        },
        close: async () => {
          await Promise.all(runners.map((r) => r.stop()));
          await local.close();
        },
      };
    }
    const captured = async (id: string, n: number, message: string) =>
      waitFor(async () => ((await source(id)).recordsCaptured >= n ? source(id) : undefined), message, 15_000);

    it('stores the records of every source shard in order, with the source layout and original sequence numbers', async () => {
      const name = await sourceStream(3);
      const put = await putSource(k, name, Array.from({ length: 300 }, (_, i) => `r${i}`));
      const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into: `${name}-local` });
      assert.equal(started.state, 'STARTING');
      await captured(started.id, 300, 'all 300 records captured');
      const records = await readAll(t.engine, `${name}-local`);
      assert.equal(records.length, 300);
      assert.deepEqual(capturedPerShard(records), perShard(put));
      const r = records[0]!;
      assert.equal(r.partitionKey, `pk-${Buffer.from(r.data, 'base64').toString()}`);
      const origin = r.origin as { sequenceNumber: string; approximateArrivalTimestamp: number; eventSourceARN: string; awsRegion: string };
      assert.match(origin.sequenceNumber, /^\d{50,}$/, 'kinesalite sequence numbers exceed 64 bits');
      assert.equal(typeof origin.approximateArrivalTimestamp, 'number');
      assert.equal(origin.eventSourceARN, `arn:aws:kinesis:us-east-1:000000000000:stream/${name}`);
      const local = await t.engine.catalog.get(`${name}-local`);
      assert.equal(local.status, 'ACTIVE');
      const shards = await t.engine.catalog.shards(local);
      assert.deepEqual(shards.map((s) => [s.shardId, s.hashKeyRange.startingHashKey, s.hashKeyRange.endingHashKey]), [
        ['shardId-000000000000', '0', '113427455640312821154458202477256070484'],
        ['shardId-000000000001', '113427455640312821154458202477256070485', '226854911280625642308916404954512140969'],
        ['shardId-000000000002', '226854911280625642308916404954512140970', '340282366920938463463374607431768211455'],
      ]);
      const lag = await t.engine.captures.lag(started.id);
      assert.equal(lag.length, 3);
      assert.ok(lag.every((l) => l.state === 'READING' && l.millisBehindLatest !== null));
      assert.equal(lag.reduce((sum, l) => sum + l.recordsCaptured, 0), 300);
      // Records put later are tailed.
      const more = await putSource(k, name, ['late-1', 'late-2']);
      await captured(started.id, 302, 'records put later captured');
      const all = capturedPerShard(await readAll(t.engine, `${name}-local`));
      for (const m of more) assert.ok(all.get(m.shardId)!.some(([text, seq]) => text === m.text && seq === m.sequenceNumber));
      assert.equal((await t.engine.stopCapture(started.id)).state, 'STOPPED');
    });

    it('reads a source of many shards without a listener-leak warning: every call in flight listens for the stop', async () => {
      const warnings: string[] = [];
      const onWarning = (warning: Error) => {
        if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning.message);
      };
      process.on('warning', onWarning);
      try {
        const name = await sourceStream(16);
        await putSource(k, name, Array.from({ length: 320 }, (_, i) => `m${i}`));
        const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into: `${name}-local` });
        // The 16 shard readers start together, their first calls in flight at once.
        await captured(started.id, 320, 'all 320 records captured');
        assert.equal((await t.engine.stopCapture(started.id)).state, 'STOPPED');
        await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
        assert.deepEqual(warnings, []);
      } finally {
        process.off('warning', onWarning);
      }
    });

    it('a stop and restart mid-way, and a handover to another engine, resume with no gap and no duplicate', async () => {
      const name = await sourceStream(2);
      const into = `${name}-local`;
      const put = await putSource(k, name, Array.from({ length: 1000 }, (_, i) => `a${i}`));
      const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
      await waitFor(async () => (await source(started.id)).recordsCaptured > 0, 'capture under way', 15_000);
      const stopped = await t.engine.stopCapture(started.id);
      assert.equal(stopped.state, 'STOPPED');
      const atStop = (await source(started.id)).recordsCaptured;
      put.push(...await putSource(k, name, Array.from({ length: 500 }, (_, i) => `b${i}`)));
      // Stopped: nothing more is stored.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await source(started.id)).recordsCaptured, atStop);
      assert.equal((await readAll(t.engine, into)).length, atStop);
      await rejectsWith(t.engine.startCapture({ endpoint: k.endpoint, stream: 'other', into }), 'CONFLICT', /captures KINESIS stream/);
      const resumed = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
      assert.equal(resumed.id, started.id);
      await rejectsWith(t.engine.startCapture({ endpoint: k.endpoint, stream: name, into }), 'CONFLICT', /already running/);
      await captured(started.id, 1500, 'all 1500 records captured after the restart');

      // Handover: a second engine on the same database takes the source when the first stops.
      const second = new EngineClass(t.engine.handle, { ...DEFAULT_ENGINE_OPTIONS, ...FAST });
      await second.start();
      try {
        assert.deepEqual(second.captureRunner!.running(), []);
        await t.engine.captureRunner!.stop();
        await waitFor(() => second.captureRunner!.running().includes(started.id), 'the second engine runs the source', 10_000);
        put.push(...await putSource(k, name, Array.from({ length: 200 }, (_, i) => `c${i}`)));
        await captured(started.id, 1700, 'records put after the handover captured');
      } finally {
        await second.stop();
        await t.engine.captureRunner!.start();
      }
      const records = await readAll(t.engine, into);
      assert.equal(records.length, 1700, 'no duplicate');
      assert.deepEqual(capturedPerShard(records), perShard(put), 'no gap, same order per shard');
      await t.engine.stopCapture(started.id);
    });

    it('follows a split and a merge on the source: children after their parents, lineage kept', async () => {
      const name = await sourceStream(2);
      const into = `${name}-local`;
      const put = await putSource(k, name, Array.from({ length: 100 }, (_, i) => `before${i}`));
      const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
      await captured(started.id, 100, 'records before the split captured');
      await k.client.send(new SplitShardCommand({
        StreamName: name, ShardToSplit: 'shardId-000000000000', NewStartingHashKey: '85070591730234615865843651857942052864',
      }));
      await activeStream(k.client, name);
      put.push(...await putSource(k, name, Array.from({ length: 100 }, (_, i) => `split${i}`)));
      await k.client.send(new MergeShardsCommand({
        StreamName: name, ShardToMerge: 'shardId-000000000003', AdjacentShardToMerge: 'shardId-000000000001',
      }));
      await activeStream(k.client, name);
      put.push(...await putSource(k, name, Array.from({ length: 100 }, (_, i) => `merge${i}`)));
      await captured(started.id, 300, 'records after the split and merge captured');
      const local = await t.engine.catalog.get(into);
      const shards = await t.engine.catalog.shards(local);
      assert.deepEqual(shards.map((s) => [s.shardId, s.parentShardId, s.adjacentParentShardId, s.closedAt !== null]), [
        ['shardId-000000000000', null, null, true],
        ['shardId-000000000001', null, null, true],
        ['shardId-000000000002', 'shardId-000000000000', null, false],
        ['shardId-000000000003', 'shardId-000000000000', null, true],
        ['shardId-000000000004', 'shardId-000000000003', 'shardId-000000000001', false],
      ]);
      const byId = new Map(shards.map((s) => [s.shardId, s]));
      for (const child of shards.filter((s) => s.parentShardId)) {
        for (const parent of [child.parentShardId, child.adjacentParentShardId].filter((p) => p !== null)) {
          assert.ok(byId.get(parent!)!.closedAt!.getTime() <= child.createdAt.getTime(), `${child.shardId} created after ${parent} closed`);
        }
      }
      assert.deepEqual(shards[4]!.hashKeyRange, { startingHashKey: '85070591730234615865843651857942052864', endingHashKey: '340282366920938463463374607431768211455' });
      const records = await readAll(t.engine, into);
      assert.equal(records.length, 300);
      assert.deepEqual(capturedPerShard(records), perShard(put));
      const lag = await t.engine.captures.lag(started.id);
      assert.deepEqual(lag.map((l) => [l.sourceShardId, l.shardId, l.state]), [
        ['shardId-000000000000', 'shardId-000000000000', 'SHARD_END'],
        ['shardId-000000000001', 'shardId-000000000001', 'SHARD_END'],
        ['shardId-000000000002', 'shardId-000000000002', 'READING'],
        ['shardId-000000000003', 'shardId-000000000003', 'SHARD_END'],
        ['shardId-000000000004', 'shardId-000000000004', 'READING'],
      ]);
      await rejectsWith(t.engine.splitShard(into, 'shardId-000000000002', '100'), 'CONFLICT', /capture source/);
      // Through the Kinesis API: a 400 ResourceInUseException, not a 500 the SDK would retry.
      const server = buildApp({ engine: t.engine, logError: () => {} });
      const client = new KinesisClient({
        endpoint: new URL(await server.start(0, '127.0.0.1')).origin, region: 'us-east-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1,
      });
      try {
        await assert.rejects(client.send(new SplitShardCommand({ StreamName: into, ShardToSplit: 'shardId-000000000002', NewStartingHashKey: '100' })),
          (error: unknown) => error instanceof ResourceInUseException && error.$metadata.httpStatusCode === 400 && /capture source/.test(error.message));
      } finally {
        client.destroy();
        await server.stop();
      }
      await t.engine.stopCapture(started.id);
    });

    it('LATEST captures only records put after the start, also across a restart before any arrived', async () => {
      const name = await sourceStream(1);
      await putSource(k, name, ['old-1', 'old-2']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into: `${name}-local`, from: 'LATEST' });
      await waitFor(async () => (await t.engine.captures.lag(started.id)).length === 1 && (await source(started.id)).state === 'RUNNING', 'running', 10_000);
      await t.engine.stopCapture(started.id);
      await putSource(k, name, ['new-1']);
      await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into: `${name}-local`, from: 'LATEST' });
      await putSource(k, name, ['new-2']);
      await captured(started.id, 2, 'the two new records captured');
      const records = await readAll(t.engine, `${name}-local`);
      assert.deepEqual(records.map((r) => Buffer.from(r.data, 'base64').toString()), ['new-1', 'new-2']);
      await t.engine.stopCapture(started.id);
    });

    it('an unreachable endpoint and a missing stream are a RETRYING state with lastError, and the source recovers', async () => {
      const missing = await t.engine.startCapture({ endpoint: k.endpoint, stream: 'no-such-stream', into: uniqueName('missing') });
      const failing = await waitFor(async () => {
        const s = await source(missing.id);
        return s.state === 'RETRYING' && s.lastError ? s : undefined;
      }, 'missing stream reported', 10_000);
      assert.match(failing.lastError!, /ResourceNotFoundException/);
      assert.ok(failing.lastErrorAt instanceof Date);
      // The stream appears: the source recovers by itself.
      await k.client.send(new CreateStreamCommand({ StreamName: 'no-such-stream', ShardCount: 1 }));
      await activeStream(k.client, 'no-such-stream');
      await putSource(k, 'no-such-stream', ['x']);
      await captured(missing.id, 1, 'captured once the stream exists');
      assert.equal((await source(missing.id)).state, 'RUNNING');
      await t.engine.stopCapture(missing.id);

      const unreachable = await t.engine.startCapture({ endpoint: 'http://127.0.0.1:9', stream: 'anything', into: uniqueName('down') });
      const down: CaptureSourceInfo = await waitFor(async () => {
        const s = await source(unreachable.id);
        return s.state === 'RETRYING' && s.lastError ? s : undefined;
      }, 'unreachable endpoint reported', 10_000);
      assert.match(down.lastError!, /ECONNREFUSED|connect/i);
      await t.engine.stopCapture(unreachable.id);

      // The local stream deleted: the capture stops, saying why.
      const name = await sourceStream(1);
      const doomed = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into: `${name}-local` });
      await waitFor(async () => (await source(doomed.id)).state === 'RUNNING', 'running', 10_000);
      await t.engine.deleteStream(`${name}-local`);
      const gone = await waitFor(async () => {
        const s = (await t.engine.captures.list()).find((c) => c.id === doomed.id);
        return s?.state === 'STOPPED' ? s : undefined;
      }, 'stopped after its local stream was deleted', 10_000);
      assert.match(gone.lastError!, /local stream of this capture source has been deleted/);
    });

    it('stops, saying why, when the source stream was deleted and created again under its name', async () => {
      const name = await sourceStream(1);
      const into = `${name}-recreated`;
      await putSource(k, name, ['first']);
      const started = await t.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
      await captured(started.id, 1, 'the first record captured');
      await recreateStream(k.client, name, 1);
      await putSource(k, name, ['second']);
      const stopped = await waitFor(async () => {
        const s = await source(started.id);
        return s.state === 'STOPPED' ? s : undefined;
      }, 'the capture stopped', 15_000);
      assert.match(stopped.lastError ?? '', /not the one this capture followed/);
      assert.deepEqual((await readAll(t.engine, into)).map((r) => Buffer.from(r.data, 'base64').toString()), ['first'],
        'the new stream\'s record is not taken for the old stream\'s');
    });

    it('a source call that gets no answer times out into RETRYING and is retried; a stop does not wait for it', async () => {
      const name = await sourceStream(1);
      await putSource(k, name, ['a']);
      const proxy = await startSourceProxy(k.endpoint);
      const own = await ownRunners();
      try {
        const started = await own.engine.startCapture({ endpoint: proxy.endpoint, stream: name, into: `${name}-local` });
        const state = () => own.engine.captures.get(started.id);
        const first = await own.start({ requestTimeoutMs: 300 });
        await waitFor(async () => (await state()).recordsCaptured === 1 && (await state()).state === 'RUNNING', 'the first record captured', 10_000);
        proxy.rule = (operation) => (operation === 'GetRecords' ? 'hold' : 'pass');
        await putSource(k, name, ['b']);
        const stuck = await waitFor(async () => {
          const s = await state();
          return s.state === 'RETRYING' && /TimeoutError/.test(s.lastError ?? '') ? s : undefined;
        }, 'the held GetRecords timed out into RETRYING', 10_000);
        assert.match(stuck.lastError!, /shardId-000000000000: TimeoutError: .*300 ms/);
        assert.equal(stuck.recordsCaptured, 1);
        proxy.rule = () => 'pass';
        await waitFor(async () => (await state()).recordsCaptured === 2 && (await state()).state === 'RUNNING', 'captured again once answers come', 10_000);
        await first.stop();

        // A runner whose calls wait for long stops at once all the same: the call in flight is abandoned.
        const second = await own.start({ requestTimeoutMs: 60_000 });
        await waitFor(async () => (await state()).owner === second.owner, 'the second runner holds the source', 10_000);
        proxy.rule = (operation) => (operation === 'GetRecords' ? 'hold' : 'pass');
        const heldBefore = proxy.held();
        await waitFor(() => proxy.held() > heldBefore, 'a GetRecords held', 10_000);
        await bounded(second.stop(), 'the runner stopped while a GetRecords was held', 2000);
        const after = await state();
        assert.equal(after.owner, null);
        assert.doesNotMatch(after.lastError ?? '', /abort/i, 'a stop is not a source error');
      } finally {
        await proxy.close();
        await own.close();
      }
    });

    it('a reader takes no iterator of a source stream created again: the capture stops, storing none of its records', async () => {
      const name = await sourceStream(2);
      const into = `${name}-local`;
      const put = async (texts: string[], hashKey: string) => k.client.send(new PutRecordsCommand({
        StreamName: name, Records: texts.map((text) => ({ PartitionKey: text, ExplicitHashKey: hashKey, Data: Buffer.from(text) })),
      }));
      const own = await ownRunners();
      try {
        // Every record in shard 0: shard 1 has nothing stored, so its reader starts at TRIM_HORIZON again.
        await put(['first-1', 'first-2'], '0');
        const started = await own.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
        const state = () => own.engine.captures.get(started.id);
        // Discovery lists the source once, at the start: only the readers can tell the stream is new.
        await own.start({ discoveryMs: 60_000 });
        await waitFor(async () => (await state()).recordsCaptured === 2, 'the original records captured', 10_000);
        await recreateStream(k.client, name, 2);
        await put(['second-0'], '0');
        await put(['second-1'], '340282366920938463463374607431768211455');
        const ended = await waitFor(async () => {
          const s = await state();
          return s.state === 'STOPPED' || s.recordsCaptured > 2 ? s : undefined;
        }, 'the capture stopped', 15_000);
        assert.equal(ended.state, 'STOPPED');
        assert.match(ended.lastError ?? '', /not the one this capture followed/);
        assert.deepEqual((await readAll(own.engine, into)).map((r) => Buffer.from(r.data, 'base64').toString()), ['first-1', 'first-2'],
          'nothing of the new stream stored');
        assert.equal(ended.recordsCaptured, 2);
      } finally {
        await own.close();
      }
    });

    it('stays RETRYING while a shard\'s reads keep failing, whatever discovery does, and turns RUNNING once they succeed', async () => {
      const name = await sourceStream(1);
      await putSource(k, name, ['a']);
      const proxy = await startSourceProxy(k.endpoint);
      const own = await ownRunners();
      try {
        proxy.rule = (operation) => (operation === 'GetRecords'
          ? { status: 400, body: { __type: 'ProvisionedThroughputExceededException', message: 'Rate exceeded for shard shardId-000000000000.' } }
          : 'pass');
        const started = await own.engine.startCapture({ endpoint: proxy.endpoint, stream: name, into: `${name}-local` });
        const state = () => own.engine.captures.get(started.id);
        await own.start({ discoveryMs: 30 });
        await waitFor(async () => {
          const s = await state();
          return s.state === 'RETRYING' && /ProvisionedThroughputExceededException/.test(s.lastError ?? '');
        }, 'the throttled reads reported', 10_000);
        // Discovery (DescribeStreamSummary, ListShards) succeeds all along: it must not hide the failing shard.
        const passes = proxy.seen('ListShards');
        const seen = new Set<string>();
        await waitFor(async () => {
          const s = await state();
          seen.add(`${s.state}: ${s.lastError}`);
          return proxy.seen('ListShards') >= passes + 5;
        }, 'five more discovery passes', 10_000);
        assert.deepEqual([...seen].map((s) => s.replace(/:.*/s, '')), ['RETRYING'], [...seen].join('\n'));
        assert.ok([...seen].every((s) => /shardId-000000000000: ProvisionedThroughputExceededException/.test(s)));
        proxy.rule = () => 'pass';
        await waitFor(async () => (await state()).state === 'RUNNING' && (await state()).recordsCaptured === 1, 'RUNNING once reads succeed', 10_000);
      } finally {
        await proxy.close();
        await own.close();
      }
    });

    it('a source beyond the runner\'s maximum waits in STARTING, saying so, and runs once a slot is free', async () => {
      const a = await sourceStream(1);
      const b = await sourceStream(1);
      await putSource(k, b, ['x']);
      const own = await ownRunners();
      try {
        const first = await own.engine.startCapture({ endpoint: k.endpoint, stream: a, into: `${a}-local` });
        const second = await own.engine.startCapture({ endpoint: k.endpoint, stream: b, into: `${b}-local` });
        const state = (id: string) => own.engine.captures.get(id);
        await own.start({ maxSources: 1 });
        const waiting = await waitFor(async () => {
          const s = await state(second.id);
          return s.lastError ? s : undefined;
        }, 'the second source says it waits', 10_000);
        assert.equal(waiting.state, 'STARTING');
        assert.equal(waiting.owner, null);
        assert.match(waiting.lastError!, /^waiting for a free slot: this process runs at most 1 capture source \(SHARDLINE_MAX_CAPTURE_SOURCES\)/);
        await waitFor(async () => (await state(first.id)).state === 'RUNNING', 'the first source runs', 10_000);
        await own.engine.stopCapture(first.id);
        const running = await waitFor(async () => {
          const s = await state(second.id);
          return s.state === 'RUNNING' && s.recordsCaptured === 1 ? s : undefined;
        }, 'the second source runs once the first stopped', 10_000);
        assert.equal(running.lastError, null, 'the waiting note is gone');
      } finally {
        await own.close();
      }
    });

    it('stops at once when a page finds its local stream deleted', async () => {
      const name = await sourceStream(1);
      const into = `${name}-local`;
      await putSource(k, name, ['kept']);
      const own = await ownRunners();
      try {
        const started = await own.engine.startCapture({ endpoint: k.endpoint, stream: name, into });
        const state = () => own.engine.captures.get(started.id);
        // Discovery lists the source once, at the start: the reader meets the deletion first.
        await own.start({ discoveryMs: 60_000 });
        await waitFor(async () => (await state()).recordsCaptured === 1 && (await state()).state === 'RUNNING', 'the first record captured', 10_000);
        await own.engine.deleteStream(into);
        await putSource(k, name, ['homeless']);
        const ended = await waitFor(async () => {
          const s = await state();
          return s.state !== 'RUNNING' ? s : undefined;
        }, 'the capture noticed', 10_000);
        assert.equal(ended.state, 'STOPPED', ended.lastError ?? '');
        assert.match(ended.lastError ?? '', /local stream of this capture source has been deleted/);
      } finally {
        await own.close();
      }
    });

    it('keeps a source shard within its 5 GetRecords calls a second while records keep coming', async () => {
      // A source that always has one more record: only the pacing between pages bounds the calls.
      const calls: number[] = [];
      let seq = 49_000_000_000_000_000_000n;
      const fake = (): SourceClient => ({
        describe: async () => ({ arn: 'arn:aws:kinesis:us-east-1:000000000000:stream/always', retentionHours: 24, viewType: null, createdAt: null }),
        listShards: async () => [{
          shardId: 'shardId-000000000000', parentShardId: null, adjacentParentShardId: null,
          startingHashKey: '0', endingHashKey: '340282366920938463463374607431768211455', endingSequenceNumber: null,
        }],
        iterator: async () => 'iterator',
        getRecords: async () => {
          calls.push(Date.now());
          seq += 1n;
          return { records: [{ kind: 'KINESIS', sequenceNumber: String(seq), partitionKey: 'k', data: new Uint8Array([1]), arrival: new Date() }], next: 'iterator', millisBehindLatest: 0 };
        },
        destroy: () => {},
      });
      const local = await openTestEngine(backend, { delivery: false, onError: () => {} });
      const runner = new CaptureRunner(local.engine.handle, local.engine.events, 'pacing', {
        ...DEFAULT_CAPTURE_OPTIONS, ...FAST.capture, leaseTtlMs: 5000, heartbeatMs: 100,
      }, () => {}, fake);
      try {
        await local.engine.startCapture({ endpoint: 'http://127.0.0.1:9', stream: 'always', into: 'paced' });
        await runner.start();
        await waitFor(() => calls.length >= 2, 'reading the source', 10_000);
        const from = calls[0]!;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, from + 2100 - Date.now()))); // an observation window
        const inTwoSeconds = calls.filter((at) => at >= from && at < from + 2000).length;
        assert.ok(inTwoSeconds <= 10, `${inTwoSeconds} GetRecords calls in 2 s`);
        assert.ok(inTwoSeconds >= 3, `still reading: ${inTwoSeconds} calls in 2 s`);
      } finally {
        await runner.stop();
        await local.close();
      }
    });

    it('rejects bad input naming the field, writing nothing', async () => {
      const before = (await t.engine.captures.list()).length;
      await rejectsWith(t.engine.startCapture({ stream: 'bad name!' }), 'INVALID_ARGUMENT', /stream must be/);
      await rejectsWith(t.engine.startCapture({ stream: 's', endpoint: 'ftp://x' }), 'INVALID_ARGUMENT', /endpoint must be/);
      await rejectsWith(t.engine.startCapture({ stream: 's', region: 'nowhere' }), 'INVALID_ARGUMENT', /region/);
      await rejectsWith(t.engine.startCapture({ stream: 's', from: 'AT_TIMESTAMP' }), 'INVALID_ARGUMENT', /timestamp is required/);
      await rejectsWith(t.engine.startCapture({ stream: 's', kind: 'DYNAMODB' }), 'INVALID_ARGUMENT', /DynamoDB stream ARN/);
      await t.engine.createStream({ name: 'taken-local', shardCount: 1 });
      await rejectsWith(t.engine.startCapture({ stream: 's', into: 'taken-local' }), 'STREAM_EXISTS', /not the target of a capture/);
      await rejectsWith(t.engine.stopCapture('nope'), 'CAPTURE_NOT_FOUND');
      assert.equal((await t.engine.captures.list()).length, before);
    });

    describe('DynamoDB streams', () => {
      let sourceEngine: TestEngine;
      let app: App;
      let endpoint: string;

      before(async () => {
        sourceEngine = await openTestEngine(backend, { delivery: false });
        app = buildApp({ engine: sourceEngine.engine, logError: () => {} });
        endpoint = new URL(await app.start(0, '127.0.0.1')).origin;
      });
      after(async () => {
        await app.stop();
        await sourceEngine.close();
      });

      it('captures a DYNAMODB stream through @aws-sdk/client-dynamodb-streams, images and original sequence numbers kept', async () => {
        const table = await sourceEngine.engine.createStream({ name: uniqueName('table'), kind: 'DYNAMODB', shardCount: 2, viewType: 'NEW_AND_OLD_IMAGES' });
        const written = await sourceEngine.engine.writeItems(table.name, [
          { keys: { pk: { S: 'a' } }, newImage: { pk: { S: 'a' }, n: { N: '1' }, b: { B: Buffer.from('bytes').toString('base64') } } },
          { keys: { pk: { S: 'b' } }, newImage: { pk: { S: 'b' }, n: { N: '1' } } },
          { keys: { pk: { S: 'a' } }, newImage: { pk: { S: 'a' }, n: { N: '2' } } },
          { keys: { pk: { S: 'b' } } },
        ]);
        const started = await t.engine.startCapture({ kind: 'DYNAMODB', endpoint, stream: table.arn, into: `${table.name}-local` });
        await captured(started.id, 4, 'the four changes captured');
        const local = await t.engine.catalog.get(`${table.name}-local`);
        assert.equal(local.kind, 'DYNAMODB');
        assert.equal(local.viewType, 'NEW_AND_OLD_IMAGES');
        const records = await readAll(t.engine, local.name);
        const bySource = new Map(written.records.map((w) => [w.sequenceNumber, w.shardId]));
        assert.equal(records.length, 4);
        for (const r of records) {
          const origin = r.origin as { SequenceNumber: string; eventSourceARN: string; eventID: string };
          assert.equal(bySource.get(origin.SequenceNumber), r.shardId, 'same shard as the source');
          assert.equal(origin.eventSourceARN, table.arn);
          assert.equal(r.eventID, origin.eventID);
        }
        const a = records.filter((r) => (r.keys as { pk: { S: string } }).pk.S === 'a');
        assert.deepEqual(a.map((r) => r.eventName), ['INSERT', 'MODIFY']);
        assert.deepEqual(a[0]!.newImage, { pk: { S: 'a' }, n: { N: '1' }, b: { B: Buffer.from('bytes').toString('base64') } });
        assert.deepEqual(a[1]!.oldImage, { pk: { S: 'a' }, n: { N: '1' }, b: { B: Buffer.from('bytes').toString('base64') } });
        const b = records.filter((r) => (r.keys as { pk: { S: string } }).pk.S === 'b');
        assert.deepEqual(b.map((r) => r.eventName), ['INSERT', 'REMOVE']);
        // A rollover on the source is followed like a split.
        await sourceEngine.engine.rolloverShards(table.name);
        await sourceEngine.engine.writeItems(table.name, [{ keys: { pk: { S: 'c' } }, newImage: { pk: { S: 'c' } } }]);
        await captured(started.id, 5, 'the change after the rollover captured');
        // Each child is created once its own parent is read to its end, one shard reader each.
        const shards = await waitFor(async () => {
          const listed = await t.engine.catalog.shards(local);
          return listed.length === 4 ? listed : undefined;
        }, 'both children of the rollover created', 10_000);
        assert.deepEqual(shards.map((s) => [s.shardId, s.parentShardId, s.closedAt !== null]), [
          ['shardId-000000000000', null, true],
          ['shardId-000000000001', null, true],
          ['shardId-000000000002', 'shardId-000000000000', false],
          ['shardId-000000000003', 'shardId-000000000001', false],
        ]);
        await t.engine.stopCapture(started.id);
      });
    });
  });
}
