/**
 * Event source mapping semantics that try to break the engine: mapping validation, starting
 * positions, retry exhaustion, record age, timeouts, throttles, the batching window, live
 * updates / disable / delete, DynamoDB event shapes and filters, reservedConcurrency and the
 * 6 MB payload limit. Real HTTP function servers on 127.0.0.1 and module functions, on PGlite
 * and (with DATABASE_URL) Postgres. Every wait is bounded (waitFor); nothing sleeps to sync.
 */
import assert from 'node:assert/strict';
import type { ErrorCode } from '../engine/errors.ts';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import type { MappingInput } from '../engine/mappings/mappingCatalog.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor, rejectsWith as rejectsWithCode } from './harness.ts';

interface Answer { status?: number; headers?: Record<string, string>; body?: unknown; delayMs?: number }
interface Received { body: any; bytes: number; at: number }

/**
 * An HTTP function: records every event (and its size in bytes), counts invocations in flight
 * (from the request's arrival to the end of the response), and answers with `respond`.
 */
async function functionServer(respond: (event: any, n: number) => Answer = () => ({})) {
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks);
      const body = JSON.parse(raw.toString('utf8'));
      received.push({ body, bytes: raw.length, at: Date.now() });
      const answer = respond(body, received.length);
      // The function's own running time (what reservedConcurrency must not overlap).
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? null)); // a handler that returns nothing: Lambda's Invoke API answers null
    } finally {
      inFlight--;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/2015-03-31/functions/f/invocations`;
  const records = () => received.flatMap((r) => r.body.Records as any[]);
  return {
    url,
    received,
    records,
    get maxInFlight() { return maxInFlight; },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

const dataOf = (r: any) => Buffer.from(r.kinesis.data, 'base64').toString();
const S = (value: string) => ({ S: value });
const N = (value: string) => ({ N: value });
const FAIL = { headers: { 'X-Amz-Function-Error': 'Unhandled' }, body: { errorType: 'Error', errorMessage: 'boom' } };

/** Asserts a ShardlineError with `code` whose message names `field`. */
/** The engine rejects with `code` and a message naming `field`. */
const rejectsWith = (promise: Promise<unknown>, code: string, field: string, _label = field) =>
  rejectsWithCode(promise, code as ErrorCode, new RegExp(field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

for (const backend of backends) {
  describe(`event source mapping semantics (${backend.name})`, () => {
    let t: TestEngine;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-semantics-'));
    before(async () => {
      t = await openTestEngine(backend, {
        functionsDir,
        delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 },
        onError: (error) => console.error(`engine error: ${error.message}`),
      });
      await t.engine.start();
    });
    afterEach(async () => {
      // Each test's mappings go away with it: fewer idle lanes polling the database.
      for (const m of await t.engine.mappings.list()) await t.engine.deleteMapping(m.id);
    });
    after(async () => {
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    const lagCaughtUp = async (mappingId: string, rows = 1) => {
      const lag = await t.engine.lag(mappingId);
      return lag.length === rows && lag.every((r) => r.recordsBehind === 0 && r.state === 'IDLE') ? lag : undefined;
    };
    const invocationsOf = async (mappingId: string) =>
      (await t.engine.invocations(mappingId, { first: 1000 })).items.map((i) => i.node).reverse();
    const failuresOf = async (mappingId: string) =>
      (await t.engine.failures(mappingId, { first: 1000 })).items.map((i) => i.node).reverse();

    it('validates mapping settings on create and update: INVALID_ARGUMENT naming the field, nothing written', async () => {
      await t.engine.catalog.create({ name: 'v-kin', shardCount: 1 });
      await t.engine.catalog.create({ name: 'v-ddb', kind: 'DYNAMODB', shardCount: 1 });
      await t.engine.createFunction({ name: 'v-fn', url: 'http://127.0.0.1:9/2015-03-31/functions/v/invocations' });
      await t.engine.createFunction({ name: 'v-fn2', url: 'http://127.0.0.1:9/2015-03-31/functions/v2/invocations' });
      const base = { functionName: 'v-fn', startingPosition: 'TRIM_HORIZON', enabled: false } as const;
      const invalid: [stream: string, input: Partial<MappingInput>, field: string][] = [
        ['v-kin', { batchSize: 0 }, 'batchSize'],
        ['v-kin', { batchSize: 10_001 }, 'batchSize'],
        ['v-kin', { batchSize: 2.5 }, 'batchSize'],
        ['v-ddb', { batchSize: 0 }, 'batchSize'],
        ['v-ddb', { batchSize: 10_001 }, 'batchSize'],
        ['v-kin', { maximumBatchingWindowSeconds: -1 }, 'maximumBatchingWindowSeconds'],
        ['v-kin', { maximumBatchingWindowSeconds: 301 }, 'maximumBatchingWindowSeconds'],
        ['v-kin', { maximumBatchingWindowSeconds: 0.5 }, 'maximumBatchingWindowSeconds'],
        ['v-kin', { parallelizationFactor: 0 }, 'parallelizationFactor'],
        ['v-kin', { parallelizationFactor: 11 }, 'parallelizationFactor'],
        ['v-kin', { maximumRetryAttempts: -2 }, 'maximumRetryAttempts'],
        ['v-kin', { maximumRetryAttempts: 10_001 }, 'maximumRetryAttempts'],
        ['v-kin', { maximumRecordAgeSeconds: -2 }, 'maximumRecordAgeSeconds'],
        ['v-kin', { maximumRecordAgeSeconds: 0 }, 'maximumRecordAgeSeconds'],
        ['v-kin', { maximumRecordAgeSeconds: 59 }, 'maximumRecordAgeSeconds'],
        ['v-kin', { maximumRecordAgeSeconds: 604_801 }, 'maximumRecordAgeSeconds'],
        ['v-kin', { filterPatterns: ['not json'] }, 'filterPatterns'],
        ['v-kin', { filterPatterns: ['{"data":{"type":"order"}}'] }, 'filterPatterns'],
        ['v-ddb', { filterPatterns: ['{"eventName":[{"prefix":1}]}'] }, 'filterPatterns'],
        ['v-kin', { onFailureUrl: 'http://user:secret@127.0.0.1:9/dlq' }, 'onFailureUrl'],
        ['v-kin', { onFailureUrl: 'ftp://127.0.0.1/dlq' }, 'onFailureUrl'],
        ['v-kin', { onFailureUrl: 'not a url' }, 'onFailureUrl'],
        ['v-kin', { onFailureUrl: `http://127.0.0.1/${'a'.repeat(2048)}` }, 'onFailureUrl must be at most 2048'],
      ];
      const atTimestamp: [stream: string, input: Partial<MappingInput>, field: string][] = [
        ['v-kin', { startingPosition: 'AT_TIMESTAMP' }, 'startingPositionTimestamp'],
        ['v-kin', { startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: new Date(Date.now() + 3_600_000) }, 'startingPositionTimestamp'],
        ['v-ddb', { startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: new Date(Date.now() - 1000) }, 'AT_TIMESTAMP'],
        ['v-kin', { startingPosition: 'LATEST', startingPositionTimestamp: new Date(Date.now() - 1000) }, 'startingPositionTimestamp'],
        ['v-kin', { startingPosition: 'SOMEWHERE' }, 'startingPosition'],
      ];
      for (const [streamName, input, field] of [...invalid, ...atTimestamp]) {
        await rejectsWith(t.engine.createMapping({ ...base, streamName, ...input }), 'INVALID_ARGUMENT', field,
          `create ${streamName} ${JSON.stringify(input)}`);
      }
      await rejectsWith(t.engine.createMapping({ ...base, streamName: 'no-such-stream' }), 'STREAM_NOT_FOUND', 'no-such-stream');
      await rejectsWith(t.engine.createMapping({ ...base, streamName: 'v-kin', functionName: 'no-such-fn' }), 'FUNCTION_NOT_FOUND', 'no-such-fn');
      assert.deepEqual(await t.engine.mappings.list(), [], 'no rejected create wrote a mapping');

      // The bounds themselves are accepted.
      const kin = await t.engine.createMapping({
        ...base, streamName: 'v-kin', batchSize: 10_000, maximumBatchingWindowSeconds: 300, parallelizationFactor: 10,
        maximumRetryAttempts: 10_000, maximumRecordAgeSeconds: 604_800,
      });
      assert.equal(kin.batchSize, 10_000);
      const ddb = await t.engine.createMapping({ ...base, streamName: 'v-ddb', batchSize: 10_000, maximumRecordAgeSeconds: 60 });
      assert.equal(ddb.batchSize, 10_000);
      const lower = await t.engine.updateMapping(kin.id, {
        batchSize: 1, maximumBatchingWindowSeconds: 0, parallelizationFactor: 1, maximumRetryAttempts: -1, maximumRecordAgeSeconds: -1,
      });
      assert.deepEqual(
        [lower.batchSize, lower.maximumBatchingWindowSeconds, lower.parallelizationFactor, lower.maximumRetryAttempts, lower.maximumRecordAgeSeconds],
        [1, 0, 1, -1, -1]);
      await t.engine.updateMapping(kin.id, { maximumRetryAttempts: 0, maximumRecordAgeSeconds: 60 });

      await rejectsWith(t.engine.createMapping({ ...base, streamName: 'v-kin' }), 'CONFLICT', 'v-fn');
      // Another function on the same stream is not a conflict.
      const other = await t.engine.createMapping({ ...base, streamName: 'v-kin', functionName: 'v-fn2' });
      // Nor may an update make a second mapping of one stream to one function.
      await rejectsWith(t.engine.updateMapping(other.id, { functionName: 'v-fn' }), 'CONFLICT', 'v-fn');
      await t.engine.deleteMapping(other.id);

      const settled = await t.engine.mappings.get(kin.id);
      for (const [streamName, input, field] of invalid) {
        const id = streamName === 'v-kin' ? kin.id : ddb.id;
        await rejectsWith(t.engine.updateMapping(id, input), 'INVALID_ARGUMENT', field, `update ${streamName} ${JSON.stringify(input)}`);
      }
      await rejectsWith(t.engine.updateMapping(kin.id, { functionName: 'no-such-fn' }), 'FUNCTION_NOT_FOUND', 'no-such-fn');
      await rejectsWith(t.engine.updateMapping('00000000-0000-0000-0000-000000000000', { batchSize: 5 }), 'MAPPING_NOT_FOUND', '00000000');
      assert.deepEqual(await t.engine.mappings.get(kin.id), settled, 'a rejected update changes nothing (not even the version)');
      assert.deepEqual((await t.engine.mappings.list()).map((m) => m.id).sort(), [kin.id, ddb.id].sort());
    });

    it('starts AT_TIMESTAMP: records before the timestamp are not delivered, from it on they are', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'ts', shardCount: 1 });
        await t.engine.createFunction({ name: 'ts-fn', url: fn.url });
        await t.engine.putRecords('ts', ['a0', 'a1', 'a2'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        const arrivals = async () => (await t.engine.reader.page('ts', { first: 100 })).records.map((r) => r.record);
        const lastBefore = (await arrivals()).at(-1)!.approximateArrivalTimestamp.getTime();
        // Let the clock move on so the timestamp separates the two groups (a bounded wait on the clock).
        await waitFor(() => Date.now() > lastBefore + 3, 'clock moved on');
        await t.engine.putRecords('ts', ['b0', 'b1'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        const b0 = (await arrivals()).find((r) => Buffer.from(r.data, 'base64').toString() === 'b0')!;
        const timestamp = b0.approximateArrivalTimestamp;
        assert.ok(timestamp.getTime() > lastBefore, 'the timestamp lies after every a* record');
        const mapping = await t.engine.createMapping({
          streamName: 'ts', functionName: 'ts-fn', startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: timestamp,
        });
        assert.equal(mapping.startingPosition, 'AT_TIMESTAMP');
        await t.engine.putRecords('ts', [{ partitionKey: 'k', data: b64('c0') }]);
        await waitFor(() => fn.records().length >= 3, `b0, b1, c0 delivered (got ${fn.records().map(dataOf)})`, 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');
        assert.deepEqual(fn.records().map(dataOf), ['b0', 'b1', 'c0'], 'the record AT the timestamp is included, those before it are not');
      } finally {
        await fn.close();
      }
    });

    it('shows no checkpoint for a LATEST mapping until it is done with a record', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'latest-cp', shardCount: 1 });
        await t.engine.createFunction({ name: 'latest-cp-fn', url: fn.url });
        await t.engine.putRecords('latest-cp', ['old0', 'old1'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        const mapping = await t.engine.createMapping({ streamName: 'latest-cp', functionName: 'latest-cp-fn', startingPosition: 'LATEST' });
        const before = await waitFor(async () => (await t.engine.lag(mapping.id))[0], 'the lease');
        assert.equal(before.checkpointSequenceNumber, null, 'null before the first record, as the contract says');
        assert.equal(before.recordsBehind, 0, 'the older records are not behind');
        const put = await t.engine.putRecords('latest-cp', [{ partitionKey: 'k', data: b64('new0') }]);
        await waitFor(() => fn.records().some((r) => dataOf(r) === 'new0'), 'the new record delivered', 10_000);
        const after = await waitFor(async () => {
          const [row] = await t.engine.lag(mapping.id);
          return row?.checkpointSequenceNumber ? row : undefined;
        }, 'the checkpoint after it');
        assert.equal(after.checkpointSequenceNumber, put.records[0]!.sequenceNumber);
        assert.deepEqual(fn.records().map(dataOf), ['new0']);
      } finally {
        await fn.close();
      }
    });

    it('gives up after maximumRetryAttempts (2 → 3 invocations) with one RETRIES_EXHAUSTED row, then moves on', async () => {
      const onFailure: any[] = [];
      const sink = await functionServer((body) => { onFailure.push(body); return {}; });
      const fn = await functionServer((event) => (event.Records.some((r: any) => dataOf(r) === 'bad') ? FAIL : { body: null }));
      try {
        await t.engine.catalog.create({ name: 'retry', shardCount: 1 });
        await t.engine.createFunction({ name: 'retry-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'retry', functionName: 'retry-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10,
          maximumRetryAttempts: 2, onFailureUrl: sink.url,
        });
        const put = await t.engine.putRecords('retry', ['bad', 'x1', 'x2'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await waitFor(() => onFailure.length >= 1, 'the discarded batch reported', 10_000);
        await t.engine.putRecords('retry', ['later0', 'later1'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await waitFor(() => fn.records().some((r) => dataOf(r) === 'later1'), 'later records delivered', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');

        const failing = fn.received.filter((r) => r.body.Records.some((x: any) => dataOf(x) === 'bad'));
        assert.equal(failing.length, 3, 'first invocation + 2 retries, no more');
        for (const r of failing) assert.deepEqual(r.body.Records.map(dataOf), ['bad', 'x1', 'x2'], 'each retry carries the same records');
        assert.deepEqual(fn.received.filter((r) => !failing.includes(r)).flatMap((r) => r.body.Records.map(dataOf)), ['later0', 'later1']);

        const failures = await failuresOf(mapping.id);
        assert.deepEqual(failures.map((f) => [f.kind, f.attempt]),
          [['FUNCTION_ERROR', 1], ['FUNCTION_ERROR', 2], ['FUNCTION_ERROR', 3], ['RETRIES_EXHAUSTED', 3]]);
        const discard = failures.at(-1)!;
        assert.equal(discard.recordCount, 3);
        assert.equal(discard.firstSequenceNumber, put.records[0]!.sequenceNumber);
        assert.equal(discard.lastSequenceNumber, put.records[2]!.sequenceNumber);
        const destination = discard.destinationRecord as any;
        assert.equal(destination.requestContext.condition, 'RetryAttemptsExhausted');
        assert.equal(destination.requestContext.approximateInvokeCount, 3);
        assert.deepEqual(destination.responseContext, { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' });
        assert.equal(destination.KinesisBatchInfo.batchSize, 3);
        assert.equal(destination.KinesisBatchInfo.startSequenceNumber, put.records[0]!.sequenceNumber);
        assert.equal(destination.KinesisBatchInfo.endSequenceNumber, put.records[2]!.sequenceNumber);
        assert.equal(onFailure.length, 1);
        assert.deepEqual(onFailure[0], destination, 'onFailureUrl receives exactly the stored destinationRecord');
        for (const f of failures.slice(0, -1)) assert.equal(f.destinationRecord, null, 'only discards carry a destinationRecord');

        const invocations = await invocationsOf(mapping.id);
        assert.deepEqual(invocations.map((i) => [i.outcome, i.attempt]),
          [['FUNCTION_ERROR', 1], ['FUNCTION_ERROR', 2], ['FUNCTION_ERROR', 3], ['OK', 1]]);
      } finally {
        await fn.close();
        await sink.close();
      }
    });

    it('an invalid batchItemFailures answer fails the whole batch, and its discard says the function did not error', async () => {
      const onFailure: any[] = [];
      const sink = await functionServer((body) => { onFailure.push(body); return {}; });
      const fn = await functionServer(() => ({ body: { batchItemFailures: [{ itemIdentifier: '' }] } }));
      try {
        await t.engine.catalog.create({ name: 'bad-answer', shardCount: 1 });
        await t.engine.createFunction({ name: 'bad-answer-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'bad-answer', functionName: 'bad-answer-fn', startingPosition: 'TRIM_HORIZON', batchSize: 10,
          maximumRetryAttempts: 2, onFailureUrl: sink.url, functionResponseTypes: ['ReportBatchItemFailures'],
        });
        await t.engine.putRecords('bad-answer', ['a', 'b'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await waitFor(() => onFailure.length >= 1, 'the batch discarded after its retries', 10_000);
        assert.equal(fn.received.length, 3, 'the whole batch, retried twice');
        for (const r of fn.received) assert.deepEqual(r.body.Records.map(dataOf), ['a', 'b']);
        const destination = onFailure[0];
        assert.equal(destination.requestContext.condition, 'RetryAttemptsExhausted');
        assert.equal(destination.requestContext.approximateInvokeCount, 3);
        assert.equal(JSON.stringify(destination.responseContext), '{"statusCode":200,"executedVersion":"$LATEST","functionError":null}');
        assert.deepEqual((await failuresOf(mapping.id)).map((f) => f.kind), ['FUNCTION_ERROR', 'FUNCTION_ERROR', 'FUNCTION_ERROR', 'RETRIES_EXHAUSTED']);
      } finally {
        await fn.close();
        await sink.close();
      }
    });

    it('discards records older than maximumRecordAgeSeconds as RECORD_EXPIRED without invoking', async () => {
      const onFailure: any[] = [];
      const sink = await functionServer((body) => { onFailure.push(body); return {}; });
      const fn = await functionServer();
      try {
        const stream = await t.engine.catalog.create({ name: 'aged', shardCount: 1 });
        await t.engine.createFunction({ name: 'aged-fn', url: fn.url });
        const put = await t.engine.putRecords('aged', ['old0', 'old1', 'old2', 'old3'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await t.engine.handle.query(sql`
          update records set arrived_at = arrived_at - interval '10 minutes'
           where shard_key in (select key from shards where stream_id = ${stream.id})`);
        const mapping = await t.engine.createMapping({
          streamName: 'aged', functionName: 'aged-fn', startingPosition: 'TRIM_HORIZON', maximumRecordAgeSeconds: 60, onFailureUrl: sink.url,
        });
        await waitFor(async () => (await failuresOf(mapping.id)).length > 0, 'expired records discarded', 10_000);
        assert.equal(fn.received.length, 0, 'expired records are not sent to the function');
        await t.engine.putRecords('aged', [{ partitionKey: 'k', data: b64('fresh') }]);
        await waitFor(() => fn.records().length >= 1, 'the fresh record delivered', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');
        assert.deepEqual(fn.records().map(dataOf), ['fresh']);

        const failures = await failuresOf(mapping.id);
        assert.deepEqual(failures.map((f) => f.kind), ['RECORD_EXPIRED']);
        assert.equal(failures[0]!.recordCount, 4);
        const destination = failures[0]!.destinationRecord as any;
        assert.equal(destination.requestContext.condition, 'RecordAgeExceeded');
        assert.equal(destination.requestContext.approximateInvokeCount, 1);
        assert.ok(!('responseContext' in destination), 'no responseContext: the function did not run');
        assert.equal(destination.KinesisBatchInfo.batchSize, 4);
        assert.equal(destination.KinesisBatchInfo.startSequenceNumber, put.records[0]!.sequenceNumber);
        assert.equal(destination.KinesisBatchInfo.endSequenceNumber, put.records[3]!.sequenceNumber);
        assert.ok(Date.now() - Date.parse(destination.KinesisBatchInfo.approximateArrivalOfFirstRecord) > 9 * 60_000);
        await waitFor(() => onFailure.length >= 1, 'on-failure record posted');
        assert.deepEqual(onFailure, [destination]);
        const invocations = await invocationsOf(mapping.id);
        assert.deepEqual(invocations.map((i) => [i.outcome, i.recordCount]), [['OK', 1]], 'only the fresh record was invoked');
      } finally {
        await fn.close();
        await sink.close();
      }
    });

    it('records a function timeout as a TIMEOUT invocation and failure, then continues once the function answers', async () => {
      writeFileSync(join(functionsDir, 'hang-once.mjs'), `
        const state = (globalThis[${JSON.stringify(`hangOnce-${backend.name}`)}] ??= { calls: 0, seen: [] });
        export async function handler(event) {
          state.calls++;
          if (state.calls === 1) return new Promise(() => {});
          for (const r of event.Records) state.seen.push(Buffer.from(r.kinesis.data, 'base64').toString());
          return null;
        }`);
      const state = () => (globalThis as any)[`hangOnce-${backend.name}`] as { calls: number; seen: string[] } | undefined;
      await t.engine.catalog.create({ name: 'slow', shardCount: 1 });
      await t.engine.createFunction({ name: 'slow-fn', module: 'hang-once.mjs#handler', timeoutSeconds: 1 });
      const mapping = await t.engine.createMapping({ streamName: 'slow', functionName: 'slow-fn', startingPosition: 'TRIM_HORIZON' });
      const put = await t.engine.putRecords('slow', ['s0', 's1'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
      await waitFor(() => (state()?.seen.length ?? 0) >= 2, 'delivered after the timeout', 10_000);
      await t.engine.putRecords('slow', [{ partitionKey: 'k', data: b64('s2') }]);
      await waitFor(() => (state()?.seen.length ?? 0) >= 3, 'later record delivered', 10_000);
      await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');
      assert.deepEqual(state()!.seen, ['s0', 's1', 's2']);
      assert.equal(state()!.calls, 3);

      const invocations = await invocationsOf(mapping.id);
      assert.deepEqual(invocations.map((i) => [i.outcome, i.attempt, i.recordCount]), [['TIMEOUT', 1, 2], ['OK', 2, 2], ['OK', 1, 1]]);
      assert.equal(invocations[0]!.firstSequenceNumber, put.records[0]!.sequenceNumber);
      assert.equal(invocations[1]!.firstSequenceNumber, put.records[0]!.sequenceNumber, 'the same batch is retried');
      assert.match(invocations[0]!.error ?? '', /Task timed out after 1\.00 seconds/);
      assert.ok(invocations[0]!.durationMs >= 950, `a timeout lasts the timeout (${invocations[0]!.durationMs} ms)`);
      const failures = await failuresOf(mapping.id);
      assert.deepEqual(failures.map((f) => [f.kind, f.attempt, f.recordCount, f.destinationRecord]), [['TIMEOUT', 1, 2, null]]);
    });

    it('retries a THROTTLED batch without counting it: no failure rows, delivered once, even with maximumRetryAttempts 0', async () => {
      const fn = await functionServer((_event, n) => (n <= 3
        ? { status: 429, headers: { 'x-amzn-ErrorType': 'TooManyRequestsException' }, body: { Type: 'User', message: 'Rate Exceeded.' } }
        : { body: null }));
      try {
        await t.engine.catalog.create({ name: 'throttle', shardCount: 1 });
        await t.engine.createFunction({ name: 'throttle-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'throttle', functionName: 'throttle-fn', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 0,
        });
        await t.engine.putRecords('throttle', ['t0', 't1', 't2'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await waitFor(() => fn.received.length >= 4, 'delivered after three throttles', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint past the batch');
        await t.engine.putRecords('throttle', [{ partitionKey: 'k', data: b64('t3') }]);
        await waitFor(() => fn.received.length >= 5, 'the next record delivered');
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');

        assert.deepEqual(fn.received.map((r) => r.body.Records.map(dataOf)),
          [['t0', 't1', 't2'], ['t0', 't1', 't2'], ['t0', 't1', 't2'], ['t0', 't1', 't2'], ['t3']]);
        const invocations = await invocationsOf(mapping.id);
        assert.deepEqual(invocations.map((i) => [i.outcome, i.attempt]),
          [['THROTTLED', 1], ['THROTTLED', 1], ['THROTTLED', 1], ['OK', 1], ['OK', 1]], 'throttles do not consume attempts');
        assert.match(invocations[0]!.error ?? '', /TooManyRequestsException/);
        assert.deepEqual(await failuresOf(mapping.id), [], 'throttles are not failures');
        assert.equal((await t.engine.lag(mapping.id))[0]!.consecutiveFailures, 0);
      } finally {
        await fn.close();
      }
    });

    it('fills a batch during maximumBatchingWindowSeconds, and invokes at once when batchSize is reached', async () => {
      const fn = await functionServer();
      const full = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'window', shardCount: 1 });
        await t.engine.createFunction({ name: 'window-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'window', functionName: 'window-fn', startingPosition: 'TRIM_HORIZON', batchSize: 100, maximumBatchingWindowSeconds: 3,
        });
        await waitFor(async () => (await t.engine.lag(mapping.id))[0]?.owner, 'lane running');
        const started = Date.now();
        for (let i = 0; i < 5; i++) await t.engine.putRecords('window', [{ partitionKey: 'k', data: b64(`w${i}`) }]);
        const wrote = Date.now();
        await waitFor(() => fn.records().length >= 5, 'five records delivered', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');
        // Five puts well inside the 3 s window, even on a loaded machine.
        assert.ok(wrote - started < 2500, `the writes were quick (${wrote - started} ms)`);
        assert.equal(fn.received.length, 1, 'one invocation for the five records');
        assert.deepEqual(fn.received[0]!.body.Records.map(dataOf), ['w0', 'w1', 'w2', 'w3', 'w4']);
        assert.ok(fn.received[0]!.at - started >= 2900, `the window was waited (${fn.received[0]!.at - started} ms)`);

        await t.engine.catalog.create({ name: 'window-full', shardCount: 1 });
        await t.engine.createFunction({ name: 'window-full-fn', url: full.url });
        const fullMapping = await t.engine.createMapping({
          streamName: 'window-full', functionName: 'window-full-fn', startingPosition: 'TRIM_HORIZON', batchSize: 5, maximumBatchingWindowSeconds: 20,
        });
        await waitFor(async () => (await t.engine.lag(fullMapping.id))[0]?.owner, 'lane running');
        const putAt = Date.now();
        await t.engine.putRecords('window-full', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'k', data: b64(`f${i}`) })));
        // Far less than the 20 s window: a full batch does not wait for it.
        await waitFor(() => full.records().length >= 5, 'the full batch delivered before the window', 15_000);
        assert.ok(full.received[0]!.at - putAt < 15_000);
        assert.deepEqual(full.received.map((r) => r.body.Records.map(dataOf)), [['f0', 'f1', 'f2', 'f3', 'f4']]);
      } finally {
        await fn.close();
        await full.close();
      }
    });

    it('applies updates to running lanes; disable keeps the checkpoint, enable resumes from it; delete stops and removes leases', async () => {
      const fn = await functionServer();
      const control = await functionServer();
      try {
        // Lanes of earlier tests' (deleted) mappings have ended: the lane count below is this test's.
        await waitFor(() => t.engine.poller!.laneCount === 0, 'no lanes left from earlier tests');
        await t.engine.catalog.create({ name: 'upd', shardCount: 1 });
        await t.engine.createFunction({ name: 'upd-fn', url: fn.url });
        await t.engine.createFunction({ name: 'upd-control', url: control.url });
        const mapping = await t.engine.createMapping({ streamName: 'upd', functionName: 'upd-fn', startingPosition: 'TRIM_HORIZON', batchSize: 2 });
        const controlMapping = await t.engine.createMapping({ streamName: 'upd', functionName: 'upd-control', startingPosition: 'TRIM_HORIZON' });
        const all: string[] = [];
        const put = async (prefix: string, n: number) => {
          const data = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
          all.push(...data);
          return t.engine.putRecords('upd', data.map((d) => ({ partitionKey: 'k', data: b64(d) })));
        };
        const got = (server: typeof fn, data: string) => () => server.records().some((r) => dataOf(r) === data);

        await put('a', 6);
        await waitFor(got(fn, 'a5'), 'first records delivered', 10_000);
        assert.deepEqual(fn.received.map((r) => r.body.Records.length), [2, 2, 2], 'batchSize 2');

        const updated = await t.engine.updateMapping(mapping.id, { batchSize: 50 });
        assert.equal(updated.batchSize, 50);
        assert.equal(updated.version, mapping.version + 1);
        const before = fn.received.length;
        await put('b', 30);
        await waitFor(got(fn, 'b29'), 'records after the update delivered', 10_000);
        const sizes = fn.received.slice(before).map((r) => r.body.Records.length);
        assert.ok(Math.max(...sizes) >= 28 && sizes.length <= 2, `bigger batches without a restart: ${sizes}`);

        // Disable: the lane stops and hands its lease back; the checkpoint stays.
        const caughtUp = await waitFor(() => lagCaughtUp(mapping.id), 'caught up before disabling');
        assert.equal((await t.engine.updateMapping(mapping.id, { enabled: false })).state, 'DISABLED');
        await waitFor(async () => (await t.engine.lag(mapping.id)).every((r) => r.owner === null), 'lease released', 10_000);
        const deliveredBefore = fn.records().length;
        await put('c', 5);
        await waitFor(got(control, 'c4'), 'the control mapping delivered the records written while disabled', 10_000);
        await waitFor(() => lagCaughtUp(controlMapping.id), 'control caught up');
        assert.equal(fn.records().length, deliveredBefore, 'nothing delivered while disabled');
        const disabledLag = await t.engine.lag(mapping.id);
        assert.equal(disabledLag[0]!.checkpointSequenceNumber, caughtUp[0]!.checkpointSequenceNumber, 'the checkpoint is kept');
        assert.equal(disabledLag[0]!.recordsBehind, 5);

        assert.equal((await t.engine.updateMapping(mapping.id, { enabled: true })).state, 'ENABLED');
        await waitFor(got(fn, 'c4'), 'delivery resumed', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'caught up after enabling');
        assert.deepEqual(fn.records().map(dataOf), all, 'every record once, in order: nothing lost, nothing skipped');

        // Delete: leases go at once; the lane ends; nothing more is delivered.
        assert.equal(t.engine.poller!.laneCount, 2);
        assert.equal(await t.engine.deleteMapping(mapping.id), true);
        assert.deepEqual(await t.engine.lag(mapping.id), [], 'leases removed');
        assert.equal(await t.engine.mappings.find(mapping.id), undefined);
        await waitFor(() => t.engine.poller!.laneCount === 1, 'the lane ended');
        const count = fn.records().length;
        await put('d', 3);
        await waitFor(got(control, 'd2'), 'the control mapping delivered the records written after the delete', 10_000);
        await waitFor(() => lagCaughtUp(controlMapping.id), 'control caught up');
        assert.equal(fn.records().length, count, 'nothing delivered after delete');
        assert.deepEqual(control.records().map(dataOf), all, 'the control mapping saw everything once, in order');
      } finally {
        await fn.close();
        await control.close();
      }
    });

    /** Partition keys whose records go to `lane` of `count` (the lane reader's hash, computed by the database). */
    const keysOfLane = async (lane: number, count: number, n: number, prefix: string) => {
      const rows = await t.engine.handle.query<{ k: string }>(sql`
        select k from (select ${prefix} || i as k from generate_series(1, 500) i) c
         where mod(hashtext(k)::bigint + 2147483648, ${count}::int) = ${lane}::int limit ${n}::int`);
      return rows.map((r) => r.k);
    };

    it('skips no record when parallelizationFactor changes while a lane is behind the others', async () => {
      let fixed = false;
      const fn = await functionServer((event) => (!fixed && event.Records.some((r: any) => dataOf(r) === 'bad') ? FAIL : { body: null }));
      try {
        await t.engine.catalog.create({ name: 'relane', shardCount: 1 });
        await t.engine.createFunction({ name: 'relane-fn', url: fn.url });
        const mapping = await t.engine.createMapping({ streamName: 'relane', functionName: 'relane-fn', startingPosition: 'TRIM_HORIZON', parallelizationFactor: 2, batchSize: 5 });
        const [stuckKey, ...behind] = await keysOfLane(1, 2, 6, 'one-');
        const ahead = await keysOfLane(0, 2, 5, 'zero-');
        // Lane 1 is stuck on "bad" with its other records behind it; lane 0's records come
        // later in the shard and are all delivered, so its checkpoint is past lane 1's records.
        await t.engine.putRecords('relane', [
          { partitionKey: stuckKey!, data: b64('bad') },
          ...behind.map((k, i) => ({ partitionKey: k, data: b64(`behind${i}`) })),
          ...ahead.map((k, i) => ({ partitionKey: k, data: b64(`ahead${i}`) })),
        ]);
        await waitFor(() => ahead.every((_, i) => fn.records().some((r) => dataOf(r) === `ahead${i}`)) && fn.received.filter((r) => r.body.Records.some((x: any) => dataOf(x) === 'bad')).length >= 2,
          'lane 0 delivered, lane 1 retrying', 15_000);
        await t.engine.updateMapping(mapping.id, { parallelizationFactor: 1 });
        fixed = true;
        await waitFor(() => behind.every((_, i) => fn.records().some((r) => dataOf(r) === `behind${i}`)), 'lane 1\'s records delivered after the change', 15_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'caught up on the one lane left', 15_000);
        const moves = await t.engine.checkpointMoves(mapping.id);
        assert.ok(moves.some((m) => m.reason === 'parallelizationFactor 2 -> 1' && m.lane === 0), 'the rewind is in the checkpoint ledger');
      } finally {
        await fn.close();
      }
    });

    it('keeps a child shard waiting for its parent when parallelizationFactor changes', async () => {
      let fixed = false;
      const fn = await functionServer((event) => (!fixed && event.Records.some((r: any) => dataOf(r) === 'bad') ? FAIL : { body: null }));
      try {
        await t.engine.catalog.create({ name: 'relane-split', shardCount: 1 });
        await t.engine.createFunction({ name: 'relane-split-fn', url: fn.url });
        const mapping = await t.engine.createMapping({ streamName: 'relane-split', functionName: 'relane-split-fn', startingPosition: 'TRIM_HORIZON' });
        await t.engine.putRecords('relane-split', [{ partitionKey: 'k', data: b64('bad') }]);
        await waitFor(() => fn.received.length >= 2, 'the parent\'s batch fails and is retried', 10_000);
        const [parent] = await t.engine.catalog.shards(await t.engine.catalog.get('relane-split'), 'OPEN');
        await t.engine.splitShard('relane-split', parent!.shardId, (2n ** 127n).toString());
        await t.engine.putRecords('relane-split', Array.from({ length: 6 }, (_, i) => ({ partitionKey: `c${i}`, data: b64(`child${i}`) })));
        await waitFor(async () => (await t.engine.lag(mapping.id)).length === 3, 'the children\'s leases', 10_000);
        await t.engine.updateMapping(mapping.id, { parallelizationFactor: 2 });
        const lag = await t.engine.lag(mapping.id);
        assert.equal(lag.length, 6, 'two lanes on each of the three shards');
        for (const row of lag.filter((r) => r.shardId !== parent!.shardId)) assert.equal(row.state, 'WAITING_FOR_PARENT', `${row.shardId} lane ${row.lane}`);
        await new Promise((resolve) => setTimeout(resolve, 500)); // lanes poll every 50 ms here
        assert.ok(!fn.records().some((r) => dataOf(r).startsWith('child')), 'no child record while the parent is stuck');
        fixed = true;
        await waitFor(() => Array.from({ length: 6 }, (_, i) => `child${i}`).every((d) => fn.records().some((r) => dataOf(r) === d)), 'the children after the parent', 15_000);
        const firstChild = fn.received.findIndex((r) => r.body.Records.some((x: any) => dataOf(x).startsWith('child')));
        const parentDone = fn.received.findLastIndex((r) => r.body.Records.some((x: any) => dataOf(x) === 'bad'));
        assert.ok(parentDone < firstChild, 'the parent\'s record before any child\'s');
      } finally {
        await fn.close();
      }
    });

    it('a disabled mapping stops retrying a failing batch, and an update of its settings reaches the retrying lane', async () => {
      let fixed = false;
      const fn = await functionServer(() => (fixed ? { body: null } : FAIL));
      try {
        await t.engine.catalog.create({ name: 'stuck', shardCount: 1 });
        await t.engine.createFunction({ name: 'stuck-fn', url: fn.url });
        const mapping = await t.engine.createMapping({ streamName: 'stuck', functionName: 'stuck-fn', startingPosition: 'TRIM_HORIZON' });
        await t.engine.putRecords('stuck', ['p0', 'p1'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
        await waitFor(() => fn.received.length >= 2, 'the batch fails and is retried', 10_000);
        await t.engine.updateMapping(mapping.id, { enabled: false });
        await waitFor(async () => (await t.engine.lag(mapping.id)).every((r) => r.owner === null), 'the retrying lane ends when disabled', 10_000);
        const calls = fn.received.length;
        const lag = (await t.engine.lag(mapping.id))[0]!;
        assert.equal(lag.checkpointSequenceNumber, null, 'nothing acknowledged, nothing checkpointed');
        assert.equal(lag.recordsBehind, 2);
        // Re-enabled with maximumRetryAttempts 0, the stuck batch is discarded after one attempt.
        await t.engine.updateMapping(mapping.id, { maximumRetryAttempts: 0 });
        assert.equal(fn.received.length, calls, 'no invocation while disabled');
        await t.engine.updateMapping(mapping.id, { enabled: true });
        await waitFor(async () => (await failuresOf(mapping.id)).some((f) => f.kind === 'RETRIES_EXHAUSTED'), 'discarded under the new setting', 10_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'moved past the discarded batch');
        assert.equal(fn.received.length, calls + 1);
        fixed = true;
        await t.engine.putRecords('stuck', [{ partitionKey: 'k', data: b64('p2') }]);
        await waitFor(() => fn.records().some((r) => dataOf(r) === 'p2'), 'later records delivered');
      } finally {
        await fn.close();
      }
    });

    it('delivers DynamoDB INSERT / MODIFY / REMOVE in the exact AWS event record shape, in order per item', async () => {
      const fn = await functionServer();
      try {
        await t.engine.createFunction({ name: 'ddb-fn', url: fn.url });
        const views = ['NEW_AND_OLD_IMAGES', 'NEW_IMAGE', 'OLD_IMAGE', 'KEYS_ONLY'] as const;
        const streams = new Map<string, { arn: string; view: string }>();
        const arnOf = new Map<string, string>();
        for (const view of views) {
          const name = `ddb-${view.toLowerCase().replace(/_/g, '-')}`;
          const stream = await t.engine.catalog.create({ name, kind: 'DYNAMODB', shardCount: 2, viewType: view });
          streams.set(stream.arn, { arn: stream.arn, view });
          arnOf.set(name, stream.arn);
          await t.engine.createMapping({ streamName: name, functionName: 'ddb-fn', startingPosition: 'TRIM_HORIZON', batchSize: 3 });
        }
        // Four items, each INSERT → MODIFY → MODIFY → REMOVE, interleaved over several calls.
        const keysOf = (i: number) => ({ pk: S(`item-${i}`), sk: N(String(i)) });
        const versions = (i: number) => [{ v: N('1'), tag: S(`t${i}`) }, { v: N('2'), tag: S(`t${i}`) }, { v: N('3') }];
        const expected = new Map<string, { eventName: string; keys: unknown; newImage?: unknown; oldImage?: unknown }>();
        for (const view of views) {
          const name = `ddb-${view.toLowerCase().replace(/_/g, '-')}`;
          for (let step = 0; step < 4; step++) {
            const changes = [0, 1, 2, 3].map((i) => ({ keys: keysOf(i), ...(step < 3 ? { newImage: versions(i)[step] } : {}) }));
            const result = await t.engine.writeItems(name, changes);
            assert.equal(result.failedRecordCount, 0);
            result.records.forEach((entry, i) => {
              const keys = keysOf(i);
              const whole = (image: object | undefined) => (image ? { ...keys, ...image } : undefined);
              expected.set(`${arnOf.get(name)}|${entry.sequenceNumber}`, {
                eventName: ['INSERT', 'MODIFY', 'MODIFY', 'REMOVE'][step]!,
                keys,
                newImage: whole(versions(i)[step]),
                oldImage: whole(step === 0 ? undefined : versions(i)[step - 1]),
              });
            });
          }
        }
        await waitFor(() => fn.records().length >= expected.size, `${expected.size} records (got ${fn.records().length})`, 15_000);
        await waitFor(async () => {
          for (const m of await t.engine.mappings.list()) if (!(await lagCaughtUp(m.id, 2))) return false;
          return true;
        }, 'every mapping caught up');
        const records = fn.records();
        assert.equal(records.length, expected.size, 'each record once');
        const eventIds = new Set<string>();
        for (const body of fn.received.map((r) => r.body)) {
          assert.deepEqual(Object.keys(body), ['Records']);
          assert.ok(body.Records.length <= 3, 'batchSize respected');
          assert.equal(new Set(body.Records.map((r: any) => r.eventSourceARN)).size, 1, 'a batch comes from one stream');
        }
        for (const record of records) {
          assert.deepEqual(Object.keys(record), ['eventID', 'eventName', 'eventVersion', 'eventSource', 'awsRegion', 'dynamodb', 'eventSourceARN']);
          const stream = streams.get(record.eventSourceARN)!;
          assert.ok(stream, `eventSourceARN is a stream ARN: ${record.eventSourceARN}`);
          assert.match(record.eventSourceARN, /^arn:aws:dynamodb:us-east-1:000000000000:table\/ddb-[a-z-]+\/stream\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/);
          assert.match(record.eventID, /^[0-9a-f]{32}$/);
          eventIds.add(record.eventID);
          assert.equal(record.eventVersion, '1.1');
          assert.equal(record.eventSource, 'aws:dynamodb');
          assert.equal(record.awsRegion, 'us-east-1');
          const d = record.dynamodb;
          const want = expected.get(`${record.eventSourceARN}|${d.SequenceNumber}`)!;
          assert.ok(want, `SequenceNumber ${d.SequenceNumber} is one writeItems returned`);
          assert.equal(record.eventName, want.eventName);
          const withNew = (stream.view === 'NEW_IMAGE' || stream.view === 'NEW_AND_OLD_IMAGES') && want.eventName !== 'REMOVE';
          const withOld = (stream.view === 'OLD_IMAGE' || stream.view === 'NEW_AND_OLD_IMAGES') && want.eventName !== 'INSERT';
          assert.deepEqual(Object.keys(d).sort(), [
            'ApproximateCreationDateTime', 'Keys', ...(withNew ? ['NewImage'] : []), ...(withOld ? ['OldImage'] : []),
            'SequenceNumber', 'SizeBytes', 'StreamViewType',
          ].sort(), `${stream.view} ${want.eventName}`);
          assert.ok(Number.isInteger(d.ApproximateCreationDateTime), 'whole epoch seconds');
          assert.ok(Math.abs(d.ApproximateCreationDateTime - Date.now() / 1000) < 120, 'epoch seconds, not milliseconds');
          assert.deepEqual(d.Keys, want.keys);
          if (withNew) assert.deepEqual(d.NewImage, want.newImage, 'images are whole items, keys included');
          if (withOld) assert.deepEqual(d.OldImage, want.oldImage);
          assert.match(d.SequenceNumber, /^\d{21,40}$/);
          assert.ok(Number.isInteger(d.SizeBytes) && d.SizeBytes >= 1);
          assert.equal(d.StreamViewType, stream.view);
        }
        assert.equal(eventIds.size, records.length, 'eventIDs are unique');
        for (const stream of streams.values()) {
          for (let i = 0; i < 4; i++) {
            const names = records.filter((r) => r.eventSourceARN === stream.arn && r.dynamodb.Keys.pk.S === `item-${i}`).map((r) => r.eventName);
            assert.deepEqual(names, ['INSERT', 'MODIFY', 'MODIFY', 'REMOVE'], `item-${i} of ${stream.view} in modification order`);
          }
        }
      } finally {
        await fn.close();
      }
    });

    it('never has more invocations in flight than reservedConcurrency, whatever parallelizationFactor', async () => {
      const limited = await functionServer(() => ({ body: null, delayMs: 25 }));
      const free = await functionServer(() => ({ body: null, delayMs: 25 }));
      try {
        const records = Array.from({ length: 120 }, (_, i) => ({ partitionKey: `key-${i % 40}`, data: b64(`r${i}`) }));
        for (const [name, server, reservedConcurrency] of [['rc-limited', limited, 1], ['rc-free', free, null]] as const) {
          await t.engine.catalog.create({ name, shardCount: 2 });
          await t.engine.createFunction({ name: `${name}-fn`, url: server.url, reservedConcurrency });
          await t.engine.createMapping({ streamName: name, functionName: `${name}-fn`, startingPosition: 'TRIM_HORIZON', batchSize: 5, parallelizationFactor: 4 });
        }
        await Promise.all([t.engine.putRecords('rc-limited', records), t.engine.putRecords('rc-free', records)]);
        await waitFor(() => limited.records().length >= 120 && free.records().length >= 120,
          `all delivered (limited ${limited.records().length}, free ${free.records().length})`, 20_000);
        assert.ok(free.maxInFlight > 1, `without a reservation the 8 lanes overlap (max ${free.maxInFlight}): the setup can show concurrency`);
        assert.equal(limited.maxInFlight, 1, 'reservedConcurrency 1: one invocation at a time');
        assert.deepEqual(limited.records().map(dataOf).sort(), records.map((r) => Buffer.from(r.data, 'base64').toString()).sort());
        for (let k = 0; k < 40; k++) {
          const seq = limited.records().filter((r) => r.kinesis.partitionKey === `key-${k}`).map((r) => Number(dataOf(r).slice(1)));
          assert.deepEqual(seq, [...seq].sort((a, b) => a - b), `key-${k} in order`);
        }
      } finally {
        await limited.close();
        await free.close();
      }
    });

    it('cuts batches at the 6 MB payload limit and still delivers every record', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'big', shardCount: 1 });
        await t.engine.createFunction({ name: 'big-fn', url: fn.url });
        const sequenceNumbers: string[] = [];
        for (let call = 0; call < 2; call++) {
          // 20 × 200 KiB = 4000 KiB per call: under the 5 MiB per-call limit.
          const put = await t.engine.putRecords('big', Array.from({ length: 20 }, (_, i) => ({
            partitionKey: `k${call}-${i}`, data: randomBytes(200 * 1024).toString('base64'),
          })));
          assert.equal(put.failedRecordCount, 0);
          sequenceNumbers.push(...put.records.map((r) => r.sequenceNumber!));
        }
        // Created after the writes: the first poll sees ~10.7 MB of event records with batchSize 100.
        const mapping = await t.engine.createMapping({ streamName: 'big', functionName: 'big-fn', startingPosition: 'TRIM_HORIZON', batchSize: 100 });
        await waitFor(() => fn.records().length >= 40, `40 records (got ${fn.records().length})`, 20_000);
        await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint at the end');
        const limit = 6 * 1024 * 1024;
        for (const r of fn.received) assert.ok(r.bytes <= limit, `an invocation of ${r.bytes} bytes exceeds ${limit}`);
        assert.ok(fn.received.length >= 2, 'the 40 records did not fit one invocation');
        assert.ok(fn.received[0]!.body.Records.length < 40);
        assert.deepEqual(fn.records().map((r) => r.kinesis.sequenceNumber), sequenceNumbers, 'every record once, in order');
        for (const r of fn.records()) assert.equal(Buffer.from(r.kinesis.data, 'base64').length, 200 * 1024);
      } finally {
        await fn.close();
      }
    });

    it('leaves room in the 6 MB payload for a tumbling window\'s state', async () => {
      // The function keeps 900 KiB of state: records and state together must stay within 6 MB.
      const fn = await functionServer(() => ({ body: { state: { pad: 'x'.repeat(900 * 1024) } } }));
      try {
        await t.engine.catalog.create({ name: 'big-window', shardCount: 1 });
        await t.engine.createFunction({ name: 'big-window-fn', url: fn.url });
        for (let call = 0; call < 3; call++) {
          await t.engine.putRecords('big-window', Array.from({ length: 20 }, (_, i) => ({
            partitionKey: `k${call}-${i}`, data: randomBytes(200 * 1024).toString('base64'),
          })));
        }
        await t.engine.createMapping({
          streamName: 'big-window', functionName: 'big-window-fn', startingPosition: 'TRIM_HORIZON', batchSize: 100, tumblingWindowSeconds: 900,
        });
        await waitFor(() => fn.records().length >= 60, `60 records (got ${fn.records().length})`, 20_000);
        const limit = 6 * 1024 * 1024;
        for (const r of fn.received) assert.ok(r.bytes <= limit, `an invocation of ${r.bytes} bytes exceeds ${limit}`);
        assert.equal(new Set(fn.records().map((r) => r.kinesis.sequenceNumber)).size, 60);
      } finally {
        await fn.close();
      }
    });

    it('filters DynamoDB records on eventName: only INSERTs invoked, the rest checkpointed past', async () => {
      const fn = await functionServer();
      try {
        await t.engine.catalog.create({ name: 'ddb-filter', kind: 'DYNAMODB', shardCount: 1 });
        await t.engine.createFunction({ name: 'ddb-filter-fn', url: fn.url });
        const mapping = await t.engine.createMapping({
          streamName: 'ddb-filter', functionName: 'ddb-filter-fn', startingPosition: 'TRIM_HORIZON', filterPatterns: ['{"eventName":["INSERT"]}'],
        });
        const inserts: string[] = [];
        let last = '';
        for (let i = 0; i < 3; i++) {
          const keys = { id: S(`i${i}`) };
          const steps = [{ keys, newImage: { n: N('1') } }, { keys, newImage: { n: N('2') } }, { keys }];
          for (const [step, change] of steps.entries()) {
            const result = await t.engine.writeItems('ddb-filter', [change]);
            if (step === 0) inserts.push(result.records[0]!.sequenceNumber!);
            last = result.records[0]!.sequenceNumber!;
          }
        }
        const lag = await waitFor(() => lagCaughtUp(mapping.id), 'checkpoint past every record', 10_000);
        assert.equal(lag[0]!.checkpointSequenceNumber, last, 'checkpointed past the filtered-out REMOVE at the end');
        assert.deepEqual(fn.records().map((r) => r.eventName), ['INSERT', 'INSERT', 'INSERT']);
        assert.deepEqual(fn.records().map((r) => r.dynamodb.SequenceNumber), inserts);
        const invoked = (await invocationsOf(mapping.id)).reduce((n, i) => n + i.recordCount, 0);
        assert.equal(invoked, 3, 'filtered-out records are never invoked');
      } finally {
        await fn.close();
      }
    });
  });
}
