/**
 * Kinesis control-plane operations: CreateStream, DeleteStream, DescribeStream,
 * DescribeStreamSummary, ListStreams, ListShards, SplitShard, MergeShards, UpdateShardCount,
 * Increase/DecreaseStreamRetentionPeriod and the tag operations. Each goes through the engine's
 * operator methods (so the audit log records them as GraphQL's do); the checks done here first
 * are the ones AWS words differently from the engine.
 */
import { ShardlineError } from '../../../engine/errors.ts';
import { MAX_HASH_KEY } from '../../../engine/streams/hashKeys.ts';
import type { ShardInfo, StreamInfo } from '../../../engine/streams/model.ts';
import { KINESIS_RETENTION } from '../../../engine/streams/streamCatalog.ts';
import { TAG_LIMITS } from '../../../engine/streams/tags.ts';
import type { AwsContext } from '../context.ts';
import { AwsError, Timestamp, invalidArgument, resourceNotFound } from '../wire.ts';
import { findStream, onStream, shardJson } from './common.ts';
import type { StreamRef } from './shapes.ts';

/** Default shard count of CreateStream without ShardCount (and of ON_DEMAND streams), as AWS. */
const DEFAULT_SHARD_COUNT = 4;
const DESCRIBE_MAX_SHARDS = 100;
const LIST_STREAMS_MAX = 100;
const LIST_SHARDS_MAX = 1000;

