/**
 * Input shapes of the DynamoDB Streams operations (DynamoDBStreams_20120810; aws-semantics §3.4).
 * One deliberate difference from the model: ShardId accepts 1–65 characters rather than 28–65,
 * because shardline's DYNAMODB shard ids keep the `shardId-000000000000` form.
 */
import { type MemberShape, type Shape, structure } from '../validation.ts';

const streamArn: Shape = { type: 'string', min: 37, max: 1024 };
const shardId: Shape = { type: 'string', min: 1, max: 65 };
const required = <S extends Shape>(shape: S): MemberShape => ({ ...shape, required: true });

export const DDB_ITERATOR_TYPES = ['TRIM_HORIZON', 'LATEST', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'] as const;

export const SHAPES = {
  ListStreams: structure({
    TableName: { type: 'string', min: 3, max: 255, pattern: '[a-zA-Z0-9_.-]+' },
    Limit: { type: 'integer', min: 1, max: 100 },
    ExclusiveStartStreamArn: streamArn,
  }),
  DescribeStream: structure({
    StreamArn: required(streamArn),
    Limit: { type: 'integer', min: 1, max: 100 },
    ExclusiveStartShardId: shardId,
    ShardFilter: structure({ Type: { type: 'string', enum: ['CHILD_SHARDS'] }, ShardId: shardId }),
  }),
  GetShardIterator: structure({
    StreamArn: required(streamArn),
    ShardId: required(shardId),
    ShardIteratorType: required({ type: 'string', enum: DDB_ITERATOR_TYPES }),
    SequenceNumber: { type: 'string', min: 21, max: 40 },
  }),
  GetRecords: structure({
    ShardIterator: required({ type: 'string', min: 1, max: 2048 }),
    Limit: { type: 'integer', min: 1, max: 1000 },
  }),
} as const;
