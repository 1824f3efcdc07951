/**
 * The on-failure invocation record: exact objects (keys, order, time formats) for both stream
 * kinds and both conditions, and the null functionError of an exhausted partial failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildOnFailureRecord, functionArnOf, type OnFailureInput } from '../engine/delivery/onFailureRecord.ts';

const kinesis: OnFailureInput = {
  kind: 'KINESIS',
  condition: 'RetryAttemptsExhausted',
  requestId: 'c9b8fa9f-5a7f-4e9a-9a2b-3b1f0e3f4a11',
  functionArn: 'arn:aws:lambda:us-east-2:123456789012:function:myfunction',
  approximateInvokeCount: 3,
  functionError: 'Unhandled',
  shardId: 'shardId-000000000001',
  streamArn: 'arn:aws:kinesis:us-east-2:123456789012:stream/mystream',
  startSequenceNumber: '49601189658422359378836298521827638475320189012309704722',
  endSequenceNumber: '49601189658422359378836298522902373528957594348623495186',
  firstArrival: new Date('2019-11-14T00:38:04.835Z'),
  lastArrival: new Date('2019-11-14T00:38:05.580Z'),
  batchSize: 500,
  now: new Date('2019-11-14T00:38:06.021Z'),
};

const dynamodb: OnFailureInput = {
  ...kinesis,
  kind: 'DYNAMODB',
  shardId: 'shardId-00000001573689847184-864758bb',
  streamArn: 'arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388',
  startSequenceNumber: '8100000000000483635853',
  endSequenceNumber: '8100000000000483635853',
  firstArrival: new Date('2019-11-14T00:13:19.000Z'),
  lastArrival: new Date('2019-11-14T00:13:19.999Z'),
  batchSize: 1,
};

describe('on-failure records', () => {
  it('Kinesis, retries exhausted: the AWS record with millisecond arrival times', () => {
    const record = buildOnFailureRecord(kinesis);
    assert.equal(JSON.stringify(record), JSON.stringify({
      requestContext: {
        requestId: 'c9b8fa9f-5a7f-4e9a-9a2b-3b1f0e3f4a11',
        functionArn: 'arn:aws:lambda:us-east-2:123456789012:function:myfunction',
        condition: 'RetryAttemptsExhausted',
        approximateInvokeCount: 3,
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      timestamp: '2019-11-14T00:38:06.021Z',
      KinesisBatchInfo: {
        shardId: 'shardId-000000000001',
        startSequenceNumber: '49601189658422359378836298521827638475320189012309704722',
        endSequenceNumber: '49601189658422359378836298522902373528957594348623495186',
        approximateArrivalOfFirstRecord: '2019-11-14T00:38:04.835Z',
        approximateArrivalOfLastRecord: '2019-11-14T00:38:05.580Z',
        batchSize: 500,
        streamArn: 'arn:aws:kinesis:us-east-2:123456789012:stream/mystream',
      },
    }));
  });

  it('DynamoDB, retries exhausted: DDBStreamBatchInfo with whole-second arrival times', () => {
    const record = buildOnFailureRecord(dynamodb);
    assert.deepEqual(Object.keys(record), ['requestContext', 'responseContext', 'version', 'timestamp', 'DDBStreamBatchInfo']);
    assert.equal(JSON.stringify(record.DDBStreamBatchInfo), JSON.stringify({
      shardId: 'shardId-00000001573689847184-864758bb',
      startSequenceNumber: '8100000000000483635853',
      endSequenceNumber: '8100000000000483635853',
      approximateArrivalOfFirstRecord: '2019-11-14T00:13:19Z',
      approximateArrivalOfLastRecord: '2019-11-14T00:13:19Z',
      batchSize: 1,
      streamArn: 'arn:aws:dynamodb:us-east-2:123456789012:table/mytable/stream/2019-11-14T00:04:06.388',
    }));
    assert.equal(record.timestamp, '2019-11-14T00:38:06.021Z');
  });

  it('record age exceeded: no responseContext, for both kinds', () => {
    for (const input of [kinesis, dynamodb]) {
      const record = buildOnFailureRecord({ ...input, condition: 'RecordAgeExceeded', approximateInvokeCount: 1, functionError: null });
      const info = input.kind === 'KINESIS' ? 'KinesisBatchInfo' : 'DDBStreamBatchInfo';
      assert.deepEqual(Object.keys(record), ['requestContext', 'version', 'timestamp', info]);
      assert.deepEqual(record.requestContext, {
        requestId: input.requestId, functionArn: input.functionArn, condition: 'RecordAgeExceeded', approximateInvokeCount: 1,
      });
    }
  });

  it('partial-failure exhaustion: functionError null with status 200, covering the remaining records', () => {
    for (const input of [kinesis, dynamodb]) {
      const record = buildOnFailureRecord({ ...input, functionError: null, batchSize: 2 });
      assert.equal(JSON.stringify(record.responseContext), '{"statusCode":200,"executedVersion":"$LATEST","functionError":null}');
      assert.equal((record[input.kind === 'KINESIS' ? 'KinesisBatchInfo' : 'DDBStreamBatchInfo'] as { batchSize: number }).batchSize, 2);
    }
  });

  it('carries the given status code', () => {
    assert.deepEqual(buildOnFailureRecord({ ...kinesis, statusCode: 500 }).responseContext, { statusCode: 500, executedVersion: '$LATEST', functionError: 'Unhandled' });
  });

  it('names functions by their Lambda ARN', () => {
    assert.equal(functionArnOf('eu-west-1', '111122223333', 'orders-consumer'), 'arn:aws:lambda:eu-west-1:111122223333:function:orders-consumer');
  });
});
