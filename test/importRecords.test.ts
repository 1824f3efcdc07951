import assert from 'node:assert/strict';
import type { ErrorCode } from '../engine/errors.ts';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { StoredRecord } from '../engine/records/readRecords.ts';
import { hashKeyOf } from '../engine/streams/hashKeys.ts';
import { type TestEngine, backends, openTestEngine, rejectsWith as rejectsWithCode } from './harness.ts';

// Copies of the shared fixtures (test/fixtures.test.ts checks they match the originals).
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
type LambdaEvent = { Records: Record<string, any>[] };
const fixture = (name: string): LambdaEvent => JSON.parse(readFileSync(`${FIXTURES}/${name}`, 'utf8')) as LambdaEvent;

/** The engine rejects with `code` and a message naming `field`. */
const rejectsWith = (promise: Promise<unknown>, code: string, field: string) =>
  rejectsWithCode(promise, code as ErrorCode, new RegExp(field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

for (const backend of backends) {
  describe(`importRecords (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    const readAll = async (name: string): Promise<StoredRecord[]> =>
      (await t.engine.reader.page(name, { first: 1000 })).records.map((r) => r.record);

    it('round-trips a Kinesis Lambda event', async () => {
      const event = fixture('kinesis-lambda-event.json');
      const stream = await t.engine.catalog.create({ name: 'orders', shardCount: 4 });
      const shards = await t.engine.catalog.shards(stream);
      let notified = 0;
      const off = t.engine.events.on('records', (e) => { if (e.streamName === 'orders') notified++; });
      const result = await t.engine.importRecords('orders', event);
      off();
      assert.equal(notified, 1);
      assert.equal(result.failedRecordCount, 0);
      assert.equal(result.records.length, 3);

      const records = await readAll('orders');
      assert.deepEqual(records.map((r) => r.eventID), event.Records.map((r) => r.eventID));
      event.Records.forEach((original, i) => {
        const r = records[i]!;
        assert.equal(r.partitionKey, original.kinesis.partitionKey);
        assert.equal(r.data, original.kinesis.data);
        assert.equal(r.eventName, null);
        assert.equal(r.sequenceNumber, result.records[i]!.sequenceNumber);
        assert.equal(r.shardId, result.records[i]!.shardId);
        assert.notEqual(r.sequenceNumber, original.kinesis.sequenceNumber);
        assert.deepEqual(r.origin, {
          eventID: original.eventID,
          sequenceNumber: original.kinesis.sequenceNumber,
          approximateArrivalTimestamp: original.kinesis.approximateArrivalTimestamp,
          eventSourceARN: original.eventSourceARN,
          awsRegion: original.awsRegion,
          invokeIdentityArn: original.invokeIdentityArn,
        });
        const hash = hashKeyOf(r.partitionKey);
        const shard = shards.find((s) => BigInt(s.hashKeyRange.startingHashKey) <= hash && hash <= BigInt(s.hashKeyRange.endingHashKey))!;
        assert.equal(r.shardId, shard.shardId);
      });
      // The size is counted as putRecords counts it: data plus partition key.
      const first = event.Records[0]!.kinesis;
      assert.equal(records[0]!.sizeBytes, Buffer.from(first.data, 'base64').length + Buffer.byteLength(first.partitionKey));
    });

    it('round-trips a DynamoDB Lambda event', async () => {
      const event = fixture('dynamodb-lambda-event.json');
      await t.engine.catalog.create({ name: 'Carts', kind: 'DYNAMODB', shardCount: 3 });
      const result = await t.engine.importRecords('Carts', event);
      assert.equal(result.records.length, 3);
      const records = await readAll('Carts');
      assert.deepEqual(records.map((r) => r.eventName), ['INSERT', 'MODIFY', 'REMOVE']);
      assert.deepEqual(records.map((r) => r.eventID), event.Records.map((r) => r.eventID));
      assert.equal(new Set(records.map((r) => r.shardId)).size, 1, 'one item, one shard');
      assert.equal(new Set(records.map((r) => r.partitionKey)).size, 1);
      event.Records.forEach((original, i) => {
        const r = records[i]!;
        const ddb = original.dynamodb;
        assert.deepEqual(r.keys, ddb.Keys);
        assert.deepEqual(r.newImage, ddb.NewImage ?? null);
        assert.deepEqual(r.oldImage, ddb.OldImage ?? null);
        assert.equal(r.sequenceNumber, result.records[i]!.sequenceNumber);
        const data = JSON.parse(r.data) as Record<string, unknown>;
        assert.equal(data.SequenceNumber, r.sequenceNumber);
        assert.notEqual(data.SequenceNumber, ddb.SequenceNumber);
        assert.equal(data.SizeBytes, r.sizeBytes);
        assert.equal(data.StreamViewType, 'NEW_AND_OLD_IMAGES');
        assert.deepEqual(r.origin, {
          eventID: original.eventID,
          SequenceNumber: ddb.SequenceNumber,
          ApproximateCreationDateTime: ddb.ApproximateCreationDateTime,
          eventSourceARN: original.eventSourceARN,
          awsRegion: original.awsRegion,
          ...(original.userIdentity ? { userIdentity: original.userIdentity } : {}),
        });
      });
      assert.deepEqual((records[2]!.origin as { userIdentity: unknown }).userIdentity, { type: 'Service', principalId: 'dynamodb.amazonaws.com' });
    });

    it('trims imported DynamoDB images to the stream\'s view type', async () => {
      await t.engine.catalog.create({ name: 'carts-keys', kind: 'DYNAMODB', shardCount: 1, viewType: 'KEYS_ONLY' });
      await t.engine.catalog.create({ name: 'carts-new', kind: 'DYNAMODB', shardCount: 1, viewType: 'NEW_IMAGE' });
      const event = fixture('dynamodb-lambda-event.json');
      await t.engine.importRecords('carts-keys', event);
      await t.engine.importRecords('carts-new', event);
      for (const r of await readAll('carts-keys')) {
        assert.equal(r.newImage, null);
        assert.equal(r.oldImage, null);
        const data = JSON.parse(r.data) as Record<string, unknown>;
        assert.ok(!('NewImage' in data) && !('OldImage' in data));
        assert.equal(data.StreamViewType, 'KEYS_ONLY');
      }
      const withNew = await readAll('carts-new');
      assert.deepEqual(withNew.map((r) => r.newImage !== null), [true, true, false]);
      assert.ok(withNew.every((r) => r.oldImage === null));
    });

    it('updates the items table so later writeItems see the imported item', async () => {
      const event = fixture('dynamodb-lambda-event.json');
      await t.engine.catalog.create({ name: 'carts-items', kind: 'DYNAMODB', shardCount: 2 });
      await t.engine.importRecords('carts-items', { Records: event.Records.slice(0, 2) });
      const keys = event.Records[0]!.dynamodb.Keys;
      const imported = event.Records[1]!.dynamodb.NewImage;
      await t.engine.writeItems('carts-items', [{ keys, newImage: { ...imported, qty: { N: '4' } } }]);
      const afterImport = await readAll('carts-items');
      const written = afterImport.at(-1)!;
      assert.equal(written.eventName, 'MODIFY');
      assert.deepEqual(written.oldImage, imported);
      assert.equal(written.shardId, afterImport[0]!.shardId);
      // An imported REMOVE deletes the item: the next write is an INSERT.
      await t.engine.importRecords('carts-items', { Records: event.Records.slice(2) });
      await t.engine.writeItems('carts-items', [{ keys, newImage: { sku: { S: 'tea-black' } } }]);
      assert.deepEqual((await readAll('carts-items')).slice(-2).map((r) => r.eventName), ['REMOVE', 'INSERT']);
    });

    it('rejects an event whose kind does not match the stream, or mixes kinds', async () => {
      await t.engine.catalog.create({ name: 'k-only', shardCount: 1 });
      await t.engine.catalog.create({ name: 'd-only', kind: 'DYNAMODB', shardCount: 1 });
      const kinesis = fixture('kinesis-lambda-event.json');
      const dynamodb = fixture('dynamodb-lambda-event.json');
      await rejectsWith(t.engine.importRecords('d-only', kinesis), 'INVALID_ARGUMENT', 'event.Records[0].eventSource');
      await rejectsWith(t.engine.importRecords('k-only', dynamodb), 'INVALID_ARGUMENT', 'event.Records[0].eventSource');
      const mixed = { Records: [kinesis.Records[0], dynamodb.Records[0]] };
      await rejectsWith(t.engine.importRecords('k-only', mixed), 'INVALID_ARGUMENT', 'event.Records[1].eventSource');
      assert.equal((await readAll('k-only')).length, 0);
      assert.equal((await readAll('d-only')).length, 0);
    });

    it('rejects a malformed event whole, naming the offending path', async () => {
      await t.engine.catalog.create({ name: 'k-bad', shardCount: 2 });
      await t.engine.catalog.create({ name: 'd-bad', kind: 'DYNAMODB', shardCount: 2 });
      const kinesis = () => fixture('kinesis-lambda-event.json');
      const dynamodb = () => fixture('dynamodb-lambda-event.json');

      const badData = kinesis();
      badData.Records[1]!.kinesis.data = 'not base64!';
      await rejectsWith(t.engine.importRecords('k-bad', badData), 'INVALID_ARGUMENT', 'event.Records[1].kinesis.data');
      const noKey = kinesis();
      delete noKey.Records[2]!.kinesis.partitionKey;
      await rejectsWith(t.engine.importRecords('k-bad', noKey), 'INVALID_ARGUMENT', 'event.Records[2].kinesis.partitionKey');
      const noPayload = kinesis();
      delete noPayload.Records[0]!.kinesis;
      await rejectsWith(t.engine.importRecords('k-bad', noPayload), 'INVALID_ARGUMENT', 'event.Records[0].kinesis');

      const badNumber = dynamodb();
      badNumber.Records[2]!.dynamodb.OldImage.qty = { N: 'three' };
      await rejectsWith(t.engine.importRecords('d-bad', badNumber), 'INVALID_ARGUMENT', 'event.Records[2].dynamodb.OldImage.qty');
      const badName = dynamodb();
      badName.Records[1]!.eventName = 'UPSERT';
      await rejectsWith(t.engine.importRecords('d-bad', badName), 'INVALID_ARGUMENT', 'event.Records[1].eventName');
      const noKeys = dynamodb();
      delete noKeys.Records[0]!.dynamodb.Keys;
      await rejectsWith(t.engine.importRecords('d-bad', noKeys), 'INVALID_ARGUMENT', 'event.Records[0].dynamodb.Keys');
      const newOnRemove = dynamodb();
      newOnRemove.Records[2]!.dynamodb.NewImage = newOnRemove.Records[2]!.dynamodb.OldImage;
      await rejectsWith(t.engine.importRecords('d-bad', newOnRemove), 'INVALID_ARGUMENT', 'event.Records[2].dynamodb.NewImage');
      const wrongKey = dynamodb();
      wrongKey.Records[1]!.dynamodb.NewImage.line = { N: '2' };
      await rejectsWith(t.engine.importRecords('d-bad', wrongKey), 'INVALID_ARGUMENT', 'event.Records[1].dynamodb.NewImage.line');

      await rejectsWith(t.engine.importRecords('k-bad', { Records: [] }), 'INVALID_ARGUMENT', 'event.Records');
      await rejectsWith(t.engine.importRecords('k-bad', [kinesis().Records[0]]), 'INVALID_ARGUMENT', 'event');
      await rejectsWith(t.engine.importRecords('k-bad', { Records: [null] }), 'INVALID_ARGUMENT', 'event.Records[0]');
      const many = { Records: Array.from({ length: 10_001 }, () => kinesis().Records[0]) };
      await rejectsWith(t.engine.importRecords('k-bad', many), 'LIMIT_EXCEEDED', '10000');

      // Nothing was written by any of them, items included: the cart item is still new.
      assert.equal((await readAll('k-bad')).length, 0);
      assert.equal((await readAll('d-bad')).length, 0);
      const keys = dynamodb().Records[0]!.dynamodb.Keys;
      await t.engine.writeItems('d-bad', [{ keys, newImage: { qty: { N: '1' } } }]);
      assert.deepEqual((await readAll('d-bad')).map((r) => r.eventName), ['INSERT']);
    });
  });
}
