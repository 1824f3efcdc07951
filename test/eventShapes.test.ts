/**
 * Lambda event shapes: event records against the AWS-shaped fixtures (keys, order, types),
 * arrival time formatting, the tumbling-window envelope and the 6 MB payload budget.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  MAX_PAYLOAD_BYTES, buildEvent, buildEventRecord, epochSeconds, eventOverheadBytes, eventRecordBytes, eventRecordSizer, fitToPayload,
} from '../engine/delivery/eventShapes.ts';
import { type StoredRecord, dynamodbObject } from '../engine/records/readRecords.ts';
import type { StreamInfo } from '../engine/streams/model.ts';

type Json = Record<string, unknown>;
const fixture = (name: string) => (JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as { Records: Json[] }).Records;
const kinesisFixture = fixture('kinesis-lambda-event.json');
const dynamodbFixture = fixture('dynamodb-lambda-event.json');
const ctx = { region: 'eu-west-1', accountId: '111122223333' };

const stream = (kind: StreamInfo['kind'], arn: string): StreamInfo => ({
  id: 1, name: 'orders', kind, status: 'ACTIVE', retentionHours: 24,
  viewType: kind === 'DYNAMODB' ? 'NEW_AND_OLD_IMAGES' : null, createdAt: new Date(0), arn,
  enforceThroughput: false,
});
const kinesisStream = stream('KINESIS', kinesisFixture[0]!.eventSourceARN as string);
const dynamodbStream = stream('DYNAMODB', dynamodbFixture[0]!.eventSourceARN as string);

function stored(overrides: Partial<StoredRecord>): StoredRecord {
  return {
    eventID: 'shardId-000000000000:1', shardId: 'shardId-000000000000', shardKey: 1, sequenceNumber: '1',
    partitionKey: 'p', data: '', approximateArrivalTimestamp: new Date(0), sizeBytes: 1,
    eventName: null, keys: null, newImage: null, oldImage: null, origin: null, ...overrides,
  };
}

/** The StoredRecord readRecords would return for a fixture's Kinesis event record. */
function kinesisStored(record: Json): StoredRecord {
  const k = record.kinesis as Json;
  return stored({
    eventID: record.eventID as string,
    sequenceNumber: k.sequenceNumber as string,
    partitionKey: k.partitionKey as string,
    data: k.data as string,
    approximateArrivalTimestamp: new Date(Math.round((k.approximateArrivalTimestamp as number) * 1000)),
  });
}

/** The StoredRecord readRecords would return for a fixture's DynamoDB event record. */
function dynamodbStored(record: Json): StoredRecord {
  const d = record.dynamodb as Json & { Keys: unknown };
  const arrival = new Date((d.ApproximateCreationDateTime as number) * 1000);
  const data = dynamodbObject(dynamodbStream, d, d.SequenceNumber as string, arrival, d.SizeBytes as number);
  return stored({
    eventID: record.eventID as string,
    sequenceNumber: d.SequenceNumber as string,
    data: JSON.stringify(data),
    approximateArrivalTimestamp: arrival,
    eventName: record.eventName as string,
    origin: record.userIdentity ? { eventID: record.eventID, userIdentity: record.userIdentity } : null,
  });
}

