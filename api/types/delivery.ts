/**
 * Functions, event source mappings and their observability (lag, invocations, failures,
 * metrics history, the lag and failures subscriptions).
 */
import type { FunctionInfo } from '../../engine/functions/functionCatalog.ts';
import type { ShardLag as ShardLagInfo } from '../../engine/delivery/lag.ts';
import type { MappingInfo } from '../../engine/mappings/mappingCatalog.ts';
import type { CheckpointMove as CheckpointMoveInfo } from '../../engine/mappings/checkpointLedgerView.ts';
import type { RecordAttempt as RecordAttemptInfo } from '../../engine/observability/recordHistory.ts';
import type { MetricPoint as MetricPointInfo } from '../../engine/metrics/metricsSampler.ts';
import { cancellable } from '../../engine/observability/cancellable.ts';
import { type FailureEvent as FailureEventInfo, watchFailures } from '../../engine/observability/failureFeed.ts';
import { type LagUpdate as LagUpdateInfo, watchLag } from '../../engine/observability/lagFeed.ts';
import type { FailureView, InvocationView } from '../../engine/delivery/deliveryLog.ts';
import { builder } from '../builder.ts';

interface Connection<T> { edges: { cursor: string; node: T }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }
import { FailureKind, FunctionResponseType, InvocationOutcome, LeaseState, MappingState, PositionType } from './enums.ts';
import { PositionInput } from './position.ts';
import { PageInfo } from './record.ts';
import { Stream } from './stream.ts';

export const FunctionTarget = builder.objectRef<FunctionInfo>('FunctionTarget').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    url: t.exposeString('url', { nullable: true, description: 'HTTP target: POST of the Lambda event, Lambda Invoke API compatible' }),
    module: t.exposeString('module', { nullable: true, description: 'in-process module inside the functions directory, "file#export"' }),
    timeoutSeconds: t.exposeInt('timeoutSeconds'),
    reservedConcurrency: t.exposeInt('reservedConcurrency', { nullable: true }),
  }),
});

export const ShardLag = builder.objectRef<ShardLagInfo>('ShardLag').implement({
  fields: (t) => ({
    shardId: t.exposeString('shardId'),
    lane: t.exposeInt('lane', { description: '0..parallelizationFactor-1' }),
    state: t.expose('state', { type: LeaseState }),
    owner: t.exposeString('owner', { nullable: true }),
    checkpointSequenceNumber: t.exposeString('checkpointSequenceNumber', { nullable: true }),
    latestSequenceNumber: t.exposeString('latestSequenceNumber', { nullable: true }),
    recordsBehind: t.exposeInt('recordsBehind'),
    iteratorAgeMs: t.exposeInt('iteratorAgeMs', { nullable: true }),
    oldestUnprocessedAgeMs: t.exposeInt('oldestUnprocessedAgeMs', { nullable: true }),
    consecutiveFailures: t.exposeInt('consecutiveFailures'),
    lastInvokedAt: t.expose('lastInvokedAt', { type: 'DateTime', nullable: true }),
    waitingOnShardIds: t.exposeStringList('waitingOnShardIds', {
      description: 'WAITING_FOR_PARENT: the parent shards this shard waits for (lineage-aware lag).',
    }),
    drainRatePerSecond: t.exposeFloat('drainRatePerSecond', { description: 'Records acknowledged per second over the last minute.' }),
    estimatedDrainSeconds: t.exposeInt('estimatedDrainSeconds', { nullable: true, description: 'recordsBehind ÷ drainRatePerSecond.' }),
    timeToDataLossSeconds: t.exposeInt('timeToDataLossSeconds', {
      nullable: true,
      description: 'Seconds until the oldest unprocessed record passes retention (trimmed) or maximumRecordAgeSeconds (discarded), when the backlog will not drain before then at the current drain rate; null when nothing is at risk.',
    }),
  }),
});

const Invocation = builder.objectRef<InvocationView>('Invocation').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    shardId: t.exposeString('shardId'),
    lane: t.exposeInt('lane'),
    firstSequenceNumber: t.exposeString('firstSequenceNumber'),
    lastSequenceNumber: t.exposeString('lastSequenceNumber'),
    recordCount: t.exposeInt('recordCount'),
    attempt: t.exposeInt('attempt'),
    outcome: t.expose('outcome', { type: InvocationOutcome }),
    durationMs: t.exposeInt('durationMs'),
    error: t.exposeString('error', { nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    replayId: t.exposeID('replayId', { nullable: true }),
  }),
});
const InvocationEdge = builder.objectRef<{ cursor: string; node: InvocationView }>('InvocationEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.expose('node', { type: Invocation }) }),
});
const InvocationConnection = builder.objectRef<Connection<InvocationView>>('InvocationConnection').implement({
  fields: (t) => ({ edges: t.expose('edges', { type: [InvocationEdge] }), pageInfo: t.expose('pageInfo', { type: PageInfo }) }),
});