const byName = (a: StreamInfo, b: StreamInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const isKinesis = (s: StreamInfo) => s.kind === 'KINESIS';
const streamMode = { StreamMode: 'PROVISIONED' };
const enhancedMonitoring = [{ ShardLevelMetrics: [] }];

/** AWS's tag characters: Unicode letters, digits, white space and _ . / = + - @ : */
const TAG_CHARS = /^[\p{L}\p{N}\p{Z}_.:/=+\-@]*$/u;

function checkTags(ctx: AwsContext, streamName: string, tags: Record<string, string>): { key: string; value: string }[] {
  const entries = Object.entries(tags).map(([key, value]) => ({ key, value }));
  if (entries.some((t) => !TAG_CHARS.test(t.key) || !TAG_CHARS.test(t.value))) {
    throw invalidArgument(`Failed to add tags to stream ${streamName} under account ${ctx.accountId} because some tags contained illegal characters. `
      + 'The allowed characters are Unicode letters, digits, white space, and _ . / = + - @ :.');
  }
  return entries;
}

async function addTags(ctx: AwsContext, streamName: string, tags: { key: string; value: string }[]): Promise<void> {
  try {
    await ctx.engine.addStreamTags(streamName, tags, ctx.principal?.name);
  } catch (raw) {
    if (raw instanceof ShardlineError && raw.code === 'LIMIT_EXCEEDED') {
      throw invalidArgument(`Failed to add tags to stream ${streamName} under account ${ctx.accountId} because a given stream cannot have more than ${TAG_LIMITS.maxTagsPerStream} tags associated with it.`);
    }
    throw raw;
  }
}

export async function createStream(ctx: AwsContext, input: {
  StreamName: string; ShardCount?: number; StreamModeDetails?: { StreamMode: string }; Tags?: Record<string, string>;
}): Promise<void> {
  const mode = input.StreamModeDetails?.StreamMode ?? 'PROVISIONED';
  if (mode === 'PROVISIONED' && input.StreamModeDetails !== undefined && input.ShardCount === undefined) {
    throw invalidArgument('ShardCount is required for a stream in PROVISIONED mode.');
  }
  const tags = input.Tags ? checkTags(ctx, input.StreamName, input.Tags) : [];
  if (tags.length > TAG_LIMITS.maxTagsPerStream) {
    throw invalidArgument(`Failed to add tags to stream ${input.StreamName} under account ${ctx.accountId} because a given stream cannot have more than ${TAG_LIMITS.maxTagsPerStream} tags associated with it.`);
  }
  const shardCount = input.ShardCount ?? DEFAULT_SHARD_COUNT;
  await onStream(ctx, input.StreamName, () => ctx.engine.createStream({ name: input.StreamName, kind: 'KINESIS', shardCount }, ctx.principal?.name));
  if (tags.length > 0) await addTags(ctx, input.StreamName, tags);
}

export async function deleteStream(ctx: AwsContext, input: StreamRef): Promise<void> {
  const stream = await findStream(ctx, input);
  await onStream(ctx, stream.name, () => ctx.engine.deleteStream(stream.name, ctx.principal?.name));
}

export async function describeStream(ctx: AwsContext, input: StreamRef & { Limit?: number; ExclusiveStartShardId?: string }) {
  const stream = await findStream(ctx, input);
  const limit = Math.min(input.Limit ?? DESCRIBE_MAX_SHARDS, DESCRIBE_MAX_SHARDS);
  const start = input.ExclusiveStartShardId;
  const shards = (await ctx.engine.catalog.shards(stream, 'ALL')).filter((s) => start === undefined || s.shardId > start);
  return {
    StreamDescription: {
      StreamName: stream.name,
      StreamARN: stream.arn,
      StreamStatus: stream.status,
      StreamModeDetails: streamMode,
      Shards: shards.slice(0, limit).map(shardJson),
      HasMoreShards: shards.length > limit,
      RetentionPeriodHours: stream.retentionHours,
      StreamCreationTimestamp: Timestamp.of(stream.createdAt),
      EnhancedMonitoring: enhancedMonitoring,
      EncryptionType: 'NONE',
    },
  };
}

export async function describeStreamSummary(ctx: AwsContext, input: StreamRef) {
  const stream = await findStream(ctx, input);
  const open = await ctx.engine.catalog.shards(stream, 'OPEN');
  return {
    StreamDescriptionSummary: {
      StreamName: stream.name,
      StreamARN: stream.arn,
      StreamStatus: stream.status,
      StreamModeDetails: streamMode,
      RetentionPeriodHours: stream.retentionHours,
      StreamCreationTimestamp: Timestamp.of(stream.createdAt),
      EnhancedMonitoring: enhancedMonitoring,
      EncryptionType: 'NONE',
      OpenShardCount: open.length,
      ConsumerCount: 0,
      MaxRecordSizeInKiB: 1024,
    },
  };
}

interface ListToken { k: 'streams' | 'shards'; a: string; t: number; s?: number; f?: ShardFilter }

function sealListToken(ctx: AwsContext, token: Omit<ListToken, 't'>): string {
  return ctx.tokens.seal({ ...token, t: ctx.clock() });
}

function openListToken(ctx: AwsContext, text: string, kind: ListToken['k']): ListToken {
  const token = ctx.tokens.open(text) as ListToken | undefined;
  if (!token || token.k !== kind || typeof token.a !== 'string' || !Number.isSafeInteger(token.t)) {
    throw invalidArgument(`NextToken ${text.slice(0, 100)} is not a NextToken of ${kind === 'streams' ? 'ListStreams' : 'ListShards'}.`);
  }
  if (ctx.clock() - token.t > ctx.nextTokenTtlMs) {
    throw new AwsError('ExpiredNextTokenException', `The NextToken has expired: NextTokens are valid for ${ctx.nextTokenTtlMs / 1000} seconds.`);
  }
  return token;
}

export async function listStreams(ctx: AwsContext, input: { Limit?: number; ExclusiveStartStreamName?: string; NextToken?: string }) {
  // A NextToken wins over ExclusiveStartStreamName: the SDK's paginator sends both.
  const start = input.NextToken !== undefined ? openListToken(ctx, input.NextToken, 'streams').a : input.ExclusiveStartStreamName;
  const limit = Math.min(input.Limit ?? LIST_STREAMS_MAX, LIST_STREAMS_MAX);
  const streams = (await ctx.engine.catalog.list()).filter(isKinesis).sort(byName)
    .filter((s) => start === undefined || s.name > start);
  const page = streams.slice(0, limit);
  const more = streams.length > limit;
  return {
    StreamNames: page.map((s) => s.name),
    HasMoreStreams: more,
    ...(more ? { NextToken: sealListToken(ctx, { k: 'streams', a: page.at(-1)!.name }) } : {}),
    StreamSummaries: page.map((s) => ({
      StreamName: s.name, StreamARN: s.arn, StreamStatus: s.status, StreamModeDetails: streamMode,
      StreamCreationTimestamp: Timestamp.of(s.createdAt),
    })),
  };
}

interface ShardFilter { Type: string; ShardId?: string; Timestamp?: number }

/** ShardFilter of ListShards over the shards within retention (aws-semantics §2.3). */
function filterShards(shards: ShardInfo[], filter: ShardFilter | undefined): ShardInfo[] {
  const listed = new Set(shards.map((s) => s.shardId));
  const isRoot = (s: ShardInfo) => !(s.parentShardId && listed.has(s.parentShardId))
    && !(s.adjacentParentShardId && listed.has(s.adjacentParentShardId));
  const openAt = (s: ShardInfo, ms: number) => (s.createdAt.getTime() <= ms || isRoot(s))
    && (s.closedAt === null || s.closedAt.getTime() >= ms);
  switch (filter?.Type ?? 'FROM_TRIM_HORIZON') {
    case 'AFTER_SHARD_ID':
      if (filter!.ShardId === undefined) throw invalidArgument('ShardFilter type AFTER_SHARD_ID needs a ShardId.');
      return shards.filter((s) => s.shardId > filter!.ShardId!);
    case 'AT_TRIM_HORIZON':
      return shards.filter(isRoot);
    case 'AT_LATEST':
      return shards.filter((s) => s.closedAt === null);
    case 'AT_TIMESTAMP':
    case 'FROM_TIMESTAMP': {
      const ms = filter!.Timestamp;
      if (ms === undefined) throw invalidArgument(`ShardFilter type ${filter!.Type} needs a Timestamp.`);
      return filter!.Type === 'AT_TIMESTAMP'
        ? shards.filter((s) => openAt(s, ms))
        : shards.filter((s) => s.closedAt === null || s.closedAt.getTime() >= ms);
    }
    default:
      return shards;
  }
}

export async function listShards(ctx: AwsContext, input: StreamRef & {
  NextToken?: string; ExclusiveStartShardId?: string; MaxResults?: number; StreamCreationTimestamp?: number; ShardFilter?: ShardFilter;
}) {
  let stream: StreamInfo;
  let filter: ShardFilter | undefined;
  let start: string | undefined;
  if (input.NextToken !== undefined) {
    if (input.StreamName !== undefined) throw invalidArgument('NextToken and StreamName cannot be provided together.');
    if (input.StreamARN !== undefined) throw invalidArgument('NextToken and StreamARN cannot be provided together.');
    // As AWS: the filter travels in the token, and paging code that sends it again is told so.
    if (input.ShardFilter !== undefined) throw invalidArgument('NextToken and ShardFilter cannot be provided together.');
    if (input.ExclusiveStartShardId !== undefined) throw invalidArgument('NextToken and ExclusiveStartShardId cannot be provided together.');
    if (input.StreamCreationTimestamp !== undefined) throw invalidArgument('NextToken and StreamCreationTimestamp cannot be provided together.');
    const token = openListToken(ctx, input.NextToken, 'shards');
    const found = await ctx.engine.catalog.findById(token.s ?? -1);
    if (!found || found.kind !== 'KINESIS') throw resourceNotFound(`The stream of this NextToken under account ${ctx.accountId} no longer exists.`);
    stream = found;
    filter = token.f;
    start = token.a;
  } else {
    if (input.StreamName === undefined && input.StreamARN === undefined) throw invalidArgument('Either NextToken or StreamName should be provided.');
    stream = await findStream(ctx, input);
    filter = input.ShardFilter;
    start = input.ExclusiveStartShardId;
  }
  const limit = Math.min(input.MaxResults ?? LIST_SHARDS_MAX, LIST_SHARDS_MAX);
  const shards = filterShards(await ctx.engine.catalog.shards(stream, 'ALL'), filter)
    .filter((s) => start === undefined || s.shardId > start);
  const page = shards.slice(0, limit);
  const more = shards.length > limit;
  return {
    Shards: page.map(shardJson),
    ...(more ? { NextToken: sealListToken(ctx, { k: 'shards', s: stream.id, a: page.at(-1)!.shardId, ...(filter ? { f: filter } : {}) }) } : {}),
  };
}

async function listedShard(ctx: AwsContext, stream: StreamInfo, shardId: string): Promise<ShardInfo> {
  const shard = (await ctx.engine.catalog.shards(stream, 'ALL')).find((s) => s.shardId === shardId);
  if (!shard) throw resourceNotFound(`Could not find shard ${shardId} in stream ${stream.name} under account ${ctx.accountId}.`);
  return shard;
}

function notEligible(ctx: AwsContext, stream: StreamInfo, shard: ShardInfo): AwsError {
  return invalidArgument(`Shard ${shard.shardId} in stream ${stream.name} under account ${ctx.accountId} has already been merged or split, `
    + 'and thus is not eligible for merging or splitting.');
}

export async function splitShard(ctx: AwsContext, input: StreamRef & { ShardToSplit: string; NewStartingHashKey: string }): Promise<void> {
  const stream = await findStream(ctx, input);
  const shard = await listedShard(ctx, stream, input.ShardToSplit);
  if (shard.closedAt !== null) throw notEligible(ctx, stream, shard);
  const key = BigInt(input.NewStartingHashKey);
  const start = BigInt(shard.hashKeyRange.startingHashKey);
  const end = BigInt(shard.hashKeyRange.endingHashKey);
  if (key > MAX_HASH_KEY || !(key > start + 1n && key < end)) {
    throw invalidArgument(`NewStartingHashKey ${input.NewStartingHashKey} used in SplitShard() on shard ${shard.shardId} in stream ${stream.name} `
      + `under account ${ctx.accountId} is not both greater than one plus the shard's StartingHashKey ${start} and less than the shard's EndingHashKey ${end}.`);
  }
  await onStream(ctx, stream.name, () => ctx.engine.splitShard(stream.name, shard.shardId, input.NewStartingHashKey, ctx.principal?.name));
}

export async function mergeShards(ctx: AwsContext, input: StreamRef & { ShardToMerge: string; AdjacentShardToMerge: string }): Promise<void> {
  const stream = await findStream(ctx, input);
  const first = await listedShard(ctx, stream, input.ShardToMerge);
  const second = await listedShard(ctx, stream, input.AdjacentShardToMerge);
  for (const shard of [first, second]) if (shard.closedAt !== null) throw notEligible(ctx, stream, shard);
  const adjacent = BigInt(first.hashKeyRange.endingHashKey) + 1n === BigInt(second.hashKeyRange.startingHashKey)
    || BigInt(second.hashKeyRange.endingHashKey) + 1n === BigInt(first.hashKeyRange.startingHashKey);
  if (first.shardId === second.shardId || !adjacent) {
    throw invalidArgument(`Shards ${first.shardId} and ${second.shardId} in stream ${stream.name} under account ${ctx.accountId} `
      + 'are not an adjacent pair of shards eligible for merging');
  }
  await onStream(ctx, stream.name, () => ctx.engine.mergeShards(stream.name, first.shardId, second.shardId, ctx.principal?.name));
}

export async function updateShardCount(ctx: AwsContext, input: StreamRef & { TargetShardCount: number; ScalingType: string }) {
  const stream = await findStream(ctx, input);
  const current = (await ctx.engine.catalog.shards(stream, 'OPEN')).length;
  await onStream(ctx, stream.name, () => ctx.engine.updateShardCount(stream.name, input.TargetShardCount, ctx.principal?.name));
  return { StreamName: stream.name, CurrentShardCount: current, TargetShardCount: input.TargetShardCount, StreamARN: stream.arn };
}

function checkRetentionBounds(hours: number): void {
  if (hours < KINESIS_RETENTION.min) {
    throw invalidArgument(`Minimum allowed retention period is ${KINESIS_RETENTION.min} hours. Requested retention period (${hours} hours) is too short.`);
  }
  if (hours > KINESIS_RETENTION.max) {
    throw invalidArgument(`Maximum allowed retention period is ${KINESIS_RETENTION.max} hours. Requested retention period (${hours} hours) is too long.`);
  }
}

export async function increaseRetention(ctx: AwsContext, input: StreamRef & { RetentionPeriodHours: number }): Promise<void> {
  const stream = await findStream(ctx, input);
  const hours = input.RetentionPeriodHours;
  checkRetentionBounds(hours);
  if (hours < stream.retentionHours) {
    throw invalidArgument(`Requested retention period (${hours} hours) for stream ${stream.name} can not be shorter than existing retention period `
      + `(${stream.retentionHours} hours). Use DecreaseRetentionPeriod API.`);
  }
  await onStream(ctx, stream.name, () => ctx.engine.updateRetention(stream.name, hours, ctx.principal?.name));
}

export async function decreaseRetention(ctx: AwsContext, input: StreamRef & { RetentionPeriodHours: number }): Promise<void> {
  const stream = await findStream(ctx, input);
  const hours = input.RetentionPeriodHours;
  checkRetentionBounds(hours);
  if (hours > stream.retentionHours) {
    throw invalidArgument(`Requested retention period (${hours} hours) for stream ${stream.name} can not be longer than existing retention period `
      + `(${stream.retentionHours} hours). Use IncreaseRetentionPeriod API.`);
  }
  await onStream(ctx, stream.name, () => ctx.engine.updateRetention(stream.name, hours, ctx.principal?.name));
}

export async function addTagsToStream(ctx: AwsContext, input: StreamRef & { Tags: Record<string, string> }): Promise<void> {
  const stream = await findStream(ctx, input);
  await onStream(ctx, stream.name, () => addTags(ctx, stream.name, checkTags(ctx, stream.name, input.Tags)));
}

export async function removeTagsFromStream(ctx: AwsContext, input: StreamRef & { TagKeys: string[] }): Promise<void> {
  const stream = await findStream(ctx, input);
  await onStream(ctx, stream.name, () => ctx.engine.removeStreamTags(stream.name, input.TagKeys, ctx.principal?.name));
}

export async function listTagsForStream(ctx: AwsContext, input: StreamRef & { ExclusiveStartTagKey?: string; Limit?: number }) {
  const stream = await findStream(ctx, input);
  const { tags, hasMore } = await ctx.engine.tags.list(stream, {
    exclusiveStartKey: input.ExclusiveStartTagKey, limit: input.Limit ?? TAG_LIMITS.maxTagsPerStream,
  });
  return { Tags: tags.map((t) => ({ Key: t.key, Value: t.value })), HasMoreTags: hasMore };
}
