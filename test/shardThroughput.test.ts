/**
 * Per-shard throughput enforcement (enforceThroughput): the token buckets on their own, then
 * through the real AWS SDK v3 client (no retries) and GraphQL against a real server on each
 * backend. The engine's bucket clock is frozen and stepped by the tests, so which calls are
 * admitted is exact; one test refills on the real clock, awaited with a bounded wait.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ProvisionedThroughputExceededException, PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { type App, buildApp } from '../api/app.ts';
import { ADMIN_ACCESS_KEY_ID } from '../engine/auth/apiTokens.ts';
import type { ShardInfo, StreamInfo } from '../engine/streams/model.ts';
import { SHARD_THROUGHPUT, ShardThroughput } from '../engine/streams/shardThroughput.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const ADMIN_TOKEN = 'throughput-admin-token-0123456789abcdef';
const ACCOUNT = '000000000000';

const streamInfo = (enforceThroughput: boolean): StreamInfo => ({
  id: 1, name: 'orders', kind: 'KINESIS', status: 'ACTIVE', retentionHours: 24, viewType: null, createdAt: new Date(0),
  arn: `arn:aws:kinesis:us-east-1:${ACCOUNT}:stream/orders`, enforceThroughput,
});
const shardInfo = (key: number) => ({ key, shardId: `shardId-00000000000${key}` }) as ShardInfo;

/** Awaits a rejection the SDK raised as ProvisionedThroughputExceededException with HTTP 400. */
async function throttled(promise: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ProvisionedThroughputExceededException, `got ${(error as Error).name}: ${(error as Error).message}`);
    assert.equal(error.$metadata.httpStatusCode, 400);
    assert.match(error.message, message);
    return;
  }
  assert.fail('expected ProvisionedThroughputExceededException, but the call succeeded');
}

describe('ShardThroughput buckets', () => {
  it('admits a prefix of a shard\'s writes by records and by bytes, per shard, refilling with the clock', () => {
    let now = 1_000_000;
    const limiter = new ShardThroughput(() => now);
    const stream = streamInfo(true);
    const [a, b] = [shardInfo(1), shardInfo(2)];
    assert.equal(limiter.admitWrites(stream, a, new Array(800).fill(10)), 800);
    assert.equal(limiter.admitWrites(stream, a, new Array(500).fill(10)), 200, 'records/s: 1,000');
    assert.equal(limiter.admitWrites(stream, a, [10]), 0);
    assert.equal(limiter.admitWrites(stream, b, [600_000, 400_000, 100_000, 1]), 2, 'bytes/s: 1 MiB; a record that does not fit stops the prefix');
    now += 100;
    assert.equal(limiter.admitWrites(stream, a, new Array(150).fill(10)), 100, 'a tenth of a second refills 100 records');
    now += 10_000;
    assert.equal(limiter.admitWrites(stream, a, new Array(1500).fill(10)), 1000, 'the bucket holds one second at most');
    assert.equal(limiter.admitWrites(streamInfo(false), a, new Array(5000).fill(1_000_000)), 5000, 'a stream that does not enforce');
  });

  it('allows 5 reads a second and throttles reads while bytes returned beyond 2 MiB/s are owed', () => {
    let now = 5_000_000;
    const limiter = new ShardThroughput(() => now);
    const stream = streamInfo(true);
    const shard = shardInfo(1);
    for (let i = 0; i < 5; i++) assert.ok(limiter.admitRead(stream, shard), `call ${i + 1}`);
    assert.equal(limiter.admitRead(stream, shard), false, 'sixth call within the second');
    now += 200;
    assert.ok(limiter.admitRead(stream, shard), 'a call token back after 200 ms');
    limiter.chargeRead(stream, shard, 10 * 1024 * 1024);
    now += 2000;
    assert.equal(limiter.admitRead(stream, shard), false, 'still owing 4 MiB after 2 s');
    now += 2000;
    assert.ok(limiter.admitRead(stream, shard), 'debt paid after 4 s');
    assert.ok(limiter.admitRead(streamInfo(false), shard));
  });

  it('refills on the real clock', async () => {
    const limiter = new ShardThroughput();
    const stream = streamInfo(true);
    const shard = shardInfo(1);
    const started = Date.now();
    assert.equal(limiter.admitWrites(stream, shard, [SHARD_THROUGHPUT.writeBytesPerSecond]), 1);
    // A record that does not fit takes nothing, so polling with it does not slow the refill.
    await waitFor(() => limiter.admitWrites(stream, shard, [512 * 1024]) === 1, 'half the write bucket refills', 5000);
    assert.ok(Date.now() - started >= 450, 'half of 1 MiB/s takes half a second');
  });
});

