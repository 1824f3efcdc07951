/** Stream, Shard and HashKeyRange, with the stream queries and mutations. */
import type { ShardInfo, StreamInfo } from '../../engine/streams/model.ts';
import { builder } from '../builder.ts';
import { ShardFilter, StreamKind, StreamStatus, StreamViewType } from './enums.ts';
import { PositionInput } from './position.ts';
import { RecordConnection } from './record.ts';
import { EventSourceMapping } from './delivery.ts';

export const HashKeyRange = builder.objectRef<ShardInfo['hashKeyRange']>('HashKeyRange').implement({
  fields: (t) => ({
    startingHashKey: t.exposeString('startingHashKey'),
    endingHashKey: t.exposeString('endingHashKey'),
  }),
});

export const Shard = builder.objectRef<ShardInfo>('Shard').implement({
  fields: (t) => ({
    shardId: t.exposeString('shardId'),
    parentShardId: t.exposeString('parentShardId', { nullable: true }),
    adjacentParentShardId: t.exposeString('adjacentParentShardId', { nullable: true }),
    hashKeyRange: t.field({ type: HashKeyRange, resolve: (s) => s.hashKeyRange }),
    startingSequenceNumber: t.exposeString('startingSequenceNumber'),
    endingSequenceNumber: t.exposeString('endingSequenceNumber', { nullable: true, description: 'set once the shard is closed' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    closedAt: t.expose('closedAt', { type: 'DateTime', nullable: true }),
  }),
});

export const Stream = builder.objectRef<StreamInfo>('Stream').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    kind: t.expose('kind', { type: StreamKind }),
    arn: t.exposeString('arn'),
    status: t.expose('status', { type: StreamStatus }),
    retentionHours: t.exposeInt('retentionHours'),
    viewType: t.expose('viewType', { type: StreamViewType, nullable: true, description: 'DYNAMODB streams only' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    enforceThroughput: t.exposeBoolean('enforceThroughput', {
      description: "AWS's per-shard limits apply (1 MiB/s and 1,000 records/s in; 2 MiB/s and 5 GetRecords calls/s out), "
        + 'answered with ProvisionedThroughputExceededException; enforced by each server process on its own calls',
    }),
    shards: t.field({
      type: [Shard],
      args: { filter: t.arg({ type: ShardFilter, defaultValue: 'ALL' }) },
      resolve: (stream, args, ctx) => ctx.engine.catalog.shards(stream, args.filter ?? 'ALL'),
    }),
    records: t.field({
      type: RecordConnection,
      args: {
        shardId: t.arg.string(),
        from: t.arg({ type: PositionInput }),
        first: t.arg.int({ defaultValue: 100 }),
        after: t.arg.string(),
      },
      resolve: (stream, args, ctx) => ctx.engine.reader.page(stream.name, args),
    }),
    eventSourceMappings: t.field({
      type: [EventSourceMapping],
      resolve: (stream, _args, ctx) => ctx.engine.mappings.list(stream.name),
    }),
  }),
});

const CreateStreamInput = builder.inputType('CreateStreamInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    kind: t.field({ type: StreamKind, defaultValue: 'KINESIS' }),
    shardCount: t.int({ required: true }),
    retentionHours: t.int({ description: 'KINESIS: 24..8760, default 24; DYNAMODB: fixed 24' }),
    viewType: t.field({ type: StreamViewType, description: 'DYNAMODB only, default NEW_AND_OLD_IMAGES' }),
    enforceThroughput: t.boolean({ description: "KINESIS only: enforce AWS's per-shard throughput limits (see Stream.enforceThroughput); default false" }),
  }),
});

builder.queryFields((t) => ({
  streams: t.field({ type: [Stream], resolve: (_root, _args, ctx) => ctx.engine.catalog.list() }),
  stream: t.field({
    type: Stream,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.engine.catalog.find(args.name)) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  createStream: t.field({
    type: Stream,
    args: { input: t.arg({ type: CreateStreamInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.createStream(input, ctx.principal.name),
  }),
  deleteStream: t.boolean({
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.deleteStream(args.name, ctx.principal.name),
  }),
  updateRetention: t.field({
    type: Stream,
    args: { name: t.arg.string({ required: true }), retentionHours: t.arg.int({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.updateRetention(args.name, args.retentionHours, ctx.principal.name),
  }),
  updateStreamThroughput: t.field({
    type: Stream,
    description: "Turns enforcement of AWS's per-shard throughput limits on or off (KINESIS streams).",
    args: { name: t.arg.string({ required: true }), enforceThroughput: t.arg.boolean({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.updateStreamThroughput(args.name, args.enforceThroughput, ctx.principal.name),
  }),
  splitShard: t.field({
    type: Stream,
    args: {
      streamName: t.arg.string({ required: true }),
      shardId: t.arg.string({ required: true }),
      newStartingHashKey: t.arg.string({ required: true }),
    },
    resolve: (_root, a, ctx) => ctx.engine.splitShard(a.streamName, a.shardId, a.newStartingHashKey, ctx.principal.name),
  }),
  mergeShards: t.field({
    type: Stream,
    args: {
      streamName: t.arg.string({ required: true }),
      shardId: t.arg.string({ required: true }),
      adjacentShardId: t.arg.string({ required: true }),
    },
    resolve: (_root, a, ctx) => ctx.engine.mergeShards(a.streamName, a.shardId, a.adjacentShardId, ctx.principal.name),
  }),
  updateShardCount: t.field({
    type: Stream,
    args: { streamName: t.arg.string({ required: true }), targetShardCount: t.arg.int({ required: true }) },
    resolve: (_root, a, ctx) => ctx.engine.updateShardCount(a.streamName, a.targetShardCount, ctx.principal.name),
  }),
  rolloverShards: t.field({
    type: Stream,
    description: 'DYNAMODB streams: close open shards now (all, or the one named) and open their children, as AWS does every ~4 hours.',
    args: { streamName: t.arg.string({ required: true }), shardId: t.arg.string() },
    resolve: (_root, a, ctx) => ctx.engine.rolloverShards(a.streamName, a.shardId, ctx.principal.name),
  }),
}));
