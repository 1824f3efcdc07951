/**
 * Event source mapping delivery, end to end on a real engine: real HTTP function servers on
 * 127.0.0.1 and module functions, on PGlite and Postgres.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { readLane } from '../engine/delivery/laneReader.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

interface Received { body: any; at: number }

/** An HTTP function: records every event; `respond` decides the answer. */
async function functionServer(respond: (event: any) => { status?: number; headers?: Record<string, string>; body?: unknown } = () => ({})) {
  const received: Received[] = [];
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text);
    received.push({ body, at: Date.now() });
    const answer = respond(body);
    res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
    res.end(JSON.stringify(answer.body ?? null)); // a handler that returns nothing: Lambda's Invoke API answers null
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/2015-03-31/functions/f/invocations`;
  const records = () => received.flatMap((r) => r.body.Records as any[]);
  return { url, received, records, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const dataOf = (r: any) => Buffer.from(r.kinesis.data, 'base64').toString();

for (const backend of backends) {
  describe(`event source mapping delivery (${backend.name})`, () => {
    let t: TestEngine;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-functions-'));
    before(async () => {
      t = await openTestEngine(backend, {
        functionsDir,
        delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 },
      });
      await t.engine.start();
    });
    after(async () => {
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    /**
     * A one-shard stream `name` with a 5 s tumbling-window mapping to a module function that
     * counts its window's records in the state: `seen` holds the sequence numbers it was sent,
     * `finals` each window's count at its final invocation.
     */
    const countingWindows = async (name: string) => {
      writeFileSync(join(functionsDir, `${name}.mjs`), `
        export const finals = [];
        export const seen = [];
        export async function handler(event) {
          const count = event.state.count ?? 0;
          seen.push(...event.Records.map((r) => r.kinesis.sequenceNumber));
          if (event.isFinalInvokeForWindow) finals.push(count + event.Records.length);
          return { state: { count: count + event.Records.length } };
        }`);
      await t.engine.catalog.create({ name, shardCount: 1 });
      await t.engine.createFunction({ name: `${name}-fn`, module: `${name}.mjs#handler` });
      const mapping = await t.engine.createMapping({
        streamName: name, functionName: `${name}-fn`, startingPosition: 'TRIM_HORIZON', batchSize: 10, tumblingWindowSeconds: 5,
      });
      return { mapping, module: await import(join(functionsDir, `${name}.mjs`)) };
    };

    it('delivers every record in AWS Kinesis event shape, in order per shard, and checkpoints', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'basic', shardCount: 2 });
        await t.engine.createFunction({ name: 'basic-fn', url: fn.url });
        const mapping = await t.engine.createMapping({ streamName: 'basic', functionName: 'basic-fn', startingPosition: 'TRIM_HORIZON', batchSize: 7 });
        const put = await t.engine.putRecords('basic', Array.from({ length: 40 }, (_, i) => ({ partitionKey: `k${i % 6}`, data: b64(`r${i}`) })));
        await waitFor(() => fn.records().length >= 40, `40 records delivered (got ${fn.records().length})`, 15_000);
        const records = fn.records();
        assert.deepEqual(records.map(dataOf).sort(), Array.from({ length: 40 }, (_, i) => `r${i}`).sort());
        for (const body of fn.received.map((r) => r.body)) assert.ok(body.Records.length <= 7, 'batchSize respected');
        const first = records[0];
        assert.deepEqual(Object.keys(first), ['kinesis', 'eventSource', 'eventVersion', 'eventID', 'eventName', 'invokeIdentityArn', 'awsRegion', 'eventSourceARN']);
        assert.deepEqual(Object.keys(first.kinesis), ['kinesisSchemaVersion', 'partitionKey', 'sequenceNumber', 'data', 'approximateArrivalTimestamp']);
        assert.equal(first.eventSourceARN, 'arn:aws:kinesis:us-east-1:000000000000:stream/basic');
        assert.equal(typeof first.kinesis.approximateArrivalTimestamp, 'number');
        const byShard = new Map<string, string[]>();
        for (const r of records) {
          const shard = r.eventID.split(':')[0];
          byShard.set(shard, [...(byShard.get(shard) ?? []), r.kinesis.sequenceNumber]);
        }
        for (const seqs of byShard.values()) assert.deepEqual(seqs, [...seqs].sort(), 'in sequence order per shard');
        const lag = await waitFor(async () => {
          const rows = await t.engine.lag(mapping.id);
          return rows.every((r) => r.recordsBehind === 0) && rows.length === 2 ? rows : undefined;
        }, 'checkpoints caught up');
        const lastByShard = new Map<string, string>();
        for (const entry of put.records) lastByShard.set(entry.shardId!, entry.sequenceNumber!);
        for (const row of lag) assert.equal(row.checkpointSequenceNumber, lastByShard.get(row.shardId) ?? null);
        const invocations = await t.engine.invocations(mapping.id, { first: 100 });
        assert.ok(invocations.items.length >= 6);
        assert.ok(invocations.items.every((i) => i.node.outcome === 'OK'));
      } finally {
        await fn.close();
      }
    });

    it('starts at LATEST: records from before the mapping are not delivered', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'latest', shardCount: 1 });
        await t.engine.putRecords('latest', [{ partitionKey: 'a', data: b64('old') }]);
        await t.engine.createFunction({ name: 'latest-fn', url: fn.url });
        const mapping = await t.engine.createMapping({ streamName: 'latest', functionName: 'latest-fn' });
        await waitFor(async () => (await t.engine.lag(mapping.id)).length === 1, 'lease created');
        await t.engine.putRecords('latest', [{ partitionKey: 'a', data: b64('new') }]);
        await waitFor(() => fn.records().length >= 1, 'new record delivered');
        assert.deepEqual(fn.records().map(dataOf), ['new']);
      } finally {
        await fn.close();
      }
    });

    it('isolates a poison record by bisect, delivers everything else, discards it with an AWS on-failure record', async () => {
      const onFailure: any[] = [];
      const sink = await functionServer((body) => { onFailure.push(body); return { body: {} }; });
      const fn = await functionServer((event) => {
        const poisoned = event.Records.some((r: any) => dataOf(r) === 'poison');
        return poisoned
          ? { headers: { 'X-Amz-Function-Error': 'Unhandled' }, body: { errorType: 'Error', errorMessage: 'poison' } }
          : { body: null };
      });
      try {
        await t.engine.catalog.create({ name: 'poison', shardCount: 1 });
        await t.engine.createFunction({ name: 'poison-fn', url: fn.url });
        const data = Array.from({ length: 16 }, (_, i) => (i === 11 ? 'poison' : `ok${i}`));
        const mapping = await t.engine.createMapping({
          streamName: 'poison', functionName: 'poison-fn', startingPosition: 'TRIM_HORIZON', batchSize: 16,
          bisectBatchOnFunctionError: true, maximumRetryAttempts: 1, onFailureUrl: sink.url,
        });
        await t.engine.putRecords('poison', data.map((d) => ({ partitionKey: 'p', data: b64(d) })));
        await waitFor(() => onFailure.length >= 1, 'on-failure record posted', 15_000);
        const okDelivered = () => new Set(fn.received.filter((r) => r.body.Records.every((x: any) => dataOf(x) !== 'poison'))
          .flatMap((r) => r.body.Records.map(dataOf)));
        await waitFor(() => okDelivered().size >= 15, 'the records after the poison one delivered');
        assert.deepEqual([...okDelivered()].sort(), data.filter((d) => d !== 'poison').sort());
        const destination = onFailure[0];
        assert.equal(destination.requestContext.condition, 'RetryAttemptsExhausted');
        assert.equal(destination.requestContext.approximateInvokeCount, 2);
        assert.equal(destination.responseContext.functionError, 'Unhandled');
        assert.equal(destination.KinesisBatchInfo.batchSize, 1);
        assert.equal(destination.KinesisBatchInfo.streamArn, 'arn:aws:kinesis:us-east-1:000000000000:stream/poison');
        const failures = await t.engine.failures(mapping.id, { first: 100 });
        const kinds = failures.items.map((f) => f.node.kind);
        assert.ok(kinds.includes('BISECTED'));
        assert.ok(kinds.includes('FUNCTION_ERROR'));
        const discard = failures.items.filter((f) => f.node.kind === 'RETRIES_EXHAUSTED');
        assert.equal(discard.length, 1);
        assert.deepEqual(discard[0]!.node.destinationRecord, destination);
        await waitFor(async () => (await t.engine.lag(mapping.id))[0]!.recordsBehind === 0, 'lane moved past the poison record');
        // Forensics: the poison record's history shows every batch that held it and why it failed.
        const history = await t.engine.recordHistory(mapping.id, 'shardId-000000000000', destination.KinesisBatchInfo.startSequenceNumber);
        const invocationsOfPoison = history.filter((h) => h.source === 'INVOCATION');
        assert.ok(invocationsOfPoison.length >= 3, 'the full batch, the halves holding it, and the retries');
        assert.ok(invocationsOfPoison.every((h) => h.kind === 'FUNCTION_ERROR'));
        assert.equal(invocationsOfPoison.at(-1)!.recordCount, 1, 'isolated down to the one record');
        assert.ok(history.some((h) => h.source === 'FAILURE' && h.kind === 'BISECTED'));
        assert.equal(history.at(-1)!.kind, 'RETRIES_EXHAUSTED');
        assert.match(invocationsOfPoison[0]!.message ?? '', /poison/);
      } finally {
        await fn.close();
        await sink.close();
      }
    });

    it('resumes a partial batch response at the lowest failed item', async () => {
      let failedOnce = false;
      let failSeq = '';
      const fn = await functionServer((event) => {
        const records = event.Records as any[];
        const bad = records.find((r) => dataOf(r) === 'p3');
        if (bad && !failedOnce) {
          failedOnce = true;
          failSeq = bad.kinesis.sequenceNumber;
          return { body: { batchItemFailures: [{ itemIdentifier: bad.kinesis.sequenceNumber }] } };
        }
        return { body: { batchItemFailures: [] } };
      });
      try {
        await t.engine.catalog.create({ name: 'partial', shardCount: 1 });
        await t.engine.createFunction({ name: 'partial-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'partial', functionName: 'partial-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10,
          functionResponseTypes: ['ReportBatchItemFailures'],
        });
        await t.engine.putRecords('partial', Array.from({ length: 6 }, (_, i) => ({ partitionKey: 'k', data: b64(`p${i}`) })));
        await waitFor(() => fn.received.length >= 2, 'retry after the partial failure');
        assert.deepEqual(fn.received[0]!.body.Records.map(dataOf), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
        assert.deepEqual(fn.received[1]!.body.Records.map(dataOf), ['p3', 'p4', 'p5'], 'retry starts at the failed item');
        const failures = await t.engine.failures(mapping.id, { kind: 'PARTIAL_FAILURE' });
        assert.equal(failures.items[0]!.node.firstSequenceNumber, failSeq);
      } finally {
        await fn.close();
      }
    });

    it('skips records no filter pattern matches, without invoking', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'filtered', shardCount: 1 });
        await t.engine.createFunction({ name: 'filtered-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'filtered', functionName: 'filtered-fn', startingPosition: 'TRIM_HORIZON',
          filterPatterns: ['{"data":{"type":["order"]}}'],
        });
        await t.engine.putRecords('filtered', [
          { partitionKey: 'a', data: b64(JSON.stringify({ type: 'order', id: 1 })) },
          { partitionKey: 'a', data: b64(JSON.stringify({ type: 'refund', id: 2 })) },
          { partitionKey: 'a', data: b64('not json') },
          { partitionKey: 'a', data: b64(JSON.stringify({ type: 'order', id: 3 })) },
        ]);
        await waitFor(async () => (await t.engine.lag(mapping.id))[0]?.recordsBehind === 0, 'checkpoint past all four');
        assert.deepEqual(fn.records().map((r) => JSON.parse(dataOf(r)).id), [1, 3]);
      } finally {
        await fn.close();
      }
    });

    it('names the last invocation\'s request id in a discard\'s on-failure record', async () => {
      writeFileSync(join(functionsDir, 'request-ids.mjs'), `
        export const ids = [];
        export async function handler(event, context) { ids.push(context.awsRequestId); throw new Error('always'); }`);
      await t.engine.catalog.create({ name: 'request-ids', shardCount: 1 });
      await t.engine.createFunction({ name: 'request-ids-fn', module: 'request-ids.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'request-ids', functionName: 'request-ids-fn', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 1, bisectBatchOnFunctionError: false,
      });
      await t.engine.putRecords('request-ids', [{ partitionKey: 'a', data: b64('x') }]);
      const discard = await waitFor(async () => (await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED' })).items[0]?.node, 'the discard', 10_000);
      const module = await import(join(functionsDir, 'request-ids.mjs'));
      assert.equal(module.ids.length, 2);
      const context = (discard.destinationRecord as { requestContext: { requestId: string; approximateInvokeCount: number } }).requestContext;
      assert.equal(context.requestId, module.ids[1]);
      assert.equal(context.approximateInvokeCount, 2);
    });

    it('reads a lane within a byte budget, always at least one record, and says when the budget cut it', async () => {
      await t.engine.catalog.create({ name: 'budget', shardCount: 1 });
      await t.engine.putRecords('budget', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'a', data: b64(`${i}`.repeat(1000)) })));
      const stream = (await t.engine.catalog.find('budget'))!;
      const [shard] = await t.engine.catalog.shards(stream, 'ALL');
      const lane = { index: 0, count: 1 };
      const all = await readLane(t.engine.handle, stream, shard!, lane, null, 10);
      assert.deepEqual([all.length, all.cut], [5, false]);
      // 1,001 stored bytes each (data and partition key): 2,500 holds two.
      const two = await readLane(t.engine.handle, stream, shard!, lane, null, 10, undefined, 2500);
      assert.deepEqual([two.map((r) => r.seq), two.cut], [all.slice(0, 2).map((r) => r.seq), true]);
      assert.equal(Buffer.from(two[1]!.record.data, 'base64').toString(), '1'.repeat(1000));
      const one = await readLane(t.engine.handle, stream, shard!, lane, all[2]!.seq, 10, undefined, 10);
      assert.deepEqual([one.map((r) => r.seq), one.cut], [[all[3]!.seq], true]);
      const count = await readLane(t.engine.handle, stream, shard!, lane, null, 3, undefined, 2500);
      assert.equal(count.length, 2, 'the budget and the count, whichever ends the read first');
      // A DYNAMODB record's item size is a fraction of the JSON a read loads: the budget counts the JSON.
      await t.engine.catalog.create({ name: 'budget-items', kind: 'DYNAMODB', shardCount: 1, viewType: 'NEW_IMAGE' });
      await t.engine.writeItems('budget-items', Array.from({ length: 10 }, (_, i) => ({
        keys: { id: { S: `i${i}` } }, newImage: { flags: { L: Array.from({ length: 2000 }, () => ({ BOOL: true })) } },
      })));
      const items = (await t.engine.catalog.find('budget-items'))!;
      const [itemShard] = await t.engine.catalog.shards(items, 'ALL');
      const json = await readLane(t.engine.handle, items, itemShard!, lane, null, 10, undefined, 60_000);
      assert.ok(json.length <= 3 && json.cut, `${json.length} items of ~30 KB of JSON (about 4 KB of item size each) in a 60,000-byte read`);
    });

    it('lets timers and sockets in while a lane works through a backlog', async () => {
      writeFileSync(join(functionsDir, 'backlog.mjs'), `
        export const seen = { n: 0 };
        export async function handler(event) { seen.n += event.Records.length; return null; }`);
      await t.engine.catalog.create({ name: 'backlog', shardCount: 2 });
      for (let i = 0; i < 12; i++) {
        await t.engine.putRecords('backlog', Array.from({ length: 500 }, (_, j) => ({ partitionKey: `k${j}`, data: b64('x'.repeat(500)) })));
      }
      await t.engine.createFunction({ name: 'backlog-fn', module: 'backlog.mjs#handler' });
      const module = await import(join(functionsDir, 'backlog.mjs'));
      // A timer's ticks note how far the delivery was: ticks only before and after it would mean
      // the delivery held the event loop (and with it every HTTP request) from start to end.
      const seenAtTicks: number[] = [];
      const ticker = setInterval(() => seenAtTicks.push(module.seen.n), 5);
      try {
        await t.engine.createMapping({ streamName: 'backlog', functionName: 'backlog-fn', startingPosition: 'TRIM_HORIZON', batchSize: 250 });
        await waitFor(() => module.seen.n >= 6000, 'the backlog delivered', 30_000);
      } finally {
        clearInterval(ticker);
      }
      assert.ok(seenAtTicks.some((n) => n > 0 && n < 6000), `a tick while delivering (ticks saw ${JSON.stringify([...new Set(seenAtTicks)])})`);
    });

    it('filters before batching: sparse matches fill a batch up to batchSize', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'sparse', shardCount: 1 });
        await t.engine.createFunction({ name: 'sparse-fn', url: fn.url });
        // Every third record matches: 12 records hold 4, one batch of batchSize 4 (AWS filters, then batches).
        await t.engine.putRecords('sparse', Array.from({ length: 30 }, (_, i) => ({ partitionKey: 'a', data: b64(JSON.stringify({ keep: i % 3 === 0, i })) })));
        const mapping = await t.engine.createMapping({
          streamName: 'sparse', functionName: 'sparse-fn', startingPosition: 'TRIM_HORIZON', batchSize: 4,
          filterPatterns: ['{"data":{"keep":[true]}}'],
        });
        await waitFor(async () => (await t.engine.lag(mapping.id))[0]?.recordsBehind === 0, 'checkpoint past all thirty');
        assert.deepEqual(fn.received.map((r) => r.body.Records.map((x: any) => JSON.parse(dataOf(x)).i)), [[0, 3, 6, 9], [12, 15, 18, 21], [24, 27]]);
      } finally {
        await fn.close();
      }
    });

    it('reads a child shard only after its parent is read to its end', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'lineage', shardCount: 1 });
        await t.engine.createFunction({ name: 'lineage-fn', url: fn.url });
        await t.engine.createMapping({ streamName: 'lineage', functionName: 'lineage-fn', startingPosition: 'TRIM_HORIZON', batchSize: 5 });
        await t.engine.putRecords('lineage', Array.from({ length: 30 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`before${i}`) })));
        await t.engine.resharding.splitShard('lineage', 'shardId-000000000000', (1n << 127n).toString());
        await t.engine.putRecords('lineage', Array.from({ length: 30 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`after${i}`) })));
        await waitFor(() => fn.records().length >= 60, `60 records (got ${fn.records().length})`, 15_000);
        const order = fn.records().map(dataOf);
        const lastParent = Math.max(...order.map((d, i) => (d.startsWith('before') ? i : -1)));
        const firstChild = order.findIndex((d) => d.startsWith('after'));
        assert.ok(lastParent < firstChild, 'every parent record before any child record');
      } finally {
        await fn.close();
      }
    });

    it('calls module functions in-process with a Lambda-like context, keeping per-key order across lanes', async () => {
      writeFileSync(join(functionsDir, 'collect.mjs'), `
        export const seen = [];
        export async function handler(event, context) {
          for (const r of event.Records) seen.push({ key: r.kinesis.partitionKey, data: Buffer.from(r.kinesis.data, 'base64').toString(), fn: context.functionName });
          await new Promise((r) => setTimeout(r, 5));
          return null;
        }`);
      await t.engine.catalog.create({ name: 'lanes', shardCount: 1 });
      await t.engine.createFunction({ name: 'collect', module: 'collect.mjs#handler' });
      await t.engine.createMapping({
        streamName: 'lanes', functionName: 'collect', startingPosition: 'TRIM_HORIZON', batchSize: 3, parallelizationFactor: 4,
      });
      const written = Array.from({ length: 60 }, (_, i) => ({ partitionKey: `key${i % 5}`, data: b64(`${i % 5}:${i}`) }));
      for (let i = 0; i < written.length; i += 20) await t.engine.putRecords('lanes', written.slice(i, i + 20));
      const module = await import(join(functionsDir, 'collect.mjs'));
      await waitFor(() => module.seen.length >= 60, `60 records (got ${module.seen.length})`, 15_000);
      assert.equal(module.seen[0].fn, 'collect');
      for (let k = 0; k < 5; k++) {
        const seq = module.seen.filter((s: any) => s.key === `key${k}`).map((s: any) => Number(s.data.split(':')[1]));
        assert.deepEqual(seq, [...seq].sort((a, b) => a - b), `key${k} in order`);
        assert.equal(seq.length, 12);
      }
    });

    it('passes tumbling-window state between invocations and closes each window with a final invocation', async () => {
      writeFileSync(join(functionsDir, 'windows.mjs'), `
        export const calls = [];
        export async function handler(event) {
          calls.push({ start: event.window.start, end: event.window.end, final: event.isFinalInvokeForWindow,
            stateIn: event.state, count: event.Records.length, at: Date.now(), shardId: event.shardId });
          return { state: { count: (event.state.count ?? 0) + event.Records.length } };
        }`);
      await t.engine.catalog.create({ name: 'windows', shardCount: 1 });
      await t.engine.createFunction({ name: 'windows-fn', module: 'windows.mjs#handler' });
      await t.engine.createMapping({
        streamName: 'windows', functionName: 'windows-fn', startingPosition: 'TRIM_HORIZON', batchSize: 2, tumblingWindowSeconds: 1,
      });
      // Puts just before a second's end, so that they mostly straddle two windows (under 1 s).
      while (Date.now() % 1000 < 997) await new Promise((r) => setTimeout(r, 1));
      for (let i = 0; i < 3; i++) await t.engine.putRecords('windows', [{ partitionKey: 'w', data: b64(`w${i}`) }, { partitionKey: 'w', data: b64(`x${i}`) }]);
      const module = await import(join(functionsDir, 'windows.mjs'));
      const windows = () => [...new Set(module.calls.map((c: any) => c.start))];
      // All six records delivered, and every window they fell in closed: the puts may straddle a
      // window's end, and the first window closes (a later one's records follow) before the
      // later one's records are even delivered.
      await waitFor(() => module.calls.reduce((sum: number, c: any) => sum + c.count, 0) >= 6
        && windows().every((w) => module.calls.some((c: any) => c.start === w && c.final)),
        'all six records delivered and every window closed by a final invocation', 15_000);
      let total = 0;
      for (const w of windows()) {
        const calls = module.calls.filter((c: any) => c.start === w);
        assert.equal(calls.filter((c: any) => c.final).length, 1, 'one final invocation per window');
        assert.equal(calls.at(-1).final, true, 'the final invocation is the last of its window');
        let count = 0;
        for (const c of calls) {
          assert.deepEqual(c.stateIn, count === 0 && c === calls[0] ? {} : { count }, 'state passed on within the window');
          count += c.count;
        }
        total += count;
        const last = calls.at(-1);
        assert.ok(last.at - Date.parse(last.end) <= 5000, 'closed within 5 s after the window ended');
        assert.equal(last.shardId, 'shardId-000000000000');
        assert.match(String(w), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
      assert.equal(total, 6, 'every record in exactly one window');
    });

    it('delivers a record that commits between an empty read and the shard\'s close before ending the shard', async () => {
      writeFileSync(join(functionsDir, 'close-race.mjs'), `
        export const seen = [];
        export async function handler(event) {
          for (const r of event.Records) seen.push({ data: Buffer.from(r.kinesis.data, 'base64').toString(), shardId: r.eventID.split(':')[0] });
        }`);
      await t.engine.catalog.create({ name: 'close-race', shardCount: 1 });
      await t.engine.createFunction({ name: 'close-race-fn', module: 'close-race.mjs#handler' });
      await t.engine.createMapping({ streamName: 'close-race', functionName: 'close-race-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10 });
      await t.engine.putRecords('close-race', [{ partitionKey: 'k', data: b64('first') }]);
      const module = await import(join(functionsDir, 'close-race.mjs'));
      await waitFor(() => module.seen.length === 1, 'the first record delivered', 10_000);

      // The idle lane's next look at its shard (after a read that found nothing) first lets a
      // record commit and the shard close: the interleaving that lost the record.
      const db = t.engine.handle.db as any;
      const select = db.select;
      const stream = await t.engine.catalog.get('close-race');
      const [shard] = await t.engine.catalog.shards(stream, 'OPEN');
      let raced: Promise<void> | undefined;
      db.select = function (...args: unknown[]) {
        const builder = select.apply(db, args);
        if (raced || args.length > 0 || !new Error().stack?.includes('#shard')) return builder;
        const from = builder.from.bind(builder);
        builder.from = (table: unknown) => {
          const query = from(table);
          const where = query.where.bind(query);
          query.where = (condition: any) => {
            const q = where(condition);
            // Only this lane's look at its own shard (other tests' lanes idle in this engine too).
            if (raced || !condition?.queryChunks?.some((c: any) => c?.value === shard!.key)) return q;
            raced = (async () => {
              await t.engine.putRecords('close-race', [{ partitionKey: 'k', data: b64('late') }]);
              await t.engine.resharding.splitShard('close-race', shard!.shardId, (2n ** 127n).toString());
            })();
            const then = q.then.bind(q);
            q.then = (ok: any, fail: any) => raced!.then(() => then(ok, fail), fail);
            return q;
          };
          return query;
        };
        return builder;
      };
      try {
        await waitFor(() => raced !== undefined, 'the lane looked at its shard', 10_000);
        await raced;
      } finally {
        db.select = select;
      }
      await t.engine.putRecords('close-race', [{ partitionKey: 'k', data: b64('child') }]);
      await waitFor(() => module.seen.length >= 3, `the late record and the child's delivered (got ${JSON.stringify(module.seen)})`, 10_000);
      assert.deepEqual(module.seen.map((r: any) => r.data), ['first', 'late', 'child'], 'the parent\'s records, then the child\'s');
      assert.equal(module.seen[1].shardId, 'shardId-000000000000');
    });

    it('never has two batches of one lane out at once when its lease is lost and claimed again mid-invocation', async () => {
      writeFileSync(join(functionsDir, 'overlap.mjs'), `
        export const calls = [];
        let active = 0;
        export let most = 0;
        export async function handler(event) {
          active++;
          most = Math.max(most, active);
          calls.push(event.Records.length);
          // The first batch is slow: the seek below takes its lease while it runs.
          if (calls.length === 1) await new Promise((r) => setTimeout(r, 1500));
          active--;
        }`);
      await t.engine.catalog.create({ name: 'overlap', shardCount: 1 });
      await t.engine.createFunction({ name: 'overlap-fn', module: 'overlap.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'overlap', functionName: 'overlap-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10 });
      await t.engine.putRecords('overlap', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'k', data: b64(`o${i}`) })));
      const module = await import(join(functionsDir, 'overlap.mjs'));
      await waitFor(() => module.calls.length === 1, 'the first batch out', 10_000);
      // The seek fences the lease (new epoch, no owner): the poller drops the lane and claims it again.
      await t.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' });
      await waitFor(() => module.calls.length >= 2, 'the batch sent again after the seek', 10_000);
      assert.equal(module.most, 1, 'one batch of the lane at a time');
    });

    it('drops a lane beyond the parallelization factor, so the children of its shard are not held up', async () => {
      writeFileSync(join(functionsDir, 'orphan-lane.mjs'), `
        export const seen = [];
        export async function handler(event) {
          for (const r of event.Records) seen.push(Buffer.from(r.kinesis.data, 'base64').toString());
        }`);
      await t.engine.catalog.create({ name: 'orphan-lane', shardCount: 1 });
      await t.engine.createFunction({ name: 'orphan-lane-fn', module: 'orphan-lane.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'orphan-lane', functionName: 'orphan-lane-fn', startingPosition: 'TRIM_HORIZON', parallelizationFactor: 2,
      });
      const stream = await t.engine.catalog.get('orphan-lane');
      const [parent] = await t.engine.catalog.shards(stream, 'OPEN');
      // A lane a heartbeat made from the factor read just before it was lowered to 2.
      await t.engine.handle.query(sql`insert into leases (mapping_id, shard_key, lane, state) values (${mapping.id}, ${parent!.key}, 2, 'IDLE')`);
      await t.engine.putRecords('orphan-lane', [{ partitionKey: 'a', data: b64('parent') }]);
      await t.engine.resharding.splitShard('orphan-lane', parent!.shardId, (2n ** 127n).toString());
      await t.engine.putRecords('orphan-lane', [{ partitionKey: 'a', data: b64('child') }]);
      const module = await import(join(functionsDir, 'orphan-lane.mjs'));
      await waitFor(() => module.seen.length >= 2, `both records delivered (got ${JSON.stringify(module.seen)})`, 10_000);
      assert.deepEqual(module.seen, ['parent', 'child']);
      const lanes = await t.engine.handle.query<{ lane: number }>(sql`select lane from leases where mapping_id = ${mapping.id} and shard_key = ${parent!.key} order by lane`);
      assert.deepEqual(lanes.map((l) => l.lane), [0, 1], 'the lane beyond the factor is gone');
    });

    it('shows a record\'s history from its own lane only, when other lanes\' batches span its sequence number', async () => {
      writeFileSync(join(functionsDir, 'lane-history.mjs'), `
        export async function handler(event) {
          if (event.Records.some((r) => Buffer.from(r.kinesis.data, 'base64').toString().startsWith('bad'))) throw new Error('bad record');
        }`);
      // Two partition keys on different lanes of a factor of 2 (the lane is the key's hash modulo 2).
      const lanes = await t.engine.handle.query<{ k: string; lane: number }>(sql`
        select k, mod(hashtext(k)::bigint + 2147483648, 2)::int as lane from (values ('a'), ('b'), ('c'), ('d'), ('e'), ('f')) v(k)`);
      const bad = lanes.find((l) => l.lane === 0)!.k;
      const good = lanes.find((l) => l.lane === 1)!.k;
      await t.engine.catalog.create({ name: 'lane-history', shardCount: 1 });
      await t.engine.createFunction({ name: 'lane-history-fn', module: 'lane-history.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'lane-history', functionName: 'lane-history-fn', startingPosition: 'TRIM_HORIZON', parallelizationFactor: 2, maximumRetryAttempts: 0,
      });
      const put = await t.engine.putRecords('lane-history', [
        { partitionKey: bad, data: b64('bad-1') }, { partitionKey: good, data: b64('good') }, { partitionKey: bad, data: b64('bad-2') },
      ]);
      await waitFor(async () => {
        const lag = await t.engine.lag(mapping.id);
        return lag.length === 2 && lag.every((l) => l.recordsBehind === 0 && l.checkpointSequenceNumber !== null);
      }, 'both lanes done', 10_000);
      const history = await t.engine.recordHistory(mapping.id, 'shardId-000000000000', put.records[1]!.sequenceNumber!);
      assert.ok(history.length > 0 && history.every((h) => h.kind === 'OK'), `only its own lane's OK batch (${JSON.stringify(history)})`);
      const badHistory = await t.engine.recordHistory(mapping.id, 'shardId-000000000000', put.records[0]!.sequenceNumber!);
      assert.ok(badHistory.some((h) => h.kind === 'FUNCTION_ERROR') && badHistory.some((h) => h.kind === 'RETRIES_EXHAUSTED'));
    });

    it('keeps the window state answered beside batchItemFailures, so the retry carries the acknowledged records', async () => {
      writeFileSync(join(functionsDir, 'window-partial.mjs'), `
        export const finals = [];
        let failed = false;
        export async function handler(event) {
          const count = event.state.count ?? 0;
          const records = event.Records;
          if (!failed && records.length >= 3) {
            failed = true;
            return { state: { count: count + 2 }, batchItemFailures: [{ itemIdentifier: records[2].kinesis.sequenceNumber }] };
          }
          if (event.isFinalInvokeForWindow) finals.push(count + records.length);
          return { state: { count: count + records.length } };
        }`);
      await t.engine.catalog.create({ name: 'window-partial', shardCount: 1 });
      await t.engine.createFunction({ name: 'window-partial-fn', module: 'window-partial.mjs#handler' });
      await t.engine.createMapping({
        streamName: 'window-partial', functionName: 'window-partial-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10,
        tumblingWindowSeconds: 1, functionResponseTypes: ['ReportBatchItemFailures'],
      });
      await t.engine.putRecords('window-partial', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'w', data: b64(`p${i}`) })));
      const module = await import(join(functionsDir, 'window-partial.mjs'));
      await waitFor(() => module.finals.length > 0, 'the window closed', 15_000);
      assert.deepEqual(module.finals, [5], 'the final invocation sees all five records counted once');
    });

    it('starts windows afresh after a seek, so records seen again are not counted twice', async () => {
      const { mapping, module } = await countingWindows('window-seek');
      // Put early in a window, so it is still open when the seek comes.
      await waitFor(() => Date.now() % 5000 < 1500, 'the start of a 5 s window', 6000);
      await t.engine.putRecords('window-seek', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'w', data: b64(`s${i}`) })));
      await waitFor(() => module.seen.length >= 5, 'five records delivered', 5000);
      assert.equal(module.finals.length, 0, 'the window is still open');
      await t.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' });
      await waitFor(() => module.finals.length > 0, 'the window closed', 15_000);
      assert.equal(module.seen.length, 10, 'the seek sent the five records again');
      assert.deepEqual(module.finals, [5], 'the window counted after the seek holds each record once');
    });

    it('ends a window early when its state passes 1 MB, and starts its later records afresh', async () => {
      writeFileSync(join(functionsDir, 'window-big-state.mjs'), `
        export const calls = [];
        export async function handler(event) {
          const count = event.state.count ?? 0;
          calls.push({ records: event.Records.length, count, final: event.isFinalInvokeForWindow, early: event.isWindowTerminatedEarly, window: event.window.start });
          // 400 KB more state per batch: the third batch's answer passes 1 MB.
          return { state: { count: count + event.Records.length, pad: (event.state.pad ?? '') + 'x'.repeat(event.Records.length * 200 * 1024) } };
        }`);
      await t.engine.catalog.create({ name: 'window-big-state', shardCount: 1 });
      await t.engine.createFunction({ name: 'window-big-state-fn', module: 'window-big-state.mjs#handler' });
      await waitFor(() => Date.now() % 900_000 < 880_000, 'not at the end of a 900 s window', 21_000);
      await t.engine.putRecords('window-big-state', Array.from({ length: 8 }, (_, i) => ({ partitionKey: 'w', data: b64(`b${i}`) })));
      await t.engine.createMapping({
        streamName: 'window-big-state', functionName: 'window-big-state-fn', startingPosition: 'TRIM_HORIZON', batchSize: 2, tumblingWindowSeconds: 900,
      });
      const module = await import(join(functionsDir, 'window-big-state.mjs'));
      await waitFor(() => module.calls.length >= 5, 'four batches and the early final invocation', 15_000);
      const windowStart = module.calls[0].window;
      assert.deepEqual(module.calls.slice(0, 5), [
        { records: 2, count: 0, final: false, early: false, window: windowStart },
        { records: 2, count: 2, final: false, early: false, window: windowStart },
        { records: 2, count: 4, final: false, early: false, window: windowStart },
        { records: 0, count: 6, final: true, early: true, window: windowStart },
        { records: 2, count: 0, final: false, early: false, window: windowStart },
      ]);
    });

    it('ends first a window whose over-1 MB state was kept without its early end (the lane stopped in between)', async () => {
      writeFileSync(join(functionsDir, 'window-kept-state.mjs'), `
        export const calls = [];
        export async function handler(event) {
          calls.push({ records: event.Records.length, final: event.isFinalInvokeForWindow, early: event.isWindowTerminatedEarly, big: (event.state.pad ?? '').length });
          return { state: {} };
        }`);
      await t.engine.catalog.create({ name: 'window-kept-state', shardCount: 1 });
      await t.engine.createFunction({ name: 'window-kept-state-fn', module: 'window-kept-state.mjs#handler' });
      await waitFor(() => Date.now() % 900_000 < 880_000, 'not at the end of a 900 s window', 21_000);
      const mapping = await t.engine.createMapping({
        streamName: 'window-kept-state', functionName: 'window-kept-state-fn', startingPosition: 'TRIM_HORIZON', tumblingWindowSeconds: 900,
      });
      await t.engine.putRecords('window-kept-state', [{ partitionKey: 'w', data: b64('first') }]);
      const module = await import(join(functionsDir, 'window-kept-state.mjs'));
      await waitFor(() => module.calls.length >= 1, 'the first batch', 10_000);
      await waitFor(async () => (await t.engine.lag(mapping.id))[0]?.recordsBehind === 0, 'its checkpoint');
      // As a lane that stopped right after a batch answered a state over 1 MB leaves its lease.
      await t.engine.updateMapping(mapping.id, { enabled: false });
      await t.engine.handle.query(sql`update leases set window_state = ${JSON.stringify({ pad: 'x'.repeat(1100 * 1024) })}::jsonb
                                       where mapping_id = ${mapping.id}`);
      await t.engine.putRecords('window-kept-state', [{ partitionKey: 'w', data: b64('second') }]);
      await t.engine.updateMapping(mapping.id, { enabled: true });
      await waitFor(() => module.calls.length >= 3, 'the early end, then the second record', 10_000);
      assert.deepEqual(module.calls.slice(1, 3), [
        { records: 0, final: true, early: true, big: 1100 * 1024 },
        { records: 1, final: false, early: false, big: 0 },
      ]);
    });

    it('does not hold a window\'s final invocation for maximumBatchingWindowSeconds', async () => {
      writeFileSync(join(functionsDir, 'window-batching.mjs'), `
        export const finals = [];
        export async function handler(event) {
          if (event.isFinalInvokeForWindow) finals.push({ end: event.window.end, at: Date.now(), records: event.Records.length });
          return { state: {} };
        }`);
      await t.engine.catalog.create({ name: 'window-batching', shardCount: 1 });
      await t.engine.createFunction({ name: 'window-batching-fn', module: 'window-batching.mjs#handler' });
      await t.engine.createMapping({
        streamName: 'window-batching', functionName: 'window-batching-fn', startingPosition: 'TRIM_HORIZON', batchSize: 100,
        tumblingWindowSeconds: 1, maximumBatchingWindowSeconds: 60,
      });
      await t.engine.putRecords('window-batching', [{ partitionKey: 'w', data: b64('b') }]);
      const module = await import(join(functionsDir, 'window-batching.mjs'));
      await waitFor(() => module.finals.length > 0, 'the window closed', 15_000);
      const [final] = module.finals;
      assert.equal(final.records, 1);
      assert.ok(final.at - Date.parse(final.end) <= 5000, `closed ${final.at - Date.parse(final.end)} ms after the window ended`);
    });

    it('restarts an open window when parallelizationFactor or tumblingWindowSeconds changes, so its aggregate loses no record', async () => {
      const { mapping, module } = await countingWindows('window-relane');
      const lanes = await t.engine.handle.query<{ lane: number }>(sql`
        select distinct mod(hashtext(k)::bigint + 2147483648, 2)::int as lane from (values ('k0'), ('k1'), ('k2'), ('k3'), ('k4'), ('k5')) v(k)`);
      assert.equal(lanes.length, 2, 'the keys fall on both lanes of a factor of 2');
      await waitFor(() => Date.now() % 5000 < 1000, 'the start of a 5 s window', 6000);
      await t.engine.putRecords('window-relane', Array.from({ length: 6 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`r${i}`) })));
      await waitFor(() => module.seen.length >= 6, 'six records delivered', 5000);
      assert.equal(module.finals.length, 0, 'the window is still open');
      await t.engine.updateMapping(mapping.id, { parallelizationFactor: 2 });
      // Each of the two lanes closes its own window; together they count every record once.
      await waitFor(() => module.finals.length >= 2, `both lanes closed the window (finals ${JSON.stringify(module.finals)})`, 15_000);
      assert.equal(module.finals.reduce((a: number, b: number) => a + b, 0), 6, `finals ${JSON.stringify(module.finals)}`);
      const moves = await t.engine.checkpointMoves(mapping.id);
      assert.ok(moves.some((m) => /open tumbling window restarted/.test(m.reason)), 'the restart is in the ledger');
    });

    it('logs a failing final window invocation as an invocation and a Failure row at the window\'s last record, and retries it', async () => {
      writeFileSync(join(functionsDir, 'window-close.mjs'), `
        export const finals = [];
        export async function handler(event) {
          if (event.isFinalInvokeForWindow && event.Records.length === 0) {
            finals.push(event.window.start);
            if (finals.length <= 2) throw new Error('cannot close ' + finals.length);
          }
          return { state: {} };
        }`);
      await t.engine.catalog.create({ name: 'window-close', shardCount: 1 });
      await t.engine.createFunction({ name: 'window-close-fn', module: 'window-close.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'window-close', functionName: 'window-close-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10, tumblingWindowSeconds: 2,
      });
      // Early in a window: the batch goes out before the window ends, so the close is an invocation of its own.
      await waitFor(() => Date.now() % 2000 < 500, 'the start of a 2 s window', 3000);
      const put = await t.engine.putRecords('window-close', [{ partitionKey: 'w', data: b64('a') }, { partitionKey: 'w', data: b64('b') }]);
      const module = await import(join(functionsDir, 'window-close.mjs'));
      await waitFor(() => module.finals.length >= 3, 'the window closed on the third final invocation', 15_000);
      const lastSeq = put.records.at(-1)!.sequenceNumber;
      const failures = await waitFor(async () => {
        const rows = (await t.engine.failures(mapping.id, { first: 100 })).items.map((e) => e.node);
        return rows.length >= 2 ? rows : undefined;
      }, 'two failure rows', 5000);
      assert.equal(failures.length, 2);
      for (const [i, f] of failures.reverse().entries()) {
        assert.equal(f.kind, 'FUNCTION_ERROR');
        assert.equal(f.recordCount, 0);
        assert.equal(f.firstSequenceNumber, lastSeq);
        assert.equal(f.lastSequenceNumber, lastSeq);
        assert.equal(f.attempt, i + 1);
        assert.match(f.message ?? '', /final invocation of window .* failed: .*cannot close/);
      }
      const closing = await waitFor(async () => {
        const rows = (await t.engine.invocations(mapping.id, { first: 100 })).items.map((e) => e.node).filter((v) => v.recordCount === 0);
        return rows.length >= 3 ? rows : undefined;
      }, 'three closing invocations logged', 5000);
      assert.deepEqual(closing.map((v) => v.outcome).reverse(), ['FUNCTION_ERROR', 'FUNCTION_ERROR', 'OK']);
    });
  });
}
