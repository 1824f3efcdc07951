/**
 * The Kinesis Data Streams API through the real AWS SDK v3 client against a real server
 * (buildApp on a loopback port), on each backend: the default client (HTTP/2 cleartext) and one
 * given a NodeHttpHandler (HTTP/1.1), every operation, iterator semantics, errors as the SDK's
 * exception classes, and raw CBOR requests as the Java SDKs send them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  AddTagsToStreamCommand, CreateStreamCommand, DecreaseStreamRetentionPeriodCommand, DeleteStreamCommand, DescribeStreamCommand,
  DescribeStreamSummaryCommand, ExpiredIteratorException, ExpiredNextTokenException, GetRecordsCommand, type GetRecordsCommandOutput,
  GetShardIteratorCommand, IncreaseStreamRetentionPeriodCommand, InvalidArgumentException, KinesisClient, LimitExceededException,
  ListShardsCommand, ListStreamsCommand, ListTagsForStreamCommand, MergeShardsCommand, PutRecordCommand, PutRecordsCommand,
  RemoveTagsFromStreamCommand, ResourceInUseException, ResourceNotFoundException, type Shard, type ShardIteratorType,
  SplitShardCommand, UpdateShardCountCommand, ValidationException, paginateListStreams,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Decoder, Encoder, Tag } from 'cbor-x';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine } from './harness.ts';

// The SDK warns once that its 2027 releases will need Node 22; not this suite's concern.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const cborEncoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const cborDecoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** Awaits a rejection that the SDK raised as `type`, with a message matching `message`. */
async function rejectsAs(promise: Promise<unknown>, type: new (...args: never[]) => Error, message?: RegExp): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${(error as Error).name}: ${(error as Error).message}`);
    if (message) assert.match((error as Error).message, message);
    return error as Error;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}

for (const backend of backends) {
  describe(`Kinesis API through @aws-sdk/client-kinesis (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let endpoint: string;
    let graphqlUrl: string;
    let h2: KinesisClient;
    let h1: KinesisClient;
    /** No retries: the SDK retries LimitExceededException as a throttle. */
    let once: KinesisClient;
    /** The iterator clock: advanced by tests to expire iterators. */
    let clockOffsetMs = 0;
    let h2Streams = 0;

    before(async () => {
      t = await openTestEngine(backend);
      app = buildApp({ engine: t.engine, logError: (e) => console.error('server error:', e), aws: { clock: () => Date.now() + clockOffsetMs } });
      app.http2Server.on('stream', () => { h2Streams++; });
      graphqlUrl = await app.start(0, '127.0.0.1');
      endpoint = new URL(graphqlUrl).origin;
      h2 = new KinesisClient({ endpoint, region: 'us-east-1', credentials });
      h1 = new KinesisClient({ endpoint, region: 'us-east-1', credentials, requestHandler: new NodeHttpHandler() });
      once = new KinesisClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    });
    after(async () => {
      h2.destroy();
      h1.destroy();
      once.destroy();
      await app.stop();
      await t.close();
    });

    async function gql(query: string, variables?: Record<string, unknown>) {
      const response = await fetch(graphqlUrl, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: any; errors?: unknown[] };
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data;
    }

    async function iterator(client: KinesisClient, stream: string, shardId: string, type: ShardIteratorType, extra: Record<string, unknown> = {}) {
      const out = await client.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: type, ...extra }));
      assert.ok(out.ShardIterator);
      return out.ShardIterator;
    }

    /** Reads a shard from an iterator until it returns nothing (or the shard ends). */
    async function drain(client: KinesisClient, shardIterator: string, limit?: number) {
      const records: NonNullable<GetRecordsCommandOutput['Records']> = [];
      let it: string | undefined = shardIterator;
      let last: GetRecordsCommandOutput | undefined;
      for (let i = 0; it && i < 100; i++) {
        last = await client.send(new GetRecordsCommand({ ShardIterator: it, Limit: limit }));
        records.push(...(last.Records ?? []));
        if ((last.Records ?? []).length === 0) break;
        it = last.NextShardIterator;
      }
      return { records, last: last!, next: last?.NextShardIterator };
    }

    it('serves the default client over HTTP/2 (h2c) and a NodeHttpHandler client over HTTP/1.1, on the GraphQL port', async () => {
      const before = h2Streams;
      await h1.send(new ListStreamsCommand({}));
      assert.equal(h2Streams, before, 'the NodeHttpHandler client spoke HTTP/1.1');
      await h2.send(new ListStreamsCommand({}));
      assert.ok(h2Streams > before, 'the default client spoke HTTP/2');
      assert.equal((await fetch(`${endpoint}/healthz`)).status, 200, 'plain routes still answer');
    });

    it('creates, describes and lists streams (by StreamName or StreamARN)', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'orders', ShardCount: 2 }));
      await h1.send(new CreateStreamCommand({ StreamName: 'defaults' }));
      await t.engine.createStream({ name: 'a-table', kind: 'DYNAMODB', shardCount: 1 });

      const described = (await h2.send(new DescribeStreamCommand({ StreamName: 'orders' }))).StreamDescription!;
      assert.equal(described.StreamARN, 'arn:aws:kinesis:us-east-1:000000000000:stream/orders');
      assert.equal(described.StreamStatus, 'ACTIVE');
      assert.equal(described.RetentionPeriodHours, 24);
      assert.equal(described.HasMoreShards, false);
      assert.ok(described.StreamCreationTimestamp instanceof Date);
      assert.ok(Math.abs(described.StreamCreationTimestamp.getTime() - Date.now()) < 60_000);
      assert.deepEqual(described.Shards!.map((s) => [s.ShardId, s.HashKeyRange!.StartingHashKey, s.HashKeyRange!.EndingHashKey]), [
        ['shardId-000000000000', '0', '170141183460469231731687303715884105727'],
        ['shardId-000000000001', '170141183460469231731687303715884105728', '340282366920938463463374607431768211455'],
      ]);
      assert.equal(described.Shards![0]!.SequenceNumberRange!.EndingSequenceNumber, undefined);

      const byArn = await h1.send(new DescribeStreamSummaryCommand({ StreamARN: described.StreamARN }));
      assert.equal(byArn.StreamDescriptionSummary!.StreamName, 'orders');
      assert.equal(byArn.StreamDescriptionSummary!.OpenShardCount, 2);
      assert.equal((await h1.send(new DescribeStreamSummaryCommand({ StreamName: 'defaults' }))).StreamDescriptionSummary!.OpenShardCount, 4,
        'CreateStream without ShardCount makes 4 shards, as AWS');
      const page = await h2.send(new DescribeStreamCommand({ StreamName: 'defaults', Limit: 3 }));
      assert.equal(page.StreamDescription!.Shards!.length, 3);
      assert.equal(page.StreamDescription!.HasMoreShards, true);
      const rest = await h2.send(new DescribeStreamCommand({ StreamName: 'defaults', ExclusiveStartShardId: 'shardId-000000000002' }));
      assert.deepEqual(rest.StreamDescription!.Shards!.map((s) => s.ShardId), ['shardId-000000000003']);

      const listed = await h2.send(new ListStreamsCommand({}));
      assert.deepEqual(listed.StreamNames, ['defaults', 'orders'], 'DYNAMODB streams are not Kinesis streams');
      assert.equal(listed.HasMoreStreams, false);
      assert.equal(listed.StreamSummaries![1]!.StreamARN, described.StreamARN);
      const names: string[] = [];
      for await (const p of paginateListStreams({ client: h1, pageSize: 1 }, {})) names.push(...(p.StreamNames ?? []));
      assert.deepEqual(names, ['defaults', 'orders'], 'the SDK paginator follows NextToken');
      assert.deepEqual((await h1.send(new ListStreamsCommand({ ExclusiveStartStreamName: 'defaults' }))).StreamNames, ['orders']);

      await rejectsAs(h2.send(new CreateStreamCommand({ StreamName: 'orders', ShardCount: 1 })), ResourceInUseException,
        /Stream orders under account 000000000000 already exists/);
      await rejectsAs(h2.send(new DescribeStreamCommand({ StreamName: 'a-table' })), ResourceNotFoundException);
      await rejectsAs(h2.send(new DescribeStreamCommand({ StreamARN: 'arn:aws:kinesis:eu-west-1:000000000000:stream/orders' })), ResourceNotFoundException);
    });

    it('puts and gets records byte-exact, the same records GraphQL shows (both ways)', async () => {
      const payloads = [Buffer.alloc(0), randomBytes(1), Buffer.from('hello'), randomBytes(1000), Buffer.from([0, 255, 0, 128])];
      const single = await h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'customer-1', Data: payloads[0] }));
      assert.match(single.SequenceNumber!, /^\d+$/);
      assert.match(single.ShardId!, /^shardId-\d{12}$/);
      const batch = await h1.send(new PutRecordsCommand({
        StreamName: 'orders',
        Records: payloads.slice(1).map((Data, i) => ({ Data, PartitionKey: `customer-${i + 2}` })),
      }));
      assert.equal(batch.FailedRecordCount, 0);
      assert.equal(batch.Records!.length, 4);
      const explicit = await h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'x', Data: Buffer.from('explicit'), ExplicitHashKey: '1' }));
      assert.equal(explicit.ShardId, 'shardId-000000000000', 'ExplicitHashKey routes');

      const written = new Map([single, ...batch.Records!].map((r, i) => [r.SequenceNumber!, payloads[i]!]));
      written.set(explicit.SequenceNumber!, Buffer.from('explicit'));
      const read = new Map<string, Buffer>();
      for (const shardId of ['shardId-000000000000', 'shardId-000000000001']) {
        const { records } = await drain(h2, await iterator(h2, 'orders', shardId, 'TRIM_HORIZON'));
        const seqs = records.map((r) => r.SequenceNumber!);
        assert.deepEqual(seqs, [...seqs].sort(), 'in sequence order within a shard');
        for (const r of records) {
          read.set(r.SequenceNumber!, Buffer.from(r.Data!));
          assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
          assert.ok(Math.abs(r.ApproximateArrivalTimestamp.getTime() - Date.now()) < 60_000);
          assert.match(r.PartitionKey!, /^(customer-\d|x)$/);
        }
      }
      assert.deepEqual(read, written, 'every record read back byte-exact');

      const shown = await gql(`{ stream(name: "orders") { records(first: 100) { edges { node { sequenceNumber data partitionKey } } } } }`);
      const viaGraphql = new Map<string, Buffer>(shown.stream.records.edges.map((e: any) => [e.node.sequenceNumber, Buffer.from(e.node.data, 'base64')]));
      assert.deepEqual(viaGraphql, written, 'GraphQL shows the same records');

      const put = await gql(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "orders", records: $r) { records { shardId sequenceNumber } } }`,
        { r: [{ partitionKey: 'from-graphql', data: b64('via graphql') }] });
      const { shardId, sequenceNumber } = put.putRecords.records[0];
      const after = await h1.send(new GetRecordsCommand({
        ShardIterator: await iterator(h1, 'orders', shardId, 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: sequenceNumber }),
      }));
      assert.equal(Buffer.from(after.Records![0]!.Data!).toString(), 'via graphql', 'and the SDK reads what GraphQL wrote');
      assert.equal(after.Records![0]!.PartitionKey, 'from-graphql');
    });

    it('positions iterators of every type', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'positions', ShardCount: 1 }));
      const shardId = 'shardId-000000000000';
      const seqs: string[] = [];
      const arrivals: Date[] = [];
      for (let i = 0; i < 5; i++) {
        seqs.push((await h2.send(new PutRecordCommand({ StreamName: 'positions', PartitionKey: 'k', Data: Buffer.from(`r${i}`) }))).SequenceNumber!);
        await new Promise((r) => setTimeout(r, 5));
      }
      const data = (out: { records: { Data?: Uint8Array }[] }) => out.records.map((r) => Buffer.from(r.Data!).toString());
      const all = await drain(h2, await iterator(h2, 'positions', shardId, 'TRIM_HORIZON'));
      assert.deepEqual(data(all), ['r0', 'r1', 'r2', 'r3', 'r4']);
      arrivals.push(...all.records.map((r) => r.ApproximateArrivalTimestamp!));

      assert.deepEqual(data(await drain(h2, await iterator(h2, 'positions', shardId, 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: seqs[2] }))), ['r2', 'r3', 'r4']);
      assert.deepEqual(data(await drain(h2, await iterator(h2, 'positions', shardId, 'AFTER_SEQUENCE_NUMBER', { StartingSequenceNumber: seqs[2] }))), ['r3', 'r4']);
      assert.deepEqual(data(await drain(h2, await iterator(h2, 'positions', shardId, 'AT_TIMESTAMP', { Timestamp: arrivals[3] }))), ['r3', 'r4'],
        'AT_TIMESTAMP is inclusive of the exact millisecond');
      assert.deepEqual(data(await drain(h2, await iterator(h2, 'positions', shardId, 'AT_TIMESTAMP', { Timestamp: new Date(0) }))), ['r0', 'r1', 'r2', 'r3', 'r4']);
      const start = (await h2.send(new DescribeStreamCommand({ StreamName: 'positions' }))).StreamDescription!.Shards![0]!.SequenceNumberRange!.StartingSequenceNumber;
      assert.deepEqual(data(await drain(h2, await iterator(h2, 'positions', shardId, 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: start }))).length, 5,
        "AT_SEQUENCE_NUMBER with the shard's own StartingSequenceNumber works though no record has it");

      const latest = await iterator(h2, 'positions', shardId, 'LATEST');
      const empty = await h2.send(new GetRecordsCommand({ ShardIterator: latest }));
      assert.deepEqual(empty.Records, []);
      assert.ok(empty.NextShardIterator, 'an open shard never ends its iterator chain');
      assert.equal(empty.MillisBehindLatest, 0);
      await h2.send(new PutRecordCommand({ StreamName: 'positions', PartitionKey: 'k', Data: Buffer.from('r5') }));
      assert.deepEqual(data(await drain(h2, empty.NextShardIterator!)), ['r5'], 'LATEST sees records put afterwards');
      const atTimestampNow = await iterator(h2, 'positions', shardId, 'AT_TIMESTAMP', { Timestamp: new Date(Date.now() - 1) });
      await h2.send(new PutRecordCommand({ StreamName: 'positions', PartitionKey: 'k', Data: Buffer.from('r6') }));
      assert.deepEqual(data(await drain(h2, atTimestampNow)), ['r6'], 'AT_TIMESTAMP past the newest record waits for new ones');

      await rejectsAs(iterator(h2, 'positions', shardId, 'AT_TIMESTAMP', { Timestamp: new Date(Date.now() + 3_600_000) }), InvalidArgumentException,
        /timestampInMillis parameter cannot be greater than the currentTimestampInMillis/);
      await rejectsAs(iterator(h2, 'positions', shardId, 'AT_TIMESTAMP'), InvalidArgumentException, /Must specify timestampInMillis/);
      await rejectsAs(iterator(h2, 'positions', shardId, 'AT_SEQUENCE_NUMBER'), InvalidArgumentException, /Must either specify/);
      await rejectsAs(iterator(h2, 'positions', shardId, 'TRIM_HORIZON', { StartingSequenceNumber: seqs[0] }), InvalidArgumentException, /Must either specify/);
      await rejectsAs(iterator(h2, 'positions', shardId, 'AT_SEQUENCE_NUMBER', { StartingSequenceNumber: '12' }), InvalidArgumentException, /is invalid/);
      // A number not issued yet, on an open shard: the iterator would skip the records written until the numbers pass it.
      const unissued = (BigInt(seqs[4]!) + 1_000_000n).toString();
      for (const type of ['AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'] as const) {
        await rejectsAs(iterator(h2, 'positions', shardId, type, { StartingSequenceNumber: unissued }), InvalidArgumentException,
          new RegExp(`StartingSequenceNumber ${unissued} used in GetShardIterator on shard ${shardId} in stream positions under account 000000000000 is invalid`));
      }
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'positions', PartitionKey: 'k', Data: Buffer.from('x'), SequenceNumberForOrdering: unissued })),
        InvalidArgumentException, new RegExp(`ExclusiveMinimumSequenceNumber ${unissued} used in PutRecord on stream positions under account 000000000000 is invalid`));
      const ordered = await h2.send(new PutRecordCommand({ StreamName: 'positions', PartitionKey: 'k', Data: Buffer.from('r7'), SequenceNumberForOrdering: seqs[4] }));
      assert.ok(BigInt(ordered.SequenceNumber!) > BigInt(seqs[4]!), 'above the exclusive minimum');
      await rejectsAs(iterator(h2, 'positions', 'shardId-000000000007', 'LATEST'), ResourceNotFoundException,
        /Shard shardId-000000000007 in stream positions under account 000000000000 does not exist/);
      await rejectsAs(iterator(h2, 'positions', shardId, 'NEWEST' as ShardIteratorType), ValidationException, /enum value set/);
    });

    it('chains iterators without re-reading, honours Limit and reports MillisBehindLatest', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'chain', ShardCount: 1 }));
      await h2.send(new PutRecordsCommand({ StreamName: 'chain', Records: Array.from({ length: 25 }, (_, i) => ({ PartitionKey: 'k', Data: Buffer.from(`c${i}`) })) }));
      await new Promise((r) => setTimeout(r, 20));
      let it = await iterator(h1, 'chain', 'shardId-000000000000', 'TRIM_HORIZON');
      const pages: string[][] = [];
      const behind: number[] = [];
      for (let i = 0; i < 4; i++) {
        const out = await h1.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10 }));
        pages.push(out.Records!.map((r) => Buffer.from(r.Data!).toString()));
        behind.push(out.MillisBehindLatest!);
        assert.ok(out.NextShardIterator);
        it = out.NextShardIterator;
      }
      assert.deepEqual(pages.map((p) => p.length), [10, 10, 5, 0]);
      assert.deepEqual(pages.flat(), Array.from({ length: 25 }, (_, i) => `c${i}`), 'each record exactly once, in order');
      assert.ok(behind[0]! >= 20 && behind[1]! >= 20, `behind while records are left: ${behind}`);
      assert.deepEqual(behind.slice(2), [0, 0], 'caught up');
      await rejectsAs(h1.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_001 })), ValidationException,
        /Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000/);
    });

    it('stops a GetRecords response before 10 MiB, over HTTP/2 both ways', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'large', ShardCount: 1 }));
      const big = (i: number) => Buffer.alloc(1_000_000, i);
      for (let call = 0; call < 3; call++) {
        const out = await h2.send(new PutRecordsCommand({ StreamName: 'large', Records: Array.from({ length: 4 }, (_, i) => ({ PartitionKey: 'k', Data: big(call * 4 + i) })) }));
        assert.equal(out.FailedRecordCount, 0);
      }
      const first = await h2.send(new GetRecordsCommand({ ShardIterator: await iterator(h2, 'large', 'shardId-000000000000', 'TRIM_HORIZON') }));
      assert.equal(first.Records!.length, 10, '10 records of 1 MB fit in 10 MiB, the 11th would not');
      assert.ok(first.Records!.every((r, i) => r.Data!.length === 1_000_000 && r.Data![0] === i));
      assert.ok(first.MillisBehindLatest! >= 0);
      const second = await h2.send(new GetRecordsCommand({ ShardIterator: first.NextShardIterator }));
      assert.deepEqual(second.Records!.map((r) => r.Data![0]), [10, 11]);
    });

    it('ends a closed shard with ChildShards and no NextShardIterator, after a split and a merge; ListShards pages and filters', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'reshard', ShardCount: 1 }));
      await h2.send(new PutRecordsCommand({ StreamName: 'reshard', Records: Array.from({ length: 4 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(`p${i}`) })) }));
      const parentIterator = await iterator(h2, 'reshard', 'shardId-000000000000', 'TRIM_HORIZON');
      const beforeSplit = Date.now();
      await new Promise((r) => setTimeout(r, 5));
      await h1.send(new SplitShardCommand({ StreamName: 'reshard', ShardToSplit: 'shardId-000000000000', NewStartingHashKey: (1n << 127n).toString() }));
      const out = await h2.send(new GetRecordsCommand({ ShardIterator: parentIterator, Limit: 3 }));
      assert.equal(out.Records!.length, 3);
      assert.ok(out.NextShardIterator, 'not at the end yet');
      assert.equal(out.ChildShards, undefined, 'ChildShards only at the end of the shard');
      const end = await h2.send(new GetRecordsCommand({ ShardIterator: out.NextShardIterator }));
      assert.equal(end.Records!.length, 1);
      assert.equal(end.NextShardIterator, undefined, 'null once the closed shard is read to its end');
      assert.equal(end.MillisBehindLatest, 0);
      assert.deepEqual(end.ChildShards, [
        { ShardId: 'shardId-000000000001', ParentShards: ['shardId-000000000000'], HashKeyRange: { StartingHashKey: '0', EndingHashKey: ((1n << 127n) - 1n).toString() } },
        { ShardId: 'shardId-000000000002', ParentShards: ['shardId-000000000000'], HashKeyRange: { StartingHashKey: (1n << 127n).toString(), EndingHashKey: ((1n << 128n) - 1n).toString() } },
      ]);
      const atEnd = await h2.send(new GetRecordsCommand({ ShardIterator: await iterator(h2, 'reshard', 'shardId-000000000000', 'LATEST') }));
      assert.deepEqual([atEnd.Records, atEnd.NextShardIterator, atEnd.ChildShards?.length], [[], undefined, 2], 'LATEST on a closed shard is its end');

      const shards = (await h2.send(new DescribeStreamCommand({ StreamName: 'reshard' }))).StreamDescription!.Shards!;
      assert.equal(shards.length, 3, 'the closed parent stays listed');
      assert.ok(shards[0]!.SequenceNumberRange!.EndingSequenceNumber);
      await rejectsAs(h2.send(new SplitShardCommand({ StreamName: 'reshard', ShardToSplit: 'shardId-000000000000', NewStartingHashKey: '5' })),
        InvalidArgumentException, /has already been merged or split, and thus is not eligible for merging or splitting/);
      await rejectsAs(h2.send(new SplitShardCommand({ StreamName: 'reshard', ShardToSplit: 'shardId-000000000001', NewStartingHashKey: '1' })),
        InvalidArgumentException, /is not both greater than one plus the shard's StartingHashKey/);
      await rejectsAs(h2.send(new SplitShardCommand({ StreamName: 'reshard', ShardToSplit: 'shardId-000000000009', NewStartingHashKey: '5' })),
        ResourceNotFoundException);

      await h2.send(new PutRecordCommand({ StreamName: 'reshard', PartitionKey: 'k', Data: Buffer.from('child'), ExplicitHashKey: '7' }));
      await h2.send(new MergeShardsCommand({ StreamName: 'reshard', ShardToMerge: 'shardId-000000000001', AdjacentShardToMerge: 'shardId-000000000002' }));
      const child = await drain(h2, await iterator(h2, 'reshard', 'shardId-000000000001', 'TRIM_HORIZON'));
      assert.deepEqual(child.records.map((r) => Buffer.from(r.Data!).toString()), ['child']);
      assert.equal(child.next, undefined);
      assert.deepEqual(child.last.ChildShards, [{
        ShardId: 'shardId-000000000003', ParentShards: ['shardId-000000000001', 'shardId-000000000002'],
        HashKeyRange: { StartingHashKey: '0', EndingHashKey: ((1n << 128n) - 1n).toString() },
      }]);

      const ids = (list: Shard[] | undefined) => (list ?? []).map((s) => s.ShardId);
      const first = await h1.send(new ListShardsCommand({ StreamName: 'reshard', MaxResults: 3 }));
      assert.deepEqual(ids(first.Shards), ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']);
      assert.ok(first.NextToken);
      const second = await h1.send(new ListShardsCommand({ NextToken: first.NextToken }));
      assert.deepEqual(ids(second.Shards), ['shardId-000000000003']);
      assert.equal(second.NextToken, undefined);
      assert.deepEqual(ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ShardFilter: { Type: 'AT_LATEST' } }))).Shards), ['shardId-000000000003']);
      assert.deepEqual(ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ShardFilter: { Type: 'AT_TRIM_HORIZON' } }))).Shards), ['shardId-000000000000']);
      assert.deepEqual(ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ShardFilter: { Type: 'AFTER_SHARD_ID', ShardId: 'shardId-000000000001' } }))).Shards),
        ['shardId-000000000002', 'shardId-000000000003']);
      assert.deepEqual(ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ShardFilter: { Type: 'AT_TIMESTAMP', Timestamp: new Date(beforeSplit) } }))).Shards),
        ['shardId-000000000000'], 'the shards open at a time');
      // A shard closed exactly at the given time still counts: its end is not before it.
      const reshard = (await t.engine.catalog.find('reshard'))!;
      const closedAt = (await t.engine.catalog.shards(reshard, 'ALL')).find((s) => s.shardId === 'shardId-000000000000')!.closedAt!;
      for (const Type of ['AT_TIMESTAMP', 'FROM_TIMESTAMP'] as const) {
        const listed = ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ShardFilter: { Type, Timestamp: new Date(closedAt.getTime()) } }))).Shards);
        assert.ok(listed.includes('shardId-000000000000'), `${Type} at the close lists the closed shard: ${listed.join()}`);
      }
      assert.deepEqual(ids((await h1.send(new ListShardsCommand({ StreamName: 'reshard', ExclusiveStartShardId: 'shardId-000000000002' }))).Shards), ['shardId-000000000003']);
      await rejectsAs(h1.send(new ListShardsCommand({ StreamName: 'reshard', NextToken: first.NextToken })), InvalidArgumentException,
        /NextToken and StreamName cannot be provided together/);
      await rejectsAs(h1.send(new ListShardsCommand({ NextToken: first.NextToken, ShardFilter: { Type: 'AT_LATEST' } })), InvalidArgumentException,
        /NextToken and ShardFilter cannot be provided together/);
      await rejectsAs(h1.send(new ListShardsCommand({ StreamARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/reshard', NextToken: first.NextToken })), InvalidArgumentException,
        /NextToken and StreamARN cannot be provided together/);
      await rejectsAs(h1.send(new ListShardsCommand({})), InvalidArgumentException, /Either NextToken or StreamName should be provided/);
      clockOffsetMs = 301_000;
      try {
        await rejectsAs(h1.send(new ListShardsCommand({ NextToken: first.NextToken })), ExpiredNextTokenException);
      } finally {
        clockOffsetMs = 0;
      }

      const scaled = await h2.send(new UpdateShardCountCommand({ StreamName: 'reshard', TargetShardCount: 2, ScalingType: 'UNIFORM_SCALING' }));
      assert.deepEqual([scaled.CurrentShardCount, scaled.TargetShardCount, scaled.StreamName], [1, 2, 'reshard']);
      assert.equal((await h2.send(new DescribeStreamSummaryCommand({ StreamName: 'reshard' }))).StreamDescriptionSummary!.OpenShardCount, 2);
      await rejectsAs(once.send(new UpdateShardCountCommand({ StreamName: 'reshard', TargetShardCount: 5, ScalingType: 'UNIFORM_SCALING' })), LimitExceededException);
    });

    it('expires iterators after 5 minutes and rejects iterators it did not issue', async () => {
      const it = await iterator(h2, 'chain', 'shardId-000000000000', 'TRIM_HORIZON');
      clockOffsetMs = 299_000;
      try {
        const fresh = await h2.send(new GetRecordsCommand({ ShardIterator: it, Limit: 1 }));
        assert.equal(fresh.Records!.length, 1, 'still valid just before 5 minutes');
        clockOffsetMs = 300_500;
        await rejectsAs(h2.send(new GetRecordsCommand({ ShardIterator: it })), ExpiredIteratorException,
          /Iterator expired\. The iterator was created at time \w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4} while right now it is .* tolerated delay of 300000 milliseconds/);
        const renewed = await h2.send(new GetRecordsCommand({ ShardIterator: fresh.NextShardIterator, Limit: 1 }));
        assert.equal(renewed.Records!.length, 1, 'each NextShardIterator has a fresh 5 minutes');
      } finally {
        clockOffsetMs = 0;
      }
      await rejectsAs(h2.send(new GetRecordsCommand({ ShardIterator: 'AAAAAAAAAAGarbage' })), InvalidArgumentException, /Invalid ShardIterator/);
      await rejectsAs(h2.send(new GetRecordsCommand({ ShardIterator: `${it.slice(0, -3)}AAA` })), InvalidArgumentException, /Invalid ShardIterator/);
    });

    it('raises the exception classes AWS raises for bad input', async () => {
      const validation = await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k'.repeat(257), Data: Buffer.from('x') })),
        ValidationException, /^1 validation error detected: Value 'k{257}' at 'partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256$/);
      assert.equal((validation as ValidationException).$metadata.httpStatusCode, 400);
      // Lengths count Unicode characters (the model's length trait), not UTF-16 units.
      const emoji = await h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: '\u{1F600}'.repeat(200), Data: Buffer.from('x') }));
      assert.ok(emoji.SequenceNumber, '200 characters, 400 UTF-16 units');
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: '\u{1F600}'.repeat(257), Data: Buffer.from('x') })),
        ValidationException, /Member must have length less than or equal to 256/);
      await rejectsAs(h1.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: '', Data: Buffer.from('x') })), ValidationException,
        /Member must have length greater than or equal to 1/);
      await rejectsAs(h1.send(new PutRecordsCommand({ StreamName: 'orders', Records: Array.from({ length: 501 }, () => ({ PartitionKey: 'k', Data: Buffer.from('x') })) })),
        ValidationException, /at 'records' failed to satisfy constraint: Member must have length less than or equal to 500/);
      await rejectsAs(h1.send(new PutRecordsCommand({ StreamName: 'orders', Records: [{ PartitionKey: 'k', Data: Buffer.from('x') }, { PartitionKey: '', Data: Buffer.from('y') }] })),
        ValidationException, /at 'records\.2\.member\.partitionKey'/);
      await rejectsAs(h1.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k', Data: Buffer.alloc(1_048_577) })), ValidationException,
        /Value 'java\.nio\.HeapByteBuffer\[pos=0 lim=1048577 cap=1048577\]' at 'data'/);
      await rejectsAs(h1.send(new PutRecordsCommand({ StreamName: 'orders', Records: Array.from({ length: 6 }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.alloc(1_000_000) })) })),
        InvalidArgumentException, /Records size exceeds 5 MB limit/);
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k', Data: Buffer.from('x'), ExplicitHashKey: (1n << 128n).toString() })),
        InvalidArgumentException, /Invalid ExplicitHashKey\. ExplicitHashKey must be in the range: \[0, 2\^128-1\]/);
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k', Data: Buffer.from('x'), ExplicitHashKey: '-1' })), ValidationException,
        /regular expression pattern: 0\|\(\[1-9\]\\d\{0,38\}\)/);
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'missing', PartitionKey: 'k', Data: Buffer.from('x') })), ResourceNotFoundException,
        /^Stream missing under account 000000000000 not found\.$/);
      await rejectsAs(h2.send(new PutRecordsCommand({ StreamName: 'a-table', Records: [{ PartitionKey: 'k', Data: Buffer.from('x') }] })),
        ResourceNotFoundException, /^Stream a-table under account 000000000000 not found\.$/);
      await rejectsAs(h2.send(new CreateStreamCommand({ StreamName: 'bad name!', ShardCount: 0 })), ValidationException,
        /^2 validation errors detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: \[a-zA-Z0-9_\.-\]\+; Value '0' at 'shardCount'/);
      await rejectsAs(h2.send(new DescribeStreamSummaryCommand({})), InvalidArgumentException, /Either StreamName or StreamARN/);
      await rejectsAs(h2.send(new MergeShardsCommand({ StreamName: 'defaults', ShardToMerge: 'shardId-000000000000', AdjacentShardToMerge: 'shardId-000000000002' })),
        InvalidArgumentException, /are not an adjacent pair of shards eligible for merging/);

      // What the SDK cannot send: bodies of the wrong type and unknown targets.
      const raw = async (target: string, body: string) => {
        const response = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target }, body });
        return { status: response.status, type: response.headers.get('x-amzn-errortype'), body: (await response.json()) as { __type: string; message: string } };
      };
      assert.deepEqual((await raw('Kinesis_20131202.DescribeStream', '{"StreamName": 5}')).body.__type, 'SerializationException');
      assert.deepEqual((await raw('Kinesis_20131202.DescribeStream', '{nope')).body.__type, 'SerializationException');
      assert.deepEqual((await raw('Kinesis_20131202.PutRecord', '{"StreamName": "orders", "PartitionKey": "k", "Data": "not base64!"}')).body.__type, 'SerializationException');
      // A raw control character is not JSON, whether the body is otherwise read from its bytes
      // (plainJson.ts) or not: the same refusal as JSON.parse's.
      const notJson = { type: 'SerializationException', message: 'Start of structure or map found where not expected.' };
      for (const [where, record] of [['data', '{"Data":"QQ\u0001==","PartitionKey":"k"}'], ['partition key', '{"Data":"QQ==","PartitionKey":"k\u0001"}']]) {
        const refused = await raw('Kinesis_20131202.PutRecords', `{"StreamName":"orders","Records":[{"Data":"QQ==","PartitionKey":"k"},${record}]}`);
        assert.deepEqual([refused.status, refused.body.__type, refused.body.message], [400, notJson.type, notJson.message], `a control character in the ${where}`);
      }
      // A body of null is a request with no members: 400 naming what is missing, never a 500.
      for (const target of ['Kinesis_20131202.PutRecord', 'Kinesis_20131202.GetRecords', 'Kinesis_20131202.ListStreams']) {
        const nothing = await raw(target, 'null');
        assert.ok(nothing.status < 500, `${target} with a null body: ${nothing.status} ${JSON.stringify(nothing.body)}`);
      }
      const noMembers = await raw('Kinesis_20131202.PutRecord', 'null');
      assert.deepEqual([noMembers.status, noMembers.body.__type], [400, 'ValidationException']);
      assert.match(noMembers.body.message, /'partitionKey' failed to satisfy constraint: Member must not be null/);
      const unknown = await raw('Kinesis_20131202.SubscribeToNothing', '{}');
      assert.deepEqual([unknown.status, unknown.type, unknown.body.__type], [400, 'UnknownOperationException', 'UnknownOperationException']);
    });

    it('increases and decreases retention and keeps tags', async () => {
      await h2.send(new IncreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 48 }));
      assert.equal((await h2.send(new DescribeStreamSummaryCommand({ StreamName: 'orders' }))).StreamDescriptionSummary!.RetentionPeriodHours, 48);
      await rejectsAs(h2.send(new IncreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 30 })), InvalidArgumentException,
        /can not be shorter than existing retention period \(48 hours\)\. Use DecreaseRetentionPeriod API/);
      await rejectsAs(h2.send(new DecreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 72 })), InvalidArgumentException,
        /can not be longer than existing retention period/);
      await rejectsAs(h2.send(new DecreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 12 })), InvalidArgumentException,
        /Minimum allowed retention period is 24 hours/);
      await rejectsAs(h2.send(new IncreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 9000 })), InvalidArgumentException,
        /Maximum allowed retention period is 8760 hours/);
      await h1.send(new DecreaseStreamRetentionPeriodCommand({ StreamName: 'orders', RetentionPeriodHours: 24 }));
      assert.equal((await h2.send(new DescribeStreamCommand({ StreamName: 'orders' }))).StreamDescription!.RetentionPeriodHours, 24);

      await h2.send(new AddTagsToStreamCommand({ StreamName: 'orders', Tags: { team: 'payments', env: 'test', 'cost:center': '42' } }));
      await h2.send(new AddTagsToStreamCommand({ StreamName: 'orders', Tags: { env: 'prod' } }));
      const tags = await h1.send(new ListTagsForStreamCommand({ StreamName: 'orders' }));
      assert.deepEqual(tags.Tags, [{ Key: 'cost:center', Value: '42' }, { Key: 'env', Value: 'prod' }, { Key: 'team', Value: 'payments' }]);
      assert.equal(tags.HasMoreTags, false);
      const page = await h1.send(new ListTagsForStreamCommand({ StreamName: 'orders', Limit: 1, ExclusiveStartTagKey: 'cost:center' }));
      assert.deepEqual([page.Tags, page.HasMoreTags], [[{ Key: 'env', Value: 'prod' }], true]);
      await h1.send(new RemoveTagsFromStreamCommand({ StreamName: 'orders', TagKeys: ['env', 'absent'] }));
      assert.deepEqual((await h2.send(new ListTagsForStreamCommand({ StreamName: 'orders' }))).Tags!.map((t) => t.Key), ['cost:center', 'team']);
      await rejectsAs(h2.send(new AddTagsToStreamCommand({ StreamName: 'orders', Tags: Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`k${i}`, 'v'])) })),
        InvalidArgumentException, /cannot have more than 50 tags/);
      await rejectsAs(h2.send(new AddTagsToStreamCommand({ StreamName: 'orders', Tags: { 'bad#key': 'v' } })), InvalidArgumentException, /illegal characters/);
      await h2.send(new CreateStreamCommand({ StreamName: 'tagged', ShardCount: 1, Tags: { owner: 'me' } }));
      assert.deepEqual((await h2.send(new ListTagsForStreamCommand({ StreamName: 'tagged' }))).Tags, [{ Key: 'owner', Value: 'me' }]);
      const actions = (await t.engine.audit.list(50)).map((a) => `${a.action} ${a.target}`);
      for (const action of ['stream.addTags stream:orders', 'stream.removeTags stream:orders', 'stream.addTags stream:tagged']) {
        assert.ok(actions.includes(action), `audited: ${action}`);
      }
    });

    it('answers raw CBOR requests as the Java SDKs send them (byte strings, tag-1 epoch-millisecond timestamps)', async () => {
      const cbor = async (operation: string, body: unknown, raw?: Buffer) => {
        const response = await fetch(endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-amz-cbor-1.1', 'x-amz-target': `Kinesis_20131202.${operation}` },
          body: new Uint8Array(raw ?? cborEncoder.encode(body)),
        });
        const bytes = Buffer.from(await response.arrayBuffer());
        return { status: response.status, contentType: response.headers.get('content-type'), bytes, body: bytes.length > 0 ? cborDecoder.decode(bytes) : undefined };
      };
      const created = await cbor('CreateStream', { StreamName: 'java', ShardCount: 1 });
      assert.deepEqual([created.status, created.bytes.length], [200, 0]);
      const payload = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      const put = await cbor('PutRecord', { StreamName: 'java', PartitionKey: 'k', Data: payload });
      assert.equal(put.status, 200);
      assert.equal(put.contentType, 'application/x-amz-cbor-1.1');
      assert.equal(put.body.ShardId, 'shardId-000000000000');
      const batch = await cbor('PutRecords', { StreamName: 'java', Records: [{ PartitionKey: 'k', Data: Buffer.from('second') }] });
      assert.equal(batch.body.FailedRecordCount, 0);

      // The Java SDK writes timestamps as CBOR tag 1 over epoch milliseconds.
      const millis = Date.now() - 60_000;
      const it = await cbor('GetShardIterator', { StreamName: 'java', ShardId: 'shardId-000000000000', ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Tag(millis, 1) });
      assert.equal(it.status, 200, JSON.stringify(it.body));
      const records = await cbor('GetRecords', { ShardIterator: it.body.ShardIterator, Limit: 10 });
      assert.equal(records.status, 200);
      assert.equal(records.body.Records.length, 2);
      const [first] = records.body.Records;
      assert.ok(Buffer.isBuffer(first.Data) || first.Data instanceof Uint8Array, 'Data comes back as a byte string');
      assert.deepEqual(Buffer.from(first.Data), payload);
      // ApproximateArrivalTimestamp is tag 1 over epoch ms (RFC 8949 decoders read it as seconds, hence the / 1000).
      const arrivalMs = (first.ApproximateArrivalTimestamp as Date).getTime() / 1000;
      assert.ok(Math.abs(arrivalMs - Date.now()) < 60_000, `arrival ${arrivalMs}`);
      assert.ok(records.bytes.includes(Buffer.from([0xc1])), 'a tag-1 item is on the wire');
      assert.equal(typeof records.body.MillisBehindLatest, 'number');

      // RFC 8949 seconds under tag 1 are understood too (as the JSON wire's epoch seconds).
      const seconds = await cbor('GetShardIterator', { StreamName: 'java', ShardId: 'shardId-000000000000', ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Tag(millis / 1000, 1) });
      assert.equal((await cbor('GetRecords', { ShardIterator: seconds.body.ShardIterator })).body.Records.length, 2);

      // An indefinite-length map, as Jackson's CBOR generator writes objects.
      const indefinite = Buffer.concat([Buffer.from([0xbf]), cborEncoder.encode('StreamName'), cborEncoder.encode('java'), Buffer.from([0xff])]);
      const summary = await cbor('DescribeStreamSummary', undefined, indefinite);
      assert.equal(summary.body.StreamDescriptionSummary.OpenShardCount, 1);
      assert.ok(summary.body.StreamDescriptionSummary.StreamCreationTimestamp instanceof Date);

      const missing = await cbor('DescribeStream', { StreamName: 'nope' });
      assert.deepEqual([missing.status, missing.contentType, missing.body], [400, 'application/x-amz-cbor-1.1',
        { __type: 'ResourceNotFoundException', message: 'Stream nope under account 000000000000 not found.' }]);
      const invalid = await cbor('PutRecord', { StreamName: 'java', PartitionKey: 'k'.repeat(300), Data: payload });
      assert.equal(invalid.body.__type, 'ValidationException');
      assert.match(invalid.body.message, /at 'partitionKey' failed to satisfy constraint/);
      const textData = await cbor('PutRecord', { StreamName: 'java', PartitionKey: 'k', Data: 'AAEC' });
      assert.equal(textData.body.__type, 'SerializationException', 'blobs are byte strings in CBOR');
      const garbage = await cbor('DescribeStream', undefined, Buffer.from([0xff, 0x00]));
      assert.deepEqual([garbage.status, garbage.body.__type], [400, 'SerializationException']);
    });

    it('GetRecords answers JSON and CBOR with the same records: data byte for byte, escaped partition keys, sequence numbers, arrival', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'exact', ShardCount: 1 }));
      const keys = ['"quoted"', 'back\\slash', 'new\nline\ttab\r', '\u0001\u001f control', 'ключ 🔑 \u2028', '</script>', 'k'];
      const payloads = [Buffer.alloc(0), Buffer.from([0xfb]), Buffer.from([0xfb, 0xff]), Buffer.from([0xfb, 0xff, 0xbf]),
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(100_000)];
      const entries = payloads.map((Data, i) => ({ PartitionKey: keys[i % keys.length]!, Data }));
      entries.push({ PartitionKey: keys[6]!, Data: Buffer.from('last') });
      const put = await h1.send(new PutRecordsCommand({ StreamName: 'exact', Records: entries }));
      assert.equal(put.FailedRecordCount, 0);
      const start = await iterator(h1, 'exact', 'shardId-000000000000', 'TRIM_HORIZON');

      const raw = async (contentType: string, body: Buffer) => {
        const response = await fetch(endpoint, {
          method: 'POST', headers: { 'content-type': contentType, 'x-amz-target': 'Kinesis_20131202.GetRecords' }, body: new Uint8Array(body),
        });
        assert.equal(response.status, 200);
        return Buffer.from(await response.arrayBuffer());
      };
      const json = JSON.parse((await raw('application/x-amz-json-1.1', Buffer.from(JSON.stringify({ ShardIterator: start })))).toString('utf8'));
      const cbor = cborDecoder.decode(await raw('application/x-amz-cbor-1.1', cborEncoder.encode({ ShardIterator: start })));
      const sdk = await h1.send(new GetRecordsCommand({ ShardIterator: start }));

      assert.deepEqual(Object.keys(json), ['Records', 'NextShardIterator', 'MillisBehindLatest']);
      assert.equal(json.MillisBehindLatest, 0);
      assert.equal(json.Records.length, entries.length);
      json.Records.forEach((r: any, i: number) => {
        assert.deepEqual(Object.keys(r), ['SequenceNumber', 'ApproximateArrivalTimestamp', 'Data', 'PartitionKey']);
        assert.equal(r.SequenceNumber, put.Records![i]!.SequenceNumber);
        assert.equal(r.PartitionKey, entries[i]!.PartitionKey);
        assert.equal(r.Data, entries[i]!.Data.toString('base64'), `record ${i}: canonical base64 without line breaks`);
        const c = cbor.Records[i];
        assert.equal(c.SequenceNumber, r.SequenceNumber);
        assert.equal(c.PartitionKey, r.PartitionKey);
        assert.deepEqual(Buffer.from(c.Data), entries[i]!.Data);
        // CBOR carries epoch ms under tag 1 (read by cbor-x as seconds): the same instant as JSON's seconds.
        assert.equal((c.ApproximateArrivalTimestamp as Date).getTime() / 1000, Math.round(r.ApproximateArrivalTimestamp * 1000));
        assert.ok(Number.isInteger(Math.round(r.ApproximateArrivalTimestamp * 1000 * 1000) / 1000), 'millisecond precision');
        const s = sdk.Records![i]!;
        assert.deepEqual([s.SequenceNumber, s.PartitionKey, Buffer.from(s.Data!)], [r.SequenceNumber, r.PartitionKey, entries[i]!.Data]);
        assert.equal(s.ApproximateArrivalTimestamp!.getTime(), Math.round(r.ApproximateArrivalTimestamp * 1000));
      });
      const last = json.Records.at(-1);
      assert.ok(Math.abs(last.ApproximateArrivalTimestamp * 1000 - Date.now()) < 60_000);
      assert.equal(cbor.MillisBehindLatest, 0);

      // Where the next read starts: nothing left after the last record, then the next put.
      const empty = await h1.send(new GetRecordsCommand({ ShardIterator: json.NextShardIterator }));
      assert.deepEqual([empty.Records, empty.MillisBehindLatest], [[], 0]);
      const more = await h1.send(new PutRecordCommand({ StreamName: 'exact', PartitionKey: 'k', Data: Buffer.from('more') }));
      const after = await h1.send(new GetRecordsCommand({ ShardIterator: empty.NextShardIterator }));
      assert.deepEqual(after.Records!.map((r) => r.SequenceNumber), [more.SequenceNumber]);
      const paged = await h1.send(new GetRecordsCommand({ ShardIterator: start, Limit: 2 }));
      assert.deepEqual(paged.Records!.map((r) => r.SequenceNumber), put.Records!.slice(0, 2).map((r) => r.SequenceNumber));
      assert.ok(paged.MillisBehindLatest! >= 0);
      const rest = await h1.send(new GetRecordsCommand({ ShardIterator: paged.NextShardIterator }));
      assert.deepEqual(rest.Records!.map((r) => r.SequenceNumber), [...put.Records!.slice(2).map((r) => r.SequenceNumber), more.SequenceNumber]);
    });

    it('takes JSON Data only as strict base64 (SerializationException otherwise, nothing written)', async () => {
      await h2.send(new CreateStreamCommand({ StreamName: 'strict', ShardCount: 1 }));
      const call = async (operation: string, body: unknown) => {
        const response = await fetch(endpoint, {
          method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Kinesis_20131202.${operation}` },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: (await response.json()) as any };
      };
      const long = Buffer.alloc(3000, 'xyz').toString('base64');
      for (const Data of ['QQ', 'A-B_', 'YWJj\n', `${long.slice(0, -4)}A-B_`, `${long.slice(0, 76)}\n${long.slice(76)}`]) {
        const one = await call('PutRecord', { StreamName: 'strict', PartitionKey: 'k', Data });
        assert.deepEqual([one.status, one.body.__type], [400, 'SerializationException'], Data.slice(0, 20));
        const batch = await call('PutRecords', { StreamName: 'strict', Records: [{ PartitionKey: 'k', Data: 'YQ==' }, { PartitionKey: 'k', Data }] });
        assert.deepEqual([batch.status, batch.body.__type], [400, 'SerializationException']);
      }
      const ok = await call('PutRecords', { StreamName: 'strict', Records: [{ PartitionKey: 'k', Data: 'QR==' }, { PartitionKey: 'k', Data: long }] });
      assert.deepEqual([ok.status, ok.body.FailedRecordCount], [200, 0]);
      const read = await h1.send(new GetRecordsCommand({ ShardIterator: await iterator(h1, 'strict', 'shardId-000000000000', 'TRIM_HORIZON') }));
      assert.deepEqual(read.Records!.map((r) => Buffer.from(r.Data!).toString('base64')), ['QQ==', long], 'only the valid call was written');
    });

    it('deletes streams, not one a mapping reads', async () => {
      await h2.send(new PutRecordCommand({ StreamName: 'tagged', PartitionKey: 'k', Data: Buffer.from('x') }));
      // A mapping's stream is never null: the mapping goes first (ResourceInUseException, 400, until then).
      await t.engine.createFunction({ name: 'tagged-reader', url: 'http://127.0.0.1:9/' });
      const mapping = await t.engine.createMapping({ streamName: 'tagged', functionName: 'tagged-reader' });
      await rejectsAs(h2.send(new DeleteStreamCommand({ StreamName: 'tagged' })), ResourceInUseException, new RegExp(`read by event source mapping ${mapping.id}`));
      assert.ok((await h1.send(new ListStreamsCommand({}))).StreamNames!.includes('tagged'), 'still there');
      await t.engine.deleteMapping(mapping.id);
      await h2.send(new DeleteStreamCommand({ StreamARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/tagged' }));
      await rejectsAs(h2.send(new DescribeStreamCommand({ StreamName: 'tagged' })), ResourceNotFoundException);
      // Writes right after the delete (the write path's routing was warm) find no stream either.
      await rejectsAs(h2.send(new PutRecordCommand({ StreamName: 'tagged', PartitionKey: 'k', Data: Buffer.from('x') })), ResourceNotFoundException,
        /^Stream tagged under account 000000000000 not found\.$/);
      await rejectsAs(h2.send(new PutRecordsCommand({ StreamName: 'tagged', Records: [{ PartitionKey: 'k', Data: Buffer.from('x') }] })),
        ResourceNotFoundException);
      await rejectsAs(h2.send(new DeleteStreamCommand({ StreamName: 'tagged' })), ResourceNotFoundException);
      assert.ok(!(await h1.send(new ListStreamsCommand({}))).StreamNames!.includes('tagged'));
    });
  });
}