export const Failure = builder.objectRef<FailureEventInfo['failure']>('Failure').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.expose('kind', { type: FailureKind }),
    mappingId: t.exposeID('mappingId'),
    shardId: t.exposeString('shardId'),
    lane: t.exposeInt('lane', { description: 'the lane of the shard that failed (of the mapping\'s parallelizationFactor then)' }),
    firstSequenceNumber: t.exposeString('firstSequenceNumber'),
    lastSequenceNumber: t.exposeString('lastSequenceNumber'),
    recordCount: t.exposeInt('recordCount'),
    attempt: t.exposeInt('attempt'),
    message: t.exposeString('message', { nullable: true }),
    at: t.expose('at', { type: 'DateTime' }),
    destinationRecord: t.expose('destinationRecord', {
      type: 'JSON', nullable: true, description: 'for discarded batches: the AWS-shaped on-failure invocation record',
    }),
    redrivenBy: t.exposeID('redrivenBy', { nullable: true }),
  }),
});
const FailureEdge = builder.objectRef<{ cursor: string; node: FailureView }>('FailureEdge').implement({
  fields: (t) => ({ cursor: t.exposeString('cursor'), node: t.expose('node', { type: Failure }) }),
});
const FailureConnection = builder.objectRef<Connection<FailureView>>('FailureConnection').implement({
  fields: (t) => ({ edges: t.expose('edges', { type: [FailureEdge] }), pageInfo: t.expose('pageInfo', { type: PageInfo }) }),
});

const MetricPoint = builder.objectRef<MetricPointInfo>('MetricPoint').implement({
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    iteratorAgeMs: t.exposeInt('iteratorAgeMs', { nullable: true }),
    recordsBehind: t.exposeInt('recordsBehind'),
    invocations: t.exposeInt('invocations'),
    errors: t.exposeInt('errors'),
    recordsProcessed: t.exposeInt('recordsProcessed'),
  }),
});

const CheckpointMove = builder.objectRef<CheckpointMoveInfo>('CheckpointMove').implement({
  description: 'A move of a checkpoint that is not the engine\'s ordinary advance: a seek, or a discard after retries.',
  fields: (t) => ({
    id: t.exposeID('id'),
    shardId: t.exposeString('shardId'),
    lane: t.exposeInt('lane'),
    fromSequenceNumber: t.exposeString('fromSequenceNumber', { nullable: true }),
    toSequenceNumber: t.exposeString('toSequenceNumber', { nullable: true }),
    reason: t.exposeString('reason'),
    actor: t.exposeString('actor'),
    replayId: t.exposeID('jobId', { nullable: true }),
    at: t.expose('at', { type: 'DateTime' }),
  }),
});

const RecordAttempt = builder.objectRef<RecordAttemptInfo>('RecordAttempt').implement({
  description: 'One attempt to deliver a record: an invocation whose batch held it, or a failure row that covered it.',
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    source: t.exposeString('source', { description: 'INVOCATION or FAILURE' }),
    kind: t.exposeString('kind', { description: 'The invocation outcome or the failure kind.' }),
    attempt: t.exposeInt('attempt'),
    firstSequenceNumber: t.exposeString('firstSequenceNumber'),
    lastSequenceNumber: t.exposeString('lastSequenceNumber'),
    recordCount: t.exposeInt('recordCount'),
    message: t.exposeString('message', { nullable: true }),
    replayId: t.exposeID('replayId', { nullable: true }),
  }),
});

