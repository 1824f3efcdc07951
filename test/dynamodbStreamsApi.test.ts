/**
 * The DynamoDB Streams API through the real @aws-sdk/client-dynamodb-streams client against a
 * real server, on each backend: a reader consuming writeItems changes the way stream readers
 * (and the KCL's DynamoDB Streams adapter) do: list, describe, iterate every shard, follow
 * rollovers through ParentShardId; record shapes, iterator types, expiry and errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DescribeStreamCommand, DynamoDBStreamsClient, ExpiredIteratorException, GetRecordsCommand, type GetRecordsCommandOutput, GetShardIteratorCommand,
  ListStreamsCommand, ResourceNotFoundException, type ShardIteratorType, TrimmedDataAccessException, type _Record,
} from '@aws-sdk/client-dynamodb-streams';
import { sql } from 'drizzle-orm';
import { type App, buildApp } from '../api/app.ts';
import { ensurePartitions } from '../engine/records/partitions.ts';
import type { ViewType } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine } from './harness.ts';

// The SDK warns once that its 2027 releases will need Node 22; not this suite's concern.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const S = (value: string) => ({ S: value });
const N = (value: string) => ({ N: value });

async function rejectsAs(promise: Promise<unknown>, type: (new (...args: never[]) => Error) | string, message?: RegExp): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    const name = typeof type === 'string' ? type : type.name;
    if (typeof type === 'string') assert.equal((error as Error).name, type, (error as Error).message);
    else assert.ok(error instanceof type, `expected ${name}, got ${(error as Error).name}: ${(error as Error).message}`);
    if (message) assert.match((error as Error).message, message);
    return error as Error;
  }
  assert.fail(`expected ${typeof type === 'string' ? type : type.name}, but the call succeeded`);
}

for (const backend of backends) {
  describe(`DynamoDB Streams API through @aws-sdk/client-dynamodb-streams (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let client: DynamoDBStreamsClient;
    let clockOffsetMs = 0;
    const arns = new Map<string, string>();

    before(async () => {
      t = await openTestEngine(backend);
      app = buildApp({ engine: t.engine, logError: (e) => console.error('server error:', e), aws: { clock: () => Date.now() + clockOffsetMs } });
      const endpoint = new URL(await app.start(0, '127.0.0.1')).origin;
      client = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1', credentials, maxAttempts: 1 });
    });
    after(async () => {
      client.destroy();
      await app.stop();
      await t.close();
    });

    const createTable = async (name: string, viewType: ViewType, shardCount = 1) => {
      const stream = await t.engine.createStream({ name, kind: 'DYNAMODB', shardCount, viewType });
      arns.set(name, stream.arn);
      return stream;
    };

    const shardIterator = async (table: string, shardId: string, type: ShardIteratorType, sequenceNumber?: string) =>
      (await client.send(new GetShardIteratorCommand({ StreamArn: arns.get(table), ShardId: shardId, ShardIteratorType: type, SequenceNumber: sequenceNumber })))
        .ShardIterator!;

    /** A stream reader: every shard, parents before children, each read until empty or its end. */
    async function readStream(table: string): Promise<{ records: _Record[]; ended: string[] }> {
      const description = (await client.send(new DescribeStreamCommand({ StreamArn: arns.get(table) }))).StreamDescription!;
      const shards = description.Shards!;
      const done = new Set<string>();
      const records: _Record[] = [];
      const ended: string[] = [];
      while (done.size < shards.length) {
        const ready = shards.filter((s) => !done.has(s.ShardId!) && (!s.ParentShardId || done.has(s.ParentShardId) || !shards.some((p) => p.ShardId === s.ParentShardId)));
        for (const shard of ready) {
          let it: string | undefined = await shardIterator(table, shard.ShardId!, 'TRIM_HORIZON');
          for (let i = 0; it && i < 50; i++) {
            const out: GetRecordsCommandOutput = await client.send(new GetRecordsCommand({ ShardIterator: it }));
            records.push(...out.Records!);
            if (out.NextShardIterator === undefined) ended.push(shard.ShardId!);
            if (out.Records!.length === 0) break;
            it = out.NextShardIterator;
          }
          done.add(shard.ShardId!);
        }
      }
      return { records, ended };
    }

    it('lists and describes DYNAMODB streams with their ARNs and labels', async () => {
      const carts = await createTable('carts', 'NEW_AND_OLD_IMAGES', 2);
      await createTable('sessions', 'KEYS_ONLY');
      await t.engine.createStream({ name: 'kinesis-only', shardCount: 1 });
      const label = carts.createdAt.toISOString().replace(/Z$/, '');
      assert.equal(carts.arn, `arn:aws:dynamodb:us-east-1:000000000000:table/carts/stream/${label}`);

      const listed = await client.send(new ListStreamsCommand({}));
      assert.deepEqual(listed.Streams!.map((s) => [s.TableName, s.StreamArn]), [['carts', carts.arn], ['sessions', arns.get('sessions')]]);
      assert.equal(listed.Streams![0]!.StreamLabel, label);
      assert.equal(listed.LastEvaluatedStreamArn, undefined);
      const first = await client.send(new ListStreamsCommand({ Limit: 1 }));
      assert.deepEqual([first.Streams!.length, first.LastEvaluatedStreamArn], [1, carts.arn]);
      const next = await client.send(new ListStreamsCommand({ ExclusiveStartStreamArn: first.LastEvaluatedStreamArn }));
      assert.deepEqual(next.Streams!.map((s) => s.TableName), ['sessions']);
      assert.deepEqual((await client.send(new ListStreamsCommand({ TableName: 'sessions' }))).Streams!.map((s) => s.TableName), ['sessions']);

      const described = (await client.send(new DescribeStreamCommand({ StreamArn: carts.arn }))).StreamDescription!;
      assert.equal(described.StreamStatus, 'ENABLED');
      assert.equal(described.StreamViewType, 'NEW_AND_OLD_IMAGES');
      assert.equal(described.TableName, 'carts');
      assert.equal(described.StreamLabel, label);
      assert.equal(described.CreationRequestDateTime!.getTime(), carts.createdAt.getTime());
      assert.equal(described.KeySchema, undefined, 'no key schema is known before the first write');
      assert.deepEqual(described.Shards!.map((s) => s.ShardId), ['shardId-000000000000', 'shardId-000000000001']);
      assert.match(described.Shards![0]!.SequenceNumberRange!.StartingSequenceNumber!, /^\d{21}$/);
      assert.equal(described.Shards![0]!.SequenceNumberRange!.EndingSequenceNumber, undefined);
      const paged = (await client.send(new DescribeStreamCommand({ StreamArn: carts.arn, Limit: 1 }))).StreamDescription!;
      assert.deepEqual([paged.Shards!.length, paged.LastEvaluatedShardId], [1, 'shardId-000000000000']);
      const rest = (await client.send(new DescribeStreamCommand({ StreamArn: carts.arn, ExclusiveStartShardId: paged.LastEvaluatedShardId }))).StreamDescription!;
      assert.deepEqual(rest.Shards!.map((s) => s.ShardId), ['shardId-000000000001']);

      await rejectsAs(client.send(new DescribeStreamCommand({ StreamArn: carts.arn.replace(label, '2020-01-01T00:00:00.000') })), ResourceNotFoundException,
        /Requested resource not found: Stream: .* not found/);
      await rejectsAs(client.send(new DescribeStreamCommand({ StreamArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/kinesis-only/stream/x' })), ResourceNotFoundException);
    });

    it('reads writeItems changes as INSERT, MODIFY and REMOVE records in AWS shapes, with the images of the view type', async () => {
      const keys = (id: string) => ({ cartId: S(id), line: N('1') });
      await t.engine.writeItems('carts', [
        { keys: keys('c-1'), newImage: { ...keys('c-1'), qty: N('1'), blob: { B: b64('bytes') } } },
        { keys: keys('c-2'), newImage: { ...keys('c-2'), qty: N('5') } },
      ]);
      await t.engine.writeItems('carts', [{ keys: keys('c-1'), newImage: { ...keys('c-1'), qty: N('2'), blob: { B: b64('bytes') } } }]);
      await t.engine.writeItems('carts', [{ keys: keys('c-1'), newImage: { ...keys('c-1'), qty: N('2'), blob: { B: b64('bytes') } } }]); // no-op: no record
      await t.engine.writeItems('carts', [{ keys: keys('c-2') }]);

      const { records } = await readStream('carts');
      assert.equal(records.length, 4);
      const byItem = (id: string) => records.filter((r) => r.dynamodb!.Keys!.cartId!.S === id);
      assert.deepEqual(byItem('c-1').map((r) => r.eventName), ['INSERT', 'MODIFY']);
      assert.deepEqual(byItem('c-2').map((r) => r.eventName), ['INSERT', 'REMOVE']);
      for (const r of records) {
        assert.match(r.eventID!, /^[0-9a-f]{32}$/);
        assert.equal(r.eventVersion, '1.1');
        assert.equal(r.eventSource, 'aws:dynamodb');
        assert.equal(r.awsRegion, 'us-east-1');
        assert.match(r.dynamodb!.SequenceNumber!, /^\d{21}$/);
        assert.ok(r.dynamodb!.SizeBytes! > 0);
        assert.equal(r.dynamodb!.StreamViewType, 'NEW_AND_OLD_IMAGES');
        assert.ok(r.dynamodb!.ApproximateCreationDateTime instanceof Date);
        assert.equal(r.dynamodb!.ApproximateCreationDateTime.getMilliseconds(), 0, 'whole seconds');
        assert.ok(Math.abs(r.dynamodb!.ApproximateCreationDateTime.getTime() - Date.now()) < 60_000);
      }
      const [insert, modify] = byItem('c-1');
      assert.deepEqual(insert!.dynamodb!.Keys, { cartId: { S: 'c-1' }, line: { N: '1' } });
      assert.equal(insert!.dynamodb!.NewImage!.qty!.N, '1');
      assert.deepEqual(Buffer.from(insert!.dynamodb!.NewImage!.blob!.B!).toString(), 'bytes', 'binary attributes arrive as bytes');
      assert.equal(insert!.dynamodb!.OldImage, undefined);
      assert.deepEqual([modify!.dynamodb!.OldImage!.qty!.N, modify!.dynamodb!.NewImage!.qty!.N], ['1', '2']);
      const remove = byItem('c-2')[1]!;
      assert.equal(remove.dynamodb!.NewImage, undefined);
      assert.equal(remove.dynamodb!.OldImage!.qty!.N, '5', 'a REMOVE carries the old image');

      const described = (await client.send(new DescribeStreamCommand({ StreamArn: arns.get('carts') }))).StreamDescription!;
      assert.deepEqual(described.KeySchema, [{ AttributeName: 'cartId', KeyType: 'HASH' }, { AttributeName: 'line', KeyType: 'RANGE' }]);

      await t.engine.writeItems('sessions', [{ keys: { id: S('s-1') }, newImage: { id: S('s-1'), user: S('u') } }]);
      const [keysOnly] = (await readStream('sessions')).records;
      assert.deepEqual(keysOnly!.dynamodb!.Keys, { id: { S: 's-1' } });
      assert.equal(keysOnly!.dynamodb!.NewImage, undefined, 'KEYS_ONLY carries no images');
      assert.equal(keysOnly!.dynamodb!.StreamViewType, 'KEYS_ONLY');
    });

    it('positions AT_ and AFTER_SEQUENCE_NUMBER and LATEST iterators, and never ends an open shard', async () => {
      await createTable('orders', 'NEW_IMAGE');
      const seqs: string[] = [];
      for (let i = 0; i < 3; i++) {
        const put = await t.engine.writeItems('orders', [{ keys: { id: N(String(i)) }, newImage: { id: N(String(i)) } }]);
        seqs.push(put.records[0]!.sequenceNumber!);
      }
      const shardId = 'shardId-000000000000';
      const ids = async (it: string) => (await client.send(new GetRecordsCommand({ ShardIterator: it }))).Records!.map((r) => r.dynamodb!.Keys!.id!.N);
      assert.deepEqual(await ids(await shardIterator('orders', shardId, 'AT_SEQUENCE_NUMBER', seqs[1])), ['1', '2']);
      assert.deepEqual(await ids(await shardIterator('orders', shardId, 'AFTER_SEQUENCE_NUMBER', seqs[1])), ['2']);
      const latest = await shardIterator('orders', shardId, 'LATEST');
      assert.match(latest, /^arn:aws:dynamodb:us-east-1:000000000000:table\/orders\/stream\/[^|]+\|1\|/, "AWS's iterator form");
      const empty = await client.send(new GetRecordsCommand({ ShardIterator: latest }));
      assert.deepEqual(empty.Records, []);
      assert.ok(empty.NextShardIterator, 'an open shard never ends its iterator chain');
      await t.engine.writeItems('orders', [{ keys: { id: N('3') }, newImage: { id: N('3') } }]);
      assert.deepEqual(await ids(empty.NextShardIterator!), ['3']);
      const limited = await client.send(new GetRecordsCommand({ ShardIterator: await shardIterator('orders', shardId, 'TRIM_HORIZON'), Limit: 2 }));
      assert.deepEqual(limited.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['0', '1']);
      assert.deepEqual(await ids(limited.NextShardIterator!), ['2', '3'], 'the chain continues where it stopped');
      await rejectsAs(shardIterator('orders', shardId, 'AT_SEQUENCE_NUMBER'), 'ValidationException');
      await rejectsAs(shardIterator('orders', shardId, 'AT_SEQUENCE_NUMBER', (BigInt(seqs[1]!) + 1_000_000n).toString()), 'ValidationException', /no record has been given that number yet/);
      await rejectsAs(shardIterator('orders', shardId, 'AT_TIMESTAMP' as ShardIteratorType), 'ValidationException', /enum value set/);
      await rejectsAs(shardIterator('orders', 'shardId-000000000009', 'LATEST'), ResourceNotFoundException);
    });

    it('follows a shard rollover: the parent ends (no NextShardIterator), its child is found by ParentShardId', async () => {
      const before = await readStream('orders');
      assert.deepEqual(before.ended, []);
      const parentIterator = await shardIterator('orders', 'shardId-000000000000', 'LATEST');
      await t.engine.rolloverShards('orders');
      await t.engine.writeItems('orders', [{ keys: { id: N('4') }, newImage: { id: N('4') } }]);
      const end = await client.send(new GetRecordsCommand({ ShardIterator: parentIterator }));
      assert.deepEqual([end.Records, end.NextShardIterator], [[], undefined], 'the closed parent is read to its end');
      const children = (await client.send(new DescribeStreamCommand({
        StreamArn: arns.get('orders'), ShardFilter: { Type: 'CHILD_SHARDS', ShardId: 'shardId-000000000000' },
      }))).StreamDescription!.Shards!;
      assert.deepEqual(children.map((s) => [s.ShardId, s.ParentShardId]), [['shardId-000000000001', 'shardId-000000000000']]);
      const after = await readStream('orders');
      assert.deepEqual(after.ended, ['shardId-000000000000']);
      assert.deepEqual(after.records.map((r) => r.dynamodb!.Keys!.id!.N), ['0', '1', '2', '3', '4'], 'every change once, parent first');
      const parent = (await client.send(new DescribeStreamCommand({ StreamArn: arns.get('orders') }))).StreamDescription!.Shards![0]!;
      assert.match(parent.SequenceNumberRange!.EndingSequenceNumber!, /^\d{21}$/);
    });

    it('expires iterators after 15 minutes, not 5', async () => {
      const it = await shardIterator('orders', 'shardId-000000000001', 'TRIM_HORIZON');
      clockOffsetMs = 6 * 60_000;
      try {
        const out = await client.send(new GetRecordsCommand({ ShardIterator: it }));
        assert.equal(out.Records!.length, 1, 'valid after 6 minutes');
        clockOffsetMs = 15 * 60_000 + 1000;
        await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: it })), ExpiredIteratorException, /tolerated delay of 900000 milliseconds/);
      } finally {
        clockOffsetMs = 0;
      }
    });

    it('answers bad input with the service\'s errors', async () => {
      const it = await shardIterator('orders', 'shardId-000000000001', 'TRIM_HORIZON');
      await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: it, Limit: 1001 })), 'ValidationException',
        /Value '1001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 1000/);
      await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: 'garbage' })), 'ValidationException', /Invalid ShardIterator/);
      await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: it.replace('table/orders/', 'table/carts/') })), ResourceNotFoundException,
        /Requested resource not found/);
      await rejectsAs(client.send(new DescribeStreamCommand({ StreamArn: 'too-short' })), 'ValidationException', /at 'streamArn'/);
    });

    it('raises TrimmedDataAccessException for positions before records past the 24-hour retention', async () => {
      await ensurePartitions(t.engine.handle, new Date(Date.now() - 3 * 86_400_000), 3);
      const stream = await createTable('aged', 'NEW_IMAGE');
      const seqs: string[] = [];
      for (let i = 0; i < 3; i++) {
        seqs.push((await t.engine.writeItems('aged', [{ keys: { id: N(String(i)) }, newImage: { id: N(String(i)) } }])).records[0]!.sequenceNumber!);
      }
      const shardId = 'shardId-000000000000';
      const afterFirst = await shardIterator('aged', shardId, 'AFTER_SEQUENCE_NUMBER', seqs[0]);
      const age = (filter: ReturnType<typeof sql>) => t.engine.handle.query(sql`
        update records set arrived_at = arrived_at - interval '25 hours'
         where shard_key in (select key from shards where stream_id = ${stream.id}) and ${filter}`);
      await age(sql`true`);
      await t.engine.writeItems('aged', [{ keys: { id: N('99') }, newImage: { id: N('99') } }]);

      await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: afterFirst })), TrimmedDataAccessException);
      await rejectsAs(shardIterator('aged', shardId, 'AT_SEQUENCE_NUMBER', seqs[1]), TrimmedDataAccessException);
      const horizon = await client.send(new GetRecordsCommand({ ShardIterator: await shardIterator('aged', shardId, 'TRIM_HORIZON') }));
      assert.deepEqual(horizon.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['99'], 'TRIM_HORIZON skips what passed retention');

      // Once the trimmer has deleted them, the gap in the per-shard ordinals still tells.
      await t.engine.handle.query(sql`delete from records where shard_key in (select key from shards where stream_id = ${stream.id})
        and arrived_at < now() - interval '24 hours'`);
      await rejectsAs(client.send(new GetRecordsCommand({ ShardIterator: afterFirst })), TrimmedDataAccessException);
      const fresh = horizon.Records![0]!.dynamodb!.SequenceNumber!;
      const at = await client.send(new GetRecordsCommand({ ShardIterator: await shardIterator('aged', shardId, 'AT_SEQUENCE_NUMBER', fresh) }));
      assert.deepEqual(at.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['99'], 'a retained position is not trimmed');
    });

    it('does not call a position trimmed when only the record already read is gone', async () => {
      const stream = await createTable('edge', 'NEW_IMAGE');
      for (const id of ['1', '2']) await t.engine.writeItems('edge', [{ keys: { id: N(id) }, newImage: { id: N(id) } }]);
      const shardId = 'shardId-000000000000';
      const first = await client.send(new GetRecordsCommand({ ShardIterator: await shardIterator('edge', shardId, 'TRIM_HORIZON'), Limit: 1 }));
      assert.deepEqual(first.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['1']);
      // The trimmer takes the record just read (it reached the retention edge); the next is kept.
      await t.engine.handle.query(sql`delete from records where shard_key in (select key from shards where stream_id = ${stream.id})
        and seq = (select min(seq) from records where shard_key in (select key from shards where stream_id = ${stream.id}))`);
      const next = await client.send(new GetRecordsCommand({ ShardIterator: first.NextShardIterator! }));
      assert.deepEqual(next.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['2'], 'nothing was lost');

      // A LATEST iterator on a quiet table stands after the newest record; that one is trimmed,
      // then a new write comes: the reader has missed nothing.
      const latest = await shardIterator('edge', shardId, 'LATEST');
      const afterTwo = await shardIterator('edge', shardId, 'AFTER_SEQUENCE_NUMBER', next.Records![0]!.dynamodb!.SequenceNumber!);
      await t.engine.handle.query(sql`delete from records where shard_key in (select key from shards where stream_id = ${stream.id})`);
      await t.engine.writeItems('edge', [{ keys: { id: N('3') }, newImage: { id: N('3') } }]);
      for (const iterator of [latest, afterTwo]) {
        const got = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
        assert.deepEqual(got.Records!.map((r) => r.dynamodb!.Keys!.id!.N), ['3']);
      }
    });
  });
}