/** Keys and value types, recursively, in order: what a strict deserializer sees. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shapeOf);
  if (value !== null && typeof value === 'object') return Object.entries(value).map(([k, v]) => [k, shapeOf(v)]);
  return value === null ? 'null' : typeof value;
}

describe('Kinesis event records', () => {
  it('have the fixture shape: same keys in the same order, same types, no encryptionType', () => {
    for (const expected of kinesisFixture) {
      const actual = buildEventRecord(kinesisStream, kinesisStored(expected), ctx);
      assert.deepEqual(shapeOf(actual), shapeOf(expected));
      assert.ok(!('encryptionType' in (actual.kinesis as Json)));
    }
  });

  it('carry the stored values, the stream ARN, the region and the shardline role', () => {
    const expected = kinesisFixture[0]!;
    const actual = buildEventRecord(kinesisStream, kinesisStored(expected), ctx);
    assert.equal(actual.invokeIdentityArn, 'arn:aws:iam::111122223333:role/shardline');
    // Apart from the execution role, the record is the fixture, byte for byte.
    assert.equal(JSON.stringify({ ...actual, invokeIdentityArn: expected.invokeIdentityArn }), JSON.stringify(expected));
  });

  it('write the arrival time as epoch seconds with a millisecond fraction, never in exponent notation', () => {
    const record = (ms: number) => buildEventRecord(kinesisStream, stored({ approximateArrivalTimestamp: new Date(ms) }), ctx);
    const text = (ms: number) => /"approximateArrivalTimestamp":([^,}]+)/.exec(JSON.stringify(record(ms)))![1];
    assert.equal(text(1763900000125), '1763900000.125');
    assert.equal(text(1545084650987), '1545084650.987');
    assert.equal(text(1763900000100), '1763900000.1');
    assert.equal(text(1763900000000), '1763900000');
    assert.equal(text(1), '0.001');
    assert.equal(typeof (record(1763900000125).kinesis as Json).approximateArrivalTimestamp, 'number');
    // Every millisecond prints as its exact decimal: seconds, a point, the milliseconds without trailing zeros.
    for (let ms = 1763900000000; ms < 1763900002000; ms += 7) {
      const exact = `${Math.floor(ms / 1000)}${ms % 1000 ? `.${String(ms % 1000).padStart(3, '0').replace(/0+$/, '')}` : ''}`;
      assert.equal(String(epochSeconds(new Date(ms))), exact);
    }
  });
});

describe('DynamoDB event records', () => {
  it('have the fixture shape: same top-level keys in the same order, the dynamodb object as stored', () => {
    for (const expected of dynamodbFixture) {
      const actual = buildEventRecord(dynamodbStream, dynamodbStored(expected), ctx);
      assert.deepEqual(Object.keys(actual), Object.keys(expected));
      assert.deepEqual(actual, expected);
      assert.ok(!('invokeIdentityArn' in actual));
    }
  });

  it('pass userIdentity through only when the origin carries one (imported TTL deletes)', () => {
    const ttl = { type: 'Service', principalId: 'dynamodb.amazonaws.com' };
    const base = dynamodbStored(dynamodbFixture[2]!);
    const withIdentity = buildEventRecord(dynamodbStream, { ...base, origin: { eventID: 'x', userIdentity: ttl } }, ctx);
    assert.deepEqual(withIdentity.userIdentity, ttl);
    assert.equal(Object.keys(withIdentity).at(-1), 'userIdentity');
    for (const origin of [null, { eventID: 'x' }, { userIdentity: null }, 'text']) {
      assert.ok(!('userIdentity' in buildEventRecord(dynamodbStream, { ...base, origin }, ctx)), JSON.stringify(origin));
    }
  });
});

describe('events', () => {
  it('wrap records as {Records}', () => {
    assert.deepEqual(buildEvent([{ a: 1 }]), { Records: [{ a: 1 }] });
  });

  it('add the tumbling-window fields in AWS order, window bounds without milliseconds', () => {
    const event = buildEvent([], {
      start: new Date('2020-12-09T07:04:00.000Z'), end: new Date('2020-12-09T07:06:00.000Z'), state: {},
      shardId: 'shardId-000000000006', eventSourceARN: kinesisStream.arn, isFinalInvokeForWindow: false, isWindowTerminatedEarly: false,
    });
    assert.deepEqual(Object.keys(event), ['Records', 'window', 'state', 'shardId', 'eventSourceARN', 'isFinalInvokeForWindow', 'isWindowTerminatedEarly']);
    assert.deepEqual(event.window, { start: '2020-12-09T07:04:00Z', end: '2020-12-09T07:06:00Z' });
    assert.deepEqual(event.state, {});
  });
});

describe('payload budget', () => {
  const records = (sizes: number[]) => sizes.map((n) => ({ d: 'x'.repeat(n) }));
  const sent = (rs: Json[]) => Buffer.byteLength(JSON.stringify(buildEvent(rs)), 'utf8');

  it('measures an event record as its UTF-8 JSON', () => {
    assert.equal(eventRecordBytes({ d: 'é' }), 10);
    assert.equal(eventOverheadBytes(), '{"Records":[]}'.length);
    assert.equal(MAX_PAYLOAD_BYTES, 6 * 1024 * 1024);
  });

  it('fits as many leading records as the limit allows, counting envelope and commas exactly', () => {
    const rs = records([10, 10, 10]); // 18 bytes each
    const exactly = (n: number) => sent(rs.slice(0, n));
    assert.equal(fitToPayload(rs, exactly(2)), 2);
    assert.equal(fitToPayload(rs, exactly(2) - 1), 1);
    assert.equal(fitToPayload(rs, exactly(3)), 3);
    assert.equal(fitToPayload(rs), 3);
    assert.equal(fitToPayload([]), 0);
  });

  it('returns at least one record even when it alone exceeds the limit', () => {
    assert.equal(fitToPayload(records([100, 1]), 50), 1);
  });

  it('keeps a full invocation within 6 MB', () => {
    const rs = records(Array.from({ length: 20 }, () => 1024 * 1024)); // each a little over 1 MiB
    const n = fitToPayload(rs);
    assert.equal(n, 5);
    assert.ok(sent(rs.slice(0, n)) <= MAX_PAYLOAD_BYTES);
    assert.ok(sent(rs.slice(0, n + 1)) > MAX_PAYLOAD_BYTES);
  });

  it('sizes an event record from its fields exactly as its serialised JSON, whatever the characters', () => {
    // Strings with quotes, backslashes, control characters, non-ASCII, astral and lone surrogates.
    const awkward = ['', 'p', 'a"b\\c', 'line\nbreak\u0000\u001f\u007f', 'é', 'ключ', '🚀x', '\ud800', 'a\udc00b', '\u2028\u2029', 'x'.repeat(256)];
    const arrivals = [0, 1, 999, 1000, 1763900000000, 1763900000100, 1545084650987, 253402300799999];
    const kinesisSize = eventRecordSizer(kinesisStream, ctx);
    const dynamodbSize = eventRecordSizer(dynamodbStream, ctx);
    const otherCtx = { region: 'ap-southeast-2', accountId: '000000000000' };
    const otherSize = eventRecordSizer(stream('KINESIS', 'arn:aws:kinesis:ap-southeast-2:000000000000:stream/"quoted"é'), otherCtx);
    let checked = 0;
    for (const [i, text] of awkward.entries()) {
      for (const ms of arrivals) {
        const record = stored({
          partitionKey: text, eventID: `shardId-000000000000:${text}`, sequenceNumber: `4960${ms}`,
          data: Buffer.from(text + i).toString('base64'), approximateArrivalTimestamp: new Date(ms),
        });
        assert.equal(kinesisSize(record), eventRecordBytes(buildEventRecord(kinesisStream, record, ctx)), JSON.stringify(text));
        const otherStream = stream('KINESIS', 'arn:aws:kinesis:ap-southeast-2:000000000000:stream/"quoted"é');
        assert.equal(otherSize(record), eventRecordBytes(buildEventRecord(otherStream, record, otherCtx)));
        checked += 2;
      }
      for (const expected of dynamodbFixture) {
        const base = dynamodbStored(expected);
        const data = JSON.parse(base.data) as Json;
        const variants: StoredRecord[] = [
          { ...base, eventID: text, eventName: text },
          { ...base, eventName: null },
          { ...base, data: JSON.stringify({ ...data, Keys: { [text]: { S: text } } }) },
          { ...base, origin: { eventID: 'x', userIdentity: { type: 'Service', principalId: text } } },
        ];
        for (const record of variants) {
          assert.equal(dynamodbSize(record), eventRecordBytes(buildEventRecord(dynamodbStream, record, ctx)), JSON.stringify(text));
          checked++;
        }
      }
    }
    assert.ok(checked > 200);
  });

  it('accounts for the window fields through the overhead', () => {
    const window = {
      start: new Date(0), end: new Date(60_000), state: { big: 'y'.repeat(1000) }, shardId: 's', eventSourceARN: 'a',
      isFinalInvokeForWindow: false, isWindowTerminatedEarly: false,
    };
    const rs = records([10, 10]);
    const limit = Buffer.byteLength(JSON.stringify(buildEvent(rs, window)));
    assert.equal(fitToPayload(rs, limit, eventOverheadBytes(window)), 2);
    assert.equal(fitToPayload(rs, limit - 1, eventOverheadBytes(window)), 1);
  });
});
