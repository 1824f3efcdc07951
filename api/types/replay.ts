/** Replay jobs and redrive. Contract types only for now: resolvers raise NOT_IMPLEMENTED. */
import { builder } from '../builder.ts';
import { ReplayState } from './enums.ts';
import { type Unbuilt, notBuilt } from './notBuilt.ts';
import { PositionInput } from './position.ts';

const ReplayShardProgress = builder.objectRef<Unbuilt>('ReplayShardProgress').implement({
  fields: (t) => ({
    shardId: t.exposeString('shardId'),
    cursorSequenceNumber: t.exposeString('cursorSequenceNumber', { nullable: true }),
    delivered: t.exposeInt('delivered'),
    done: t.exposeBoolean('done'),
  }),
});

const ReplayJob = builder.objectRef<Unbuilt>('ReplayJob').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    state: t.expose('state', { type: ReplayState }),
    streamName: t.exposeString('streamName'),
    functionName: t.exposeString('functionName'),
    mappingId: t.exposeID('mappingId', { nullable: true }),
    from: t.exposeString('from', { description: 'the window as requested, e.g. "AT_TIMESTAMP 2026-11-01T00:00:00.000Z"' }),
    to: t.exposeString('to', { nullable: true }),
    totalRecords: t.exposeInt('totalRecords', { nullable: true }),
    deliveredRecords: t.exposeInt('deliveredRecords'),
    failedRecords: t.exposeInt('failedRecords'),
    dryRun: t.exposeBoolean('dryRun'),
    shards: t.expose('shards', { type: [ReplayShardProgress] }),
    requestedBy: t.exposeString('requestedBy', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    error: t.exposeString('error', { nullable: true }),
  }),
});

const ReplayInput = builder.inputType('ReplayInput', {
  fields: (t) => ({
    streamName: t.string({ required: true }),
    from: t.field({ type: PositionInput, required: true }),
    to: t.field({
      type: PositionInput,
      description: 'AT_TIMESTAMP or AT_SEQUENCE_NUMBER (inclusive); absent: the latest record when the job starts',
    }),
    shardIds: t.stringList(),
    mappingId: t.id({ description: "deliver with this mapping's function and settings" }),
    functionName: t.string({ description: 'or to another function' }),
    batchSize: t.int(),
    filterPatterns: t.stringList(),
    ratePerSecond: t.int(),
    dryRun: t.boolean({ defaultValue: false }),
  }),
});

builder.queryFields((t) => ({
  replays: t.field({ type: [ReplayJob], args: { state: t.arg({ type: ReplayState }) }, resolve: notBuilt('replays') }),
  replay: t.field({ type: ReplayJob, nullable: true, args: { id: t.arg.id({ required: true }) }, resolve: notBuilt('replay') }),
}));

builder.mutationFields((t) => ({
  startReplay: t.field({ type: ReplayJob, args: { input: t.arg({ type: ReplayInput, required: true }) }, resolve: notBuilt('startReplay') }),
  pauseReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: notBuilt('pauseReplay') }),
  resumeReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: notBuilt('resumeReplay') }),
  cancelReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: notBuilt('cancelReplay') }),
  redriveFailures: t.field({
    type: ReplayJob,
    args: { mappingId: t.arg.id({ required: true }), failureIds: t.arg.idList(), functionName: t.arg.string() },
    resolve: notBuilt('redriveFailures'),
  }),
}));

builder.subscriptionFields((t) => ({
  replayProgress: t.field({
    type: ReplayJob,
    args: { id: t.arg.id({ required: true }) },
    subscribe: notBuilt('Subscription.replayProgress'),
    resolve: (value: Unbuilt) => value,
  }),
}));