for (const backend of backends) {
  describe(`per-shard throughput through the AWS SDK and GraphQL (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    let kinesis: KinesisClient;
    /** The engine's bucket clock: frozen, stepped by the tests. */
    let now = Date.now();

    before(async () => {
      t = await openTestEngine(backend, { adminToken: ADMIN_TOKEN, throughputClock: () => now, writeRequestsPerSecond: 0 });
      app = buildApp({ engine: t.engine, logError: (e) => console.error('server error:', e) });
      url = await app.start(0, '127.0.0.1');
      kinesis = new KinesisClient({
        endpoint: new URL(url).origin, region: 'us-east-1', credentials: { accessKeyId: ADMIN_ACCESS_KEY_ID, secretAccessKey: ADMIN_TOKEN },
        maxAttempts: 1,
      });
    });
    after(async () => {
      kinesis.destroy();
      await app.stop();
      await t.close();
    });

    async function gql(query: string, variables?: Record<string, unknown>) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as { data?: any; errors?: { message: string; extensions: { code: string } }[] };
    }
    async function ok(query: string, variables?: Record<string, unknown>) {
      const body = await gql(query, variables);
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data;
    }
    const createStream = (name: string, enforceThroughput?: boolean) => ok(
      'mutation($input: CreateStreamInput!) { createStream(input: $input) { name enforceThroughput } }',
      { input: { name, shardCount: 1, ...(enforceThroughput === undefined ? {} : { enforceThroughput }) } },
    );
    const entries = (n: number, bytes = 8, from = 0) =>
      Array.from({ length: n }, (_, i) => ({ PartitionKey: `k${from + i}`, Data: Buffer.alloc(bytes, i % 251) }));

    async function readAll(stream: string): Promise<{ PartitionKey?: string }[]> {
      const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({
        StreamName: stream, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON',
      }));
      return (await kinesis.send(new GetRecordsCommand({ ShardIterator }))).Records ?? [];
    }

    it('PutRecords admits what fits the shard, reports the rest per record and writes only the admitted', async () => {
      assert.deepEqual((await createStream('put-limited', true)).createStream, { name: 'put-limited', enforceThroughput: true });
      now += 10_000;
      const first = await kinesis.send(new PutRecordsCommand({ StreamName: 'put-limited', Records: entries(500) }));
      assert.equal(first.FailedRecordCount, 0);
      const second = await kinesis.send(new PutRecordsCommand({ StreamName: 'put-limited', Records: entries(300, 8, 500) }));
      assert.equal(second.FailedRecordCount, 0);
      const third = await kinesis.send(new PutRecordsCommand({ StreamName: 'put-limited', Records: entries(500, 8, 800) }));
      assert.equal(third.FailedRecordCount, 300);
      assert.ok(third.Records!.slice(0, 200).every((r) => r.SequenceNumber && r.ShardId === 'shardId-000000000000' && !r.ErrorCode));
      for (const r of third.Records!.slice(200)) {
        assert.equal(r.ErrorCode, 'ProvisionedThroughputExceededException');
        assert.equal(r.ErrorMessage, `Rate exceeded for shard shardId-000000000000 in stream put-limited under account ${ACCOUNT}.`);
        assert.equal(r.SequenceNumber, undefined);
      }
      const stored = await readAll('put-limited');
      assert.equal(stored.length, 1000);
      assert.deepEqual(stored.map((r) => r.PartitionKey), Array.from({ length: 1000 }, (_, i) => `k${i}`));
    });

    it('PutRecord raises ProvisionedThroughputExceededException over 1 MiB/s, and succeeds once the bucket refills', async () => {
      await createStream('put-one', true);
      now += 10_000;
      const big = Buffer.alloc(700 * 1024, 7);
      await kinesis.send(new PutRecordCommand({ StreamName: 'put-one', PartitionKey: 'a', Data: big }));
      await throttled(kinesis.send(new PutRecordCommand({ StreamName: 'put-one', PartitionKey: 'a', Data: big })),
        /^Rate exceeded for shard shardId-000000000000 in stream put-one under account 000000000000\.$/);
      now += 300;
      await throttled(kinesis.send(new PutRecordCommand({ StreamName: 'put-one', PartitionKey: 'a', Data: big })), /Rate exceeded/);
      now += 400;
      const put = await kinesis.send(new PutRecordCommand({ StreamName: 'put-one', PartitionKey: 'a', Data: big }));
      assert.equal(put.ShardId, 'shardId-000000000000');
      assert.equal((await readAll('put-one')).length, 2);
    });

    it('GetRecords raises ProvisionedThroughputExceededException beyond 5 calls/s and while 2 MiB/s of bytes are owed', async () => {
      await createStream('get-limited', true);
      now += 10_000;
      // 5 records of ~1 MB: each write waits a second of bucket time.
      for (let i = 0; i < 5; i++) {
        await kinesis.send(new PutRecordCommand({ StreamName: 'get-limited', PartitionKey: 'k', Data: Buffer.alloc(1_000_000, i) }));
        now += 1000;
      }
      const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({
        StreamName: 'get-limited', ShardId: 'shardId-000000000000', ShardIteratorType: 'LATEST',
      }));
      let iterator = ShardIterator!;
      for (let i = 0; i < 5; i++) iterator = (await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }))).NextShardIterator!;
      await throttled(kinesis.send(new GetRecordsCommand({ ShardIterator: iterator })),
        /^Rate exceeded for Shard - 000000000000\/get-limited\/shardId-000000000000$/);
      now += 200;
      await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }));

      // One call returns all 5,000,005 bytes; the bucket held 2 MiB, so ~1.38 s of debt follow.
      now += 10_000;
      const { ShardIterator: horizon } = await kinesis.send(new GetShardIteratorCommand({
        StreamName: 'get-limited', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON',
      }));
      const all = await kinesis.send(new GetRecordsCommand({ ShardIterator: horizon }));
      assert.equal(all.Records!.length, 5);
      await throttled(kinesis.send(new GetRecordsCommand({ ShardIterator: all.NextShardIterator })), /Rate exceeded for Shard/);
      now += 1000;
      await throttled(kinesis.send(new GetRecordsCommand({ ShardIterator: all.NextShardIterator })), /Rate exceeded for Shard/);
      now += 400;
      const after = await kinesis.send(new GetRecordsCommand({ ShardIterator: all.NextShardIterator }));
      assert.equal(after.Records!.length, 0);
    });

    it('never throttles a stream that does not enforce', async () => {
      assert.equal((await createStream('free')).createStream.enforceThroughput, false);
      for (let i = 0; i < 4; i++) {
        const put = await kinesis.send(new PutRecordsCommand({ StreamName: 'free', Records: entries(500, 1000, i * 500) }));
        assert.equal(put.FailedRecordCount, 0);
      }
      for (let i = 0; i < 3; i++) {
        await kinesis.send(new PutRecordCommand({ StreamName: 'free', PartitionKey: 'big', Data: Buffer.alloc(1_000_000) }));
      }
      const { ShardIterator } = await kinesis.send(new GetShardIteratorCommand({
        StreamName: 'free', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON',
      }));
      for (let i = 0; i < 10; i++) await kinesis.send(new GetRecordsCommand({ ShardIterator, Limit: 10 }));
      assert.equal((await readAll('free')).length, 2003);
    });

    it('GraphQL: createStream with enforceThroughput, updateStreamThroughput (audited) and putRecords errors per record', async () => {
      await createStream('gql-limited');
      const put = (from: number, n: number) => ok(
        `mutation($records: [PutRecordInput!]!) { putRecords(streamName: "gql-limited", records: $records) {
           failedRecordCount records { shardId sequenceNumber errorCode errorMessage } } }`,
        { records: Array.from({ length: n }, (_, i) => ({ partitionKey: `g${from + i}`, data: b64(`v${from + i}`) })) },
      );
      now += 10_000;
      for (let i = 0; i < 3; i++) assert.equal((await put(i * 500, 500)).putRecords.failedRecordCount, 0, 'not enforcing yet');

      const updated = await ok('mutation { updateStreamThroughput(name: "gql-limited", enforceThroughput: true) { name enforceThroughput } }');
      assert.deepEqual(updated.updateStreamThroughput, { name: 'gql-limited', enforceThroughput: true });
      assert.equal((await ok('{ stream(name: "gql-limited") { enforceThroughput } }')).stream.enforceThroughput, true);
      const log = (await ok('{ auditLog(first: 1) { actor action target details } }')).auditLog[0];
      assert.deepEqual(log, { actor: 'admin', action: 'stream.updateThroughput', target: 'stream:gql-limited', details: { enforceThroughput: true } });

      now += 10_000;
      assert.equal((await put(1500, 500)).putRecords.failedRecordCount, 0);
      assert.equal((await put(2000, 499)).putRecords.failedRecordCount, 0);
      const over = (await put(2499, 2)).putRecords;
      assert.equal(over.failedRecordCount, 1);
      assert.equal(over.records[0].errorCode, null);
      assert.deepEqual(over.records[1], {
        shardId: null, sequenceNumber: null, errorCode: 'ProvisionedThroughputExceededException',
        errorMessage: `Rate exceeded for shard shardId-000000000000 in stream gql-limited under account ${ACCOUNT}.`,
      });

      await ok('mutation { updateStreamThroughput(name: "gql-limited", enforceThroughput: false) { enforceThroughput } }');
      assert.equal((await put(2501, 500)).putRecords.failedRecordCount, 0, 'off again');
      const stored = (await readAll('gql-limited')).map((r) => r.PartitionKey);
      assert.equal(stored.length, 3000, '1,500 before, 1,000 of 1,001 while enforcing, 500 after');
      assert.equal(stored.includes('g2500'), false, 'the throttled record was not written');

      const missing = await gql('mutation { updateStreamThroughput(name: "nope", enforceThroughput: true) { name } }');
      assert.equal(missing.errors?.[0]?.extensions.code, 'STREAM_NOT_FOUND');
      const ddb = await gql('mutation { createStream(input: {name: "table", kind: DYNAMODB, shardCount: 1, enforceThroughput: true}) { name } }');
      assert.equal(ddb.errors?.[0]?.extensions.code, 'INVALID_ARGUMENT');
      assert.match(ddb.errors![0]!.message, /enforceThroughput applies to KINESIS streams only/);
      assert.equal((await ok('{ stream(name: "table") { name } }')).stream, null, 'a rejected create writes nothing');
    });

    it('startCapture and stopCapture record the caller in the audit log', async () => {
      const started = await ok(`mutation { startCapture(input: {endpoint: "http://127.0.0.1:9", stream: "elsewhere", into: "captured"}) { id } }`);
      const id = started.startCapture.id as string;
      await ok('mutation($id: ID!) { stopCapture(id: $id) { state } }', { id });
      const log = (await ok('{ auditLog(first: 2) { actor action target } }')).auditLog;
      assert.deepEqual(log, [
        { actor: 'admin', action: 'capture.stop', target: `capture:${id}` },
        { actor: 'admin', action: 'capture.start', target: `capture:${id}` },
      ]);
    });
  });
}
