/**
 * CaptureSource and its lag, with the capture queries and mutations: a stream on a Kinesis or
 * DynamoDB Streams endpoint tailed into a local stream (engine/capture/).
 */
import type { CaptureShardLag, CaptureSourceInfo } from '../../engine/capture/captureSources.ts';
import { builder } from '../builder.ts';
import { StreamKind } from './enums.ts';
import { Stream } from './stream.ts';

const CaptureState = builder.enumType('CaptureState', {
  description: 'STARTING: not yet connected; RUNNING: tailing; RETRYING: the last call to the source failed (see lastError), retried with backoff; STOPPED.',
  values: ['STARTING', 'RUNNING', 'RETRYING', 'STOPPED'] as const,
});
const CaptureStartingPosition = builder.enumType('CaptureStartingPosition', { values: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'] as const });
const CaptureShardState = builder.enumType('CaptureShardState', { values: ['WAITING_FOR_PARENT', 'READING', 'SHARD_END'] as const });

const CaptureShardLagRef = builder.objectRef<CaptureShardLag>('CaptureShardLag').implement({
  description: 'One source shard: its local shard, the position reached and how far behind the source it is.',
  fields: (t) => ({
    sourceShardId: t.exposeString('sourceShardId'),
    shardId: t.exposeString('shardId', { nullable: true, description: 'the local shard; null until its parents have been read to their end' }),
    parentShardId: t.exposeString('parentShardId', { nullable: true, description: 'source shard id' }),
    adjacentParentShardId: t.exposeString('adjacentParentShardId', { nullable: true, description: 'source shard id' }),
    state: t.expose('state', { type: CaptureShardState }),
    lastSequenceNumber: t.exposeString('lastSequenceNumber', { nullable: true, description: "the source's sequence number of the last record stored" }),
    millisBehindLatest: t.float({
      nullable: true,
      description: "the source's MillisBehindLatest at the last read (DynamoDB: now minus the newest record's creation time)",
      resolve: (l) => l.millisBehindLatest,
    }),
    recordsCaptured: t.float({ resolve: (l) => l.recordsCaptured }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const CaptureSource = builder.objectRef<CaptureSourceInfo>('CaptureSource').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.expose('kind', { type: StreamKind }),
    endpoint: t.exposeString('endpoint', { nullable: true, description: "null: AWS's own endpoint of the region" }),
    region: t.exposeString('region'),
    sourceStream: t.exposeString('sourceStream', { description: 'Kinesis: stream name or ARN; DynamoDB: stream ARN' }),
    streamName: t.exposeString('streamName', { description: 'the local stream' }),
    stream: t.field({
      type: Stream,
      nullable: true,
      resolve: (s, _args, ctx) => ctx.engine.catalog.find(s.streamName).then((found) => found ?? null),
    }),
    startingPosition: t.expose('startingPosition', { type: CaptureStartingPosition }),
    startingTimestamp: t.expose('startingTimestamp', { type: 'DateTime', description: 'AT_TIMESTAMP: the timestamp; otherwise when the capture was created' }),
    state: t.expose('state', { type: CaptureState }),
    lastError: t.exposeString('lastError', { nullable: true }),
    lastErrorAt: t.expose('lastErrorAt', { type: 'DateTime', nullable: true }),
    recordsCaptured: t.float({ resolve: (s) => s.recordsCaptured }),
    owner: t.exposeString('owner', { nullable: true, description: 'the engine process running the source' }),
    lag: t.field({
      type: [CaptureShardLagRef],
      description: 'one row per source shard met, in source shard id order',
      resolve: (s, _args, ctx) => ctx.engine.captures.lag(s.id),
    }),
    maxMillisBehindLatest: t.float({
      nullable: true,
      description: 'the largest millisBehindLatest of the shards being read; null before the first read',
      resolve: async (s, _args, ctx) => {
        const behind = (await ctx.engine.captures.lag(s.id))
          .filter((l) => l.state !== 'SHARD_END' && l.millisBehindLatest !== null).map((l) => l.millisBehindLatest!);
        return behind.length === 0 ? null : Math.max(...behind);
      },
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const StartCaptureInput = builder.inputType('StartCaptureInput', {
  fields: (t) => ({
    kind: t.field({ type: StreamKind, defaultValue: 'KINESIS', description: 'KINESIS: a Kinesis-compatible endpoint; DYNAMODB: DynamoDB Streams' }),
    endpoint: t.string({ description: "the source service's URL; absent: AWS's own endpoint of the region" }),
    region: t.string({ description: "default: this server's region" }),
    stream: t.string({ required: true, description: 'Kinesis: stream name or ARN; DYNAMODB: the stream ARN' }),
    into: t.string({ description: 'the local stream; default the source stream (or table) name. Starting again into the local stream of a stopped source resumes it.' }),
    from: t.field({ type: CaptureStartingPosition, defaultValue: 'TRIM_HORIZON' }),
    timestamp: t.field({ type: 'DateTime', description: 'with from: AT_TIMESTAMP' }),
  }),
});

builder.queryFields((t) => ({
  captureSources: t.field({ type: [CaptureSource], resolve: (_root, _args, ctx) => ctx.engine.captures.list() }),
  captureSource: t.field({
    type: CaptureSource,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.engine.captures.find(String(args.id))) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  startCapture: t.field({
    type: CaptureSource,
    description: 'Starts tailing a stream of another endpoint into a local stream of the same shard layout (or resumes the stopped capture into `into`).',
    args: { input: t.arg({ type: StartCaptureInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.startCapture(input, ctx.principal.name),
  }),
  stopCapture: t.field({
    type: CaptureSource,
    description: 'Stops a capture source; its position is kept, and startCapture into the same local stream resumes it.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.stopCapture(String(args.id), ctx.principal.name),
  }),
}));
