/**
 * The Kinesis Data Streams API (target prefix Kinesis_20131202): each operation's input shape
 * and handler. A handler returning undefined answers 200 with an empty body, as AWS does for
 * operations without output.
 */
import type { Operations, Service } from '../service.ts';
import { CONTENT_TYPES } from '../wire.ts';
import { kinesisError } from './common.ts';
import { SHAPES } from './shapes.ts';
import { getRecords, getShardIterator, putRecord, putRecords } from './records.ts';
import {
  addTagsToStream, createStream, decreaseRetention, deleteStream, describeStream, describeStreamSummary, increaseRetention,
  listShards, listStreams, listTagsForStream, mergeShards, removeTagsFromStream, splitShard, updateShardCount,
} from './streams.ts';

export const KINESIS_OPERATIONS: Operations = {
  CreateStream: { shape: SHAPES.CreateStream, run: createStream },
  DeleteStream: { shape: SHAPES.DeleteStream, run: deleteStream },
  DescribeStream: { shape: SHAPES.DescribeStream, run: describeStream },
  DescribeStreamSummary: { shape: SHAPES.DescribeStreamSummary, run: describeStreamSummary },
  ListStreams: { shape: SHAPES.ListStreams, run: listStreams },
  ListShards: { shape: SHAPES.ListShards, run: listShards },
  PutRecord: { shape: SHAPES.PutRecord, run: putRecord },
  PutRecords: { shape: SHAPES.PutRecords, run: putRecords },
  GetShardIterator: { shape: SHAPES.GetShardIterator, run: getShardIterator },
  GetRecords: { shape: SHAPES.GetRecords, run: getRecords },
  SplitShard: { shape: SHAPES.SplitShard, run: splitShard },
  MergeShards: { shape: SHAPES.MergeShards, run: mergeShards },
  UpdateShardCount: { shape: SHAPES.UpdateShardCount, run: updateShardCount },
  IncreaseStreamRetentionPeriod: { shape: SHAPES.IncreaseStreamRetentionPeriod, run: increaseRetention },
  DecreaseStreamRetentionPeriod: { shape: SHAPES.DecreaseStreamRetentionPeriod, run: decreaseRetention },
  AddTagsToStream: { shape: SHAPES.AddTagsToStream, run: addTagsToStream },
  RemoveTagsFromStream: { shape: SHAPES.RemoveTagsFromStream, run: removeTagsFromStream },
  ListTagsForStream: { shape: SHAPES.ListTagsForStream, run: listTagsForStream },
};

export const KINESIS_SERVICE: Service = {
  targetPrefix: 'Kinesis_20131202',
  jsonContentType: CONTENT_TYPES.json11,
  internalErrorType: 'InternalFailure',
  operations: KINESIS_OPERATIONS,
  mapError: (ctx, raw) => kinesisError(ctx, raw),
};
