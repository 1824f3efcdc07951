/**
 * The on-failure invocation record: what AWS sends to an OnFailure destination when a batch is
 * discarded (reference §4.7, §7 items 12 and 24). shardline stores it on the discard's Failure
 * row and POSTs it to the mapping's onFailureUrl, so consumers written against AWS's record
 * (re-reading the stream by sequence range) work unchanged.
 *
 * Details consumers rely on: `responseContext` is absent for RecordAgeExceeded (the function
 * did not run for these records); `functionError` is null when a partial-batch response
 * exhausted the retries; Kinesis arrival times carry milliseconds, DynamoDB's whole seconds.
 */
import { isoSeconds } from './eventShapes.ts';

export type FailureCondition = 'RetryAttemptsExhausted' | 'RecordAgeExceeded';

export interface OnFailureInput {
  kind: 'KINESIS' | 'DYNAMODB';
  condition: FailureCondition;
  requestId: string;
  functionArn: string;
  approximateInvokeCount: number;
  functionError: string | null;
  /** The last invocation's HTTP status (default 200: a function error is still a 200 Invoke). */
  statusCode?: number;
  shardId: string;
  streamArn: string;
  startSequenceNumber: string;
  endSequenceNumber: string;
  firstArrival: Date;
  lastArrival: Date;
  batchSize: number;
  now: Date;
}

export function buildOnFailureRecord(input: OnFailureInput): Record<string, unknown> {
  const arrival = input.kind === 'KINESIS' ? (d: Date) => d.toISOString() : isoSeconds;
  return {
    requestContext: {
      requestId: input.requestId,
      functionArn: input.functionArn,
      condition: input.condition,
      approximateInvokeCount: input.approximateInvokeCount,
    },
    ...(input.condition === 'RetryAttemptsExhausted'
      ? { responseContext: { statusCode: input.statusCode ?? 200, executedVersion: '$LATEST', functionError: input.functionError } }
      : {}),
    version: '1.0',
    timestamp: input.now.toISOString(),
    [input.kind === 'KINESIS' ? 'KinesisBatchInfo' : 'DDBStreamBatchInfo']: {
      shardId: input.shardId,
      startSequenceNumber: input.startSequenceNumber,
      endSequenceNumber: input.endSequenceNumber,
      approximateArrivalOfFirstRecord: arrival(input.firstArrival),
      approximateArrivalOfLastRecord: arrival(input.lastArrival),
      batchSize: input.batchSize,
      streamArn: input.streamArn,
    },
  };
}

/** The ARN AWS would give the function, as handlers see it in invokedFunctionArn. */
export function functionArnOf(region: string, accountId: string, name: string): string {
  return `arn:aws:lambda:${region}:${accountId}:function:${name}`;
}