export const EventSourceMapping = builder.objectRef<MappingInfo>('EventSourceMapping');
EventSourceMapping.implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    stream: t.field({ type: Stream, resolve: (m, _args, ctx) => ctx.engine.mappings.streamOf(m) }),
    function: t.field({ type: FunctionTarget, resolve: (m, _args, ctx) => ctx.engine.functions.get(m.functionName) }),
    state: t.expose('state', { type: MappingState }),
    batchSize: t.exposeInt('batchSize'),
    maximumBatchingWindowSeconds: t.exposeInt('maximumBatchingWindowSeconds'),
    startingPosition: t.expose('startingPosition', { type: PositionType }),
    startingPositionTimestamp: t.expose('startingPositionTimestamp', { type: 'DateTime', nullable: true }),
    parallelizationFactor: t.exposeInt('parallelizationFactor'),
    bisectBatchOnFunctionError: t.exposeBoolean('bisectBatchOnFunctionError'),
    maximumRetryAttempts: t.exposeInt('maximumRetryAttempts'),
    maximumRecordAgeSeconds: t.exposeInt('maximumRecordAgeSeconds'),
    functionResponseTypes: t.field({
      type: [FunctionResponseType],
      resolve: (m) => m.functionResponseTypes as 'ReportBatchItemFailures'[],
    }),
    filterPatterns: t.exposeStringList('filterPatterns'),
    tumblingWindowSeconds: t.exposeInt('tumblingWindowSeconds'),
    onFailureUrl: t.exposeString('onFailureUrl', { nullable: true }),
    lag: t.field({ type: [ShardLag], resolve: (m, _args, ctx) => ctx.engine.recentLag(m.id) }),
    recordHistory: t.field({
      type: [RecordAttempt],
      description: 'Poison-record forensics: every attempt to deliver one record, oldest first.',
      args: { shardId: t.arg.string({ required: true }), sequenceNumber: t.arg.string({ required: true }) },
      resolve: (m, args, ctx) => ctx.engine.recordHistory(m.id, args.shardId, args.sequenceNumber),
    }),
    checkpointMoves: t.field({
      type: [CheckpointMove],
      description: 'The checkpoint ledger: seeks and discards, newest first.',
      args: { first: t.arg.int({ defaultValue: 100 }) },
      resolve: (m, args, ctx) => ctx.engine.checkpointMoves(m.id, args.first ?? 100),
    }),
    recordsBehind: t.int({
      resolve: async (m, _args, ctx) => (await ctx.engine.recentLag(m.id)).reduce((sum, l) => sum + l.recordsBehind, 0),
    }),
    maxIteratorAgeMs: t.int({
      nullable: true,
      resolve: async (m, _args, ctx) => {
        const ages = (await ctx.engine.recentLag(m.id)).map((l) => l.iteratorAgeMs).filter((a): a is number => a !== null);
        return ages.length ? Math.max(...ages) : null;
      },
    }),
    invocations: t.field({
      type: InvocationConnection,
      args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string(), outcome: t.arg({ type: InvocationOutcome }) },
      resolve: async (m, args, ctx) => {
        const page = await ctx.engine.invocations(m.id, args);
        return { edges: page.items, pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor } };
      },
    }),
    failures: t.field({
      type: FailureConnection,
      args: { first: t.arg.int({ defaultValue: 50 }), after: t.arg.string(), kind: t.arg({ type: FailureKind }) },
      resolve: async (m, args, ctx) => {
        const page = await ctx.engine.failures(m.id, args);
        return { edges: page.items, pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.endCursor } };
      },
    }),
    metrics: t.field({
      type: [MetricPoint],
      args: {
        from: t.arg({ type: 'DateTime', required: true }),
        to: t.arg({ type: 'DateTime', required: true }),
        stepSeconds: t.arg.int({ defaultValue: 60 }),
      },
      resolve: (m, args, ctx) => ctx.engine.metrics(m.id, args.from, args.to, args.stepSeconds ?? 60),
    }),
  }),
});

const LagUpdate = builder.objectRef<LagUpdateInfo>('LagUpdate').implement({
  fields: (t) => ({
    mappingId: t.exposeID('mappingId'),
    streamName: t.exposeString('streamName'),
    shards: t.expose('shards', { type: [ShardLag] }),
    recordsBehind: t.exposeInt('recordsBehind'),
    maxIteratorAgeMs: t.exposeInt('maxIteratorAgeMs', { nullable: true }),
    at: t.expose('at', { type: 'DateTime' }),
  }),
});

const FailureEvent = builder.objectRef<FailureEventInfo>('FailureEvent').implement({
  fields: (t) => ({
    failure: t.expose('failure', { type: Failure }),
    streamName: t.exposeString('streamName'),
    functionName: t.exposeString('functionName'),
  }),
});

const CreateFunctionInput = builder.inputType('CreateFunctionInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    url: t.string(),
    module: t.string(),
    timeoutSeconds: t.int({ defaultValue: 3 }),
    reservedConcurrency: t.int(),
  }),
});

