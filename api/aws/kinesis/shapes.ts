/**
 * Input shapes of the Kinesis operations served, with the constraints of the Kinesis service
 * model (Kinesis_20131202; aws-semantics §2.3). Record data keeps the classic 1 MiB maximum.
 */
import { type MemberShape, type Shape, structure } from '../validation.ts';

const streamName: Shape = { type: 'string', min: 1, max: 128, pattern: '[a-zA-Z0-9_.-]+' };
const streamArn: Shape = { type: 'string', min: 1, max: 2048, pattern: 'arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+' };
const shardId: Shape = { type: 'string', min: 1, max: 128, pattern: '[a-zA-Z0-9_.-]+' };
const hashKey: Shape = { type: 'string', pattern: '0|([1-9]\\d{0,38})' };
const sequenceNumber: Shape = { type: 'string', pattern: '0|([1-9]\\d{0,128})' };
const partitionKey: Shape = { type: 'string', min: 1, max: 256 };
const data: Shape = { type: 'blob', min: 0, max: 1_048_576 };
const positiveInteger: Shape = { type: 'integer', min: 1, max: 100_000 };
const nextToken: Shape = { type: 'string', min: 1, max: 1_048_576 };
const tagKey: Shape & { type: 'string' } = { type: 'string', min: 1, max: 128 };
const tagValue: Shape = { type: 'string', min: 0, max: 256 };
const required = <S extends Shape>(shape: S): MemberShape => ({ ...shape, required: true });

export const ITERATOR_TYPES = ['AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER', 'TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'] as const;
export const SHARD_FILTER_TYPES = ['AFTER_SHARD_ID', 'AT_TRIM_HORIZON', 'FROM_TRIM_HORIZON', 'AT_LATEST', 'AT_TIMESTAMP', 'FROM_TIMESTAMP'] as const;

/** StreamName or StreamARN, which every operation on one stream accepts. */
const stream = { StreamName: streamName, StreamARN: streamArn };

export interface StreamRef { StreamName?: string; StreamARN?: string }
export const SHAPES = {
  CreateStream: structure({
    StreamName: required(streamName),
    ShardCount: positiveInteger,
    StreamModeDetails: structure({ StreamMode: required({ type: 'string', enum: ['PROVISIONED', 'ON_DEMAND'] }) }),
    Tags: { type: 'map', key: tagKey, value: tagValue, min: 1, max: 200 },
  }),
  DeleteStream: structure({ ...stream, EnforceConsumerDeletion: { type: 'boolean' } }),
  DescribeStream: structure({ ...stream, Limit: { type: 'integer', min: 1, max: 10_000 }, ExclusiveStartShardId: shardId }),
  DescribeStreamSummary: structure({ ...stream }),
  ListStreams: structure({
    Limit: { type: 'integer', min: 1, max: 10_000 },
    ExclusiveStartStreamName: streamName,
    NextToken: nextToken,
  }),
  ListShards: structure({
    ...stream,
    NextToken: nextToken,
    ExclusiveStartShardId: shardId,
    MaxResults: { type: 'integer', min: 1, max: 10_000 },
    StreamCreationTimestamp: { type: 'timestamp' },
    ShardFilter: structure({
      Type: required({ type: 'string', enum: SHARD_FILTER_TYPES }),
      ShardId: shardId,
      Timestamp: { type: 'timestamp' },
    }),
  }),
  PutRecord: structure({
    ...stream,
    Data: required(data),
    PartitionKey: required(partitionKey),
    ExplicitHashKey: hashKey,
    SequenceNumberForOrdering: sequenceNumber,
  }),
  PutRecords: structure({
    ...stream,
    Records: required({
      type: 'list', min: 1, max: 500,
      member: structure({ Data: required(data), ExplicitHashKey: hashKey, PartitionKey: required(partitionKey) }),
    }),
  }),
  GetShardIterator: structure({
    ...stream,
    ShardId: required(shardId),
    ShardIteratorType: required({ type: 'string', enum: ITERATOR_TYPES }),
    StartingSequenceNumber: sequenceNumber,
    Timestamp: { type: 'timestamp' },
  }),
  GetRecords: structure({
    ShardIterator: required({ type: 'string', min: 1, max: 512 }),
    Limit: { type: 'integer', min: 1, max: 10_000 },
    StreamARN: streamArn,
  }),
  SplitShard: structure({ ...stream, ShardToSplit: required(shardId), NewStartingHashKey: required(hashKey) }),
  MergeShards: structure({ ...stream, ShardToMerge: required(shardId), AdjacentShardToMerge: required(shardId) }),
  UpdateShardCount: structure({
    ...stream,
    TargetShardCount: required(positiveInteger),
    ScalingType: required({ type: 'string', enum: ['UNIFORM_SCALING'] }),
  }),
  IncreaseStreamRetentionPeriod: structure({ ...stream, RetentionPeriodHours: required({ type: 'integer' }) }),
  DecreaseStreamRetentionPeriod: structure({ ...stream, RetentionPeriodHours: required({ type: 'integer' }) }),
  AddTagsToStream: structure({ ...stream, Tags: required({ type: 'map', key: tagKey, value: tagValue, min: 1, max: 200 }) }),
  RemoveTagsFromStream: structure({ ...stream, TagKeys: required({ type: 'list', member: tagKey, min: 1, max: 50 }) }),
  ListTagsForStream: structure({ ...stream, ExclusiveStartTagKey: tagKey, Limit: { type: 'integer', min: 1, max: 50 } }),
} as const;
