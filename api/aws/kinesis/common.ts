/**
 * What the Kinesis operations share: finding the stream a request names (StreamName or
 * StreamARN), AWS's messages for missing streams and shards, the Shard shape, and the mapping
 * of engine errors to Kinesis error types.
 */
import { ShardlineError } from '../../../engine/errors.ts';
import type { ShardInfo, StreamInfo } from '../../../engine/streams/model.ts';
import type { AwsContext } from '../context.ts';
import { AwsError, invalidArgument, limitExceeded, resourceInUse, resourceNotFound } from '../wire.ts';
import type { StreamRef } from './shapes.ts';

const ARN = /^arn:aws[^:]*:kinesis:([^:]*):(\d{12}):stream\/(.+)$/;

export const streamNotFound = (ctx: AwsContext, name: string) =>
  resourceNotFound(`Stream ${name} under account ${ctx.accountId} not found.`);

export const shardNotFound = (ctx: AwsContext, stream: string, shardId: string) =>
  resourceNotFound(`Shard ${shardId} in stream ${stream} under account ${ctx.accountId} does not exist`);

/** The stream name a request addresses (StreamName, StreamARN, or both agreeing). */
export function streamNameOf(ctx: AwsContext, ref: StreamRef): string {
  if (ref.StreamARN !== undefined) {
    const m = ARN.exec(ref.StreamARN);
    if (!m) throw invalidArgument(`StreamARN ${ref.StreamARN} is not a Kinesis stream ARN.`);
    const [, region, account, name] = m as unknown as [string, string, string, string];
    if (region !== ctx.region || account !== ctx.accountId) throw resourceNotFound(`Stream ${name} under account ${account} not found.`);
    if (ref.StreamName !== undefined && ref.StreamName !== name) {
      throw invalidArgument(`StreamARN ${ref.StreamARN} and StreamName ${ref.StreamName} name different streams.`);
    }
    return name;
  }
  if (ref.StreamName !== undefined) return ref.StreamName;
  throw invalidArgument('Either StreamName or StreamARN should be provided.');
}

/** The KINESIS stream a request names; DYNAMODB streams are not Kinesis streams. */
export async function findStream(ctx: AwsContext, ref: StreamRef): Promise<StreamInfo> {
  const name = streamNameOf(ctx, ref);
  const stream = await ctx.engine.catalog.find(name);
  if (!stream || stream.kind !== 'KINESIS') throw streamNotFound(ctx, name);
  return stream;
}

/** Shards listed by DescribeStream / ListShards, in shard-id order. */
export function shardJson(shard: ShardInfo): Record<string, unknown> {
  return {
    ShardId: shard.shardId,
    ...(shard.parentShardId !== null ? { ParentShardId: shard.parentShardId } : {}),
    ...(shard.adjacentParentShardId !== null ? { AdjacentParentShardId: shard.adjacentParentShardId } : {}),
    HashKeyRange: { StartingHashKey: shard.hashKeyRange.startingHashKey, EndingHashKey: shard.hashKeyRange.endingHashKey },
    SequenceNumberRange: {
      StartingSequenceNumber: shard.startingSequenceNumber,
      ...(shard.endingSequenceNumber !== null ? { EndingSequenceNumber: shard.endingSequenceNumber } : {}),
    },
  };
}

/**
 * Runs an engine call for a named stream, turning the engine's coded errors into Kinesis error
 * types with AWS's wording where the engine's differs.
 */
export async function onStream<T>(ctx: AwsContext, streamName: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (raw) {
    throw kinesisError(ctx, raw, streamName);
  }
}

export function kinesisError(ctx: AwsContext, raw: unknown, streamName?: string): unknown {
  if (raw instanceof AwsError || !(raw instanceof ShardlineError)) return raw;
  const account = ` under account ${ctx.accountId}`;
  switch (raw.code) {
    case 'STREAM_NOT_FOUND':
      return streamName ? streamNotFound(ctx, streamName) : resourceNotFound(raw.message);
    case 'STREAM_EXISTS':
      return resourceInUse(streamName ? `Stream ${streamName}${account} already exists.` : raw.message);
    case 'SHARD_NOT_FOUND':
      return resourceNotFound(raw.message);
    case 'SHARD_CLOSED':
    case 'INVALID_ARGUMENT':
      return invalidArgument(streamName ? raw.message.replace(` in stream ${streamName} `, ` in stream ${streamName}${account} `) : raw.message);
    case 'LIMIT_EXCEEDED':
      return limitExceeded(raw.message);
    case 'CONFLICT':
      // The stream is in no state for it (a capture target cannot be resharded): 400, as AWS
      // answers a stream that is not ACTIVE, where a 500 would have the SDK retry in vain.
      return resourceInUse(raw.message);
    default:
      return raw;
  }
}