const EventSourceMappingInput = builder.inputType('EventSourceMappingInput', {
  fields: (t) => ({
    streamName: t.string({ required: true }),
    functionName: t.string({ required: true }),
    enabled: t.boolean({ defaultValue: true }),
    batchSize: t.int({ defaultValue: 100 }),
    maximumBatchingWindowSeconds: t.int({ defaultValue: 0 }),
    startingPosition: t.field({ type: PositionType, defaultValue: 'LATEST' }),
    startingPositionTimestamp: t.field({ type: 'DateTime' }),
    parallelizationFactor: t.int({ defaultValue: 1 }),
    bisectBatchOnFunctionError: t.boolean({ defaultValue: false }),
    maximumRetryAttempts: t.int({ defaultValue: -1 }),
    maximumRecordAgeSeconds: t.int({ defaultValue: -1 }),
    functionResponseTypes: t.field({ type: [FunctionResponseType] }),
    filterPatterns: t.stringList(),
    tumblingWindowSeconds: t.int({ defaultValue: 0 }),
    onFailureUrl: t.string(),
  }),
});

const UpdateEventSourceMappingInput = builder.inputType('UpdateEventSourceMappingInput', {
  fields: (t) => ({
    enabled: t.boolean(),
    functionName: t.string(),
    batchSize: t.int(),
    maximumBatchingWindowSeconds: t.int(),
    parallelizationFactor: t.int(),
    bisectBatchOnFunctionError: t.boolean(),
    maximumRetryAttempts: t.int(),
    maximumRecordAgeSeconds: t.int(),
    functionResponseTypes: t.field({ type: [FunctionResponseType] }),
    filterPatterns: t.stringList(),
    tumblingWindowSeconds: t.int(),
    onFailureUrl: t.string(),
  }),
});

builder.queryFields((t) => ({
  functions: t.field({ type: [FunctionTarget], resolve: (_root, _args, ctx) => ctx.engine.functions.list() }),
  eventSourceMappings: t.field({
    type: [EventSourceMapping],
    args: { streamName: t.arg.string() },
    resolve: (_root, args, ctx) => ctx.engine.mappings.list(args.streamName),
  }),
  eventSourceMapping: t.field({
    type: EventSourceMapping,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => (await ctx.engine.mappings.find(String(args.id))) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  createFunction: t.field({
    type: FunctionTarget,
    args: { input: t.arg({ type: CreateFunctionInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.createFunction(input, ctx.principal.name),
  }),
  deleteFunction: t.boolean({
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.deleteFunction(args.name, ctx.principal.name),
  }),
  createEventSourceMapping: t.field({
    type: EventSourceMapping,
    args: { input: t.arg({ type: EventSourceMappingInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.engine.createMapping(input, ctx.principal.name),
  }),
  updateEventSourceMapping: t.field({
    type: EventSourceMapping,
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateEventSourceMappingInput, required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.updateMapping(String(args.id), args.input, ctx.principal.name),
  }),
  deleteEventSourceMapping: t.boolean({
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.deleteMapping(String(args.id), ctx.principal.name),
  }),
  seekEventSourceMapping: t.field({
    type: EventSourceMapping,
    args: {
      id: t.arg.id({ required: true }),
      position: t.arg({ type: PositionInput, required: true }),
      shardIds: t.arg.stringList(),
    },
    resolve: (_root, args, ctx) => ctx.engine.seekMapping(String(args.id), args.position, args.shardIds, ctx.principal.name),
  }),
  restoreCheckpoints: t.field({
    type: EventSourceMapping,
    description: 'Undo for checkpoint moves: puts each checkpoint back where it stood before the first seek or discard after `at`.',
    args: { mappingId: t.arg.id({ required: true }), at: t.arg({ type: 'DateTime', required: true }) },
    resolve: (_root, args, ctx) => ctx.engine.restoreCheckpoints(String(args.mappingId), args.at, ctx.principal.name),
  }),
}));

builder.subscriptionFields((t) => ({
  lag: t.field({
    type: LagUpdate,
    args: { mappingId: t.arg.id(), streamName: t.arg.string() },
    description: 'Every mapping in scope at once, then each change of its figures (coalesced), and every few seconds while behind.',
    subscribe: (_root, args, ctx) => cancellable<LagUpdateInfo>((signal, slot) => watchLag(ctx.engine, { mappingId: args.mappingId == null ? null : String(args.mappingId), streamName: args.streamName }, signal, slot)),
    resolve: (value) => value,
  }),
  failures: t.field({
    type: FailureEvent,
    args: { mappingId: t.arg.id(), streamName: t.arg.string() },
    description: 'Every failure recorded from now on for the mappings in scope.',
    subscribe: (_root, args, ctx) => cancellable<FailureEventInfo>((signal, slot) => watchFailures(ctx.engine, { mappingId: args.mappingId == null ? null : String(args.mappingId), streamName: args.streamName }, signal, slot)),
    resolve: (value) => value,
  }),
}));
