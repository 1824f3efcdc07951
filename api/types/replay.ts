/** Replay jobs, redrive, and the replayProgress subscription. */
import type { ReplayJobView } from '../../engine/replay/replayJobs.ts';
import { builder } from '../builder.ts';
import { ReplayState } from './enums.ts';
import { PositionInput } from './position.ts';
import { watchReplay } from '../../engine/replay/watchReplay.ts';
import { cancellable } from '../../engine/observability/cancellable.ts';

const ReplayShardProgress = builder.objectRef<ReplayJobView['shards'][number]>('ReplayShardProgress').implement({
  fields: (t) => ({
    shardId: t.exposeString('shardId'),
    cursorSequenceNumber: t.exposeString('cursorSequenceNumber', { nullable: true }),
    delivered: t.exposeInt('delivered'),
    done: t.exposeBoolean('done'),
  }),
});

export const ReplayJob = builder.objectRef<ReplayJobView>('ReplayJob').implement({
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
    totalBytes: t.float({ nullable: true, description: 'Bytes of the records in the window (after filters).', resolve: (j) => j.totalBytes }),
    ratePerSecond: t.exposeInt('ratePerSecond', { nullable: true }),
    estimatedDurationSeconds: t.float({
      nullable: true,
      description: 'For a dry run or a pending job: the time the window takes at ratePerSecond (null without a rate).',
      resolve: (j) => (j.ratePerSecond && j.totalRecords !== null ? j.totalRecords / j.ratePerSecond : null),
    }),
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
  replays: t.field({ type: [ReplayJob], args: { state: t.arg({ type: ReplayState }) }, resolve: (_root, args, ctx) => ctx.engine.replays.list(args.state) }),
  replay: t.field({
    type: ReplayJob, nullable: true, args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.engine.replays.find(String(args.id))) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  startReplay: t.field({
    type: ReplayJob, args: { input: t.arg({ type: ReplayInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.startReplay({ ...input, mappingId: input.mappingId == null ? null : String(input.mappingId) }, ctx.principal.name),
  }),
  pauseReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: (_root, args, ctx) => ctx.engine.replays.pause(String(args.id), ctx.principal.name) }),
  resumeReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: (_root, args, ctx) => ctx.engine.replays.resume(String(args.id), ctx.principal.name) }),
  cancelReplay: t.field({ type: ReplayJob, args: { id: t.arg.id({ required: true }) }, resolve: (_root, args, ctx) => ctx.engine.replays.cancel(String(args.id), ctx.principal.name) }),
  redriveFailures: t.field({
    type: ReplayJob,
    args: { mappingId: t.arg.id({ required: true }), failureIds: t.arg.idList(), functionName: t.arg.string() },
    resolve: (_root, args, ctx) => ctx.engine.redriveFailures(String(args.mappingId), args.failureIds?.map(String), args.functionName, ctx.principal.name),
  }),
}));

builder.subscriptionFields((t) => ({
  replayProgress: t.field({
    type: ReplayJob,
    args: { id: t.arg.id({ required: true }) },
    description: 'The job as it stands at once, then each change of its progress or state until it ends.',
    subscribe: (_root, args, ctx) => cancellable((signal) => watchReplay(ctx.engine, String(args.id), signal)),
    resolve: (job) => job,
  }),
}));
