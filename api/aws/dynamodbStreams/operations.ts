/**
 * The DynamoDB Streams API (target prefix DynamoDBStreams_20120810, AWS JSON 1.0) over
 * DYNAMODB streams: ListStreams, DescribeStream, GetShardIterator, GetRecords.
 *
 * Streams are addressed by their ARN `arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>`
 * (the label is the creation time, so a stream created again under the same name is another
 * stream). Iterators take AWS's `<streamArn>|1|<token>` form and live 15 minutes; GetRecords
 * returns at most 1,000 records or 1 MiB, in the record shape of aws-semantics §3.3, and ends
 * its iterator chain only at the end of a closed shard (shards roll over about every 4 hours).
 * TrimmedDataAccessException answers an iterator whose position lies before records that
 * passed the 24-hour retention, where the store can still tell (see trimmedBefore).
 */
import { inferKeySchema } from '../../../engine/dynamodb/keySchema.ts';
import { ShardlineError } from '../../../engine/errors.ts';
import { newestRecord, positionCheck, readShard } from '../../../engine/records/shardReads.ts';
import type { ShardInfo, StreamInfo } from '../../../engine/streams/model.ts';
import { parseSequenceNumber } from '../../../engine/streams/sequenceNumbers.ts';
import { type AwsContext, javaDate } from '../context.ts';
import type { Operations, Service } from '../service.ts';
import { AwsError, CONTENT_TYPES, Timestamp, expiredIterator, limitExceeded, resourceNotFound, validationError } from '../wire.ts';
import { SHAPES } from './shapes.ts';

/** GetRecords returns at most this many bytes of records, as AWS (1 MB). */
export const DDB_GET_RECORDS_MAX_BYTES = 1024 * 1024;
const DDB_GET_RECORDS_MAX = 1000;
const LIST_MAX = 100;
const ARN = /^arn:aws[^:]*:dynamodb:([^:]*):(\d{12}):table\/([^/]+)\/stream\/(.+)$/;

const streamLabelOf = (stream: StreamInfo) => stream.arn.slice(stream.arn.lastIndexOf('/') + 1);
const byName = (a: StreamInfo, b: StreamInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const streamNotFound = (arn: string) => resourceNotFound(`Requested resource not found: Stream: ${arn} not found`);
const shardNotFound = (arn: string, shardId: string) =>
  resourceNotFound(`Requested resource not found: Shard: ${shardId} in Stream: ${arn} not found`);
const trimmed = (message: string) => new AwsError('TrimmedDataAccessException', message);

/** The DYNAMODB stream an ARN names; the label must match too (a recreated stream is another). */
async function findStream(ctx: AwsContext, arn: string): Promise<StreamInfo> {
  const m = ARN.exec(arn);
  if (!m || m[1] !== ctx.region || m[2] !== ctx.accountId) throw streamNotFound(arn);
  const stream = await ctx.engine.catalog.find(m[3]!);
  if (!stream || stream.kind !== 'DYNAMODB' || stream.arn !== arn) throw streamNotFound(arn);
  return stream;
}

async function listStreams(ctx: AwsContext, input: { TableName?: string; Limit?: number; ExclusiveStartStreamArn?: string }) {
  const limit = input.Limit ?? LIST_MAX;
  let streams = (await ctx.engine.catalog.list()).filter((s) => s.kind === 'DYNAMODB').sort(byName);
  if (input.TableName !== undefined) streams = streams.filter((s) => s.name === input.TableName);
  if (input.ExclusiveStartStreamArn !== undefined) {
    const m = ARN.exec(input.ExclusiveStartStreamArn);
    if (!m) throw validationError(`ExclusiveStartStreamArn ${input.ExclusiveStartStreamArn} is not a DynamoDB stream ARN.`);
    const startName = m[3]!;
    streams = streams.filter((s) => s.name > startName);
  }
  const page = streams.slice(0, limit);
  return {
    Streams: page.map((s) => ({ StreamArn: s.arn, TableName: s.name, StreamLabel: streamLabelOf(s) })),
    ...(streams.length > limit ? { LastEvaluatedStreamArn: page.at(-1)!.arn } : {}),
  };
}

function shardJson(shard: ShardInfo) {
  return {
    ShardId: shard.shardId,
    SequenceNumberRange: {
      StartingSequenceNumber: shard.startingSequenceNumber,
      ...(shard.endingSequenceNumber !== null ? { EndingSequenceNumber: shard.endingSequenceNumber } : {}),
    },
    ...(shard.parentShardId !== null ? { ParentShardId: shard.parentShardId } : {}),
  };
}

async function describeStream(ctx: AwsContext, input: {
  StreamArn: string; Limit?: number; ExclusiveStartShardId?: string; ShardFilter?: { Type?: string; ShardId?: string };
}) {
  const stream = await findStream(ctx, input.StreamArn);
  let shards = await ctx.engine.catalog.shards(stream, 'ALL');
  if (input.ShardFilter !== undefined) {
    if (input.ShardFilter.Type !== 'CHILD_SHARDS' || input.ShardFilter.ShardId === undefined) {
      throw validationError('ShardFilter needs Type CHILD_SHARDS and a ShardId.');
    }
    const parent = input.ShardFilter.ShardId;
    shards = shards.filter((s) => s.parentShardId === parent);
  }
  const start = input.ExclusiveStartShardId;
  if (start !== undefined) shards = shards.filter((s) => s.shardId > start);
  const limit = input.Limit ?? LIST_MAX;
  const page = shards.slice(0, limit);
  const keySchema = await inferKeySchema(ctx.engine.handle, stream);
  return {
    StreamDescription: {
      StreamArn: stream.arn,
      StreamLabel: streamLabelOf(stream),
      StreamStatus: 'ENABLED',
      StreamViewType: stream.viewType,
      CreationRequestDateTime: Timestamp.of(stream.createdAt),
      TableName: stream.name,
      ...(keySchema ? { KeySchema: keySchema.map((k) => ({ AttributeName: k.attributeName, KeyType: k.keyType })) } : {}),
      Shards: page.map(shardJson),
      ...(shards.length > limit ? { LastEvaluatedShardId: page.at(-1)!.shardId } : {}),
    },
  };
}

/**
 * Whether records a reader has not seen yet have passed retention. The reader's next record is
 * the first one after `after`; `anchor` is the record it was positioned by: the last one it
 * consumed (expected next ordinal: anchor + 1), or for AT_SEQUENCE_NUMBER the record it asked
 * for (expected: the anchor itself). Trimmed when the next record is stored but expired, or when
 * the dense per-shard ordinals jump past what was expected (the records in between were trimmed
 * away); an anchor that is itself gone counts as trimmed when records came before the next one.
 * Records trimmed after the newest stored one are not detectable (nothing is left to compare).
 */
async function trimmedBefore(
  ctx: AwsContext, stream: StreamInfo, shard: ShardInfo, position: { after: bigint; lowMs: number },
  anchor: { seq: bigint; inclusive: boolean; ordinal?: number },
): Promise<{ trimmed: boolean; anchorOrdinal: number | undefined }> {
  const check = await positionCheck(ctx.engine.handle, stream, shard, position, anchor.seq);
  // A record trimmed since the iterator was made is still known by the ordinal it carries.
  const anchorOrdinal = check.anchorOrdinal ?? anchor.ordinal;
  const { next } = check;
  if (!next) return { trimmed: false, anchorOrdinal };
  if (next.expired) return { trimmed: true, anchorOrdinal };
  if (next.ordinal <= 1) return { trimmed: false, anchorOrdinal };
  return { trimmed: anchorOrdinal === undefined || next.ordinal > anchorOrdinal + (anchor.inclusive ? 0 : 1), anchorOrdinal };
}

async function getShardIterator(ctx: AwsContext, input: {
  StreamArn: string; ShardId: string; ShardIteratorType: string; SequenceNumber?: string;
}) {
  const stream = await findStream(ctx, input.StreamArn);
  const shard = (await ctx.engine.catalog.shards(stream, 'ALL')).find((s) => s.shardId === input.ShardId);
  if (!shard) throw shardNotFound(stream.arn, input.ShardId);
  const type = input.ShardIteratorType;
  const start = parseSequenceNumber(shard.startingSequenceNumber);
  let after: bigint;
  let trimHorizon = false;
  /** The ordinal of the record at `after`, carried so the trimmed check holds once that record is trimmed. */
  let afterOrdinal: number | undefined;
  if (type === 'TRIM_HORIZON' || type === 'LATEST') {
    if (input.SequenceNumber !== undefined) {
      throw validationError(`A SequenceNumber may not be given with ShardIteratorType ${type}.`);
    }
    if (type === 'TRIM_HORIZON') {
      after = -1n;
      trimHorizon = true;
    } else {
      const latest = await newestRecord(ctx.engine.handle, shard);
      after = latest !== undefined && latest.seq > start ? latest.seq : start;
      if (latest !== undefined && latest.seq === after) afterOrdinal = latest.ordinal;
    }
  } else {
    if (input.SequenceNumber === undefined) {
      throw validationError(`ShardIteratorType ${type} needs a SequenceNumber.`);
    }
    let seq: bigint;
    try {
      seq = parseSequenceNumber(input.SequenceNumber);
    } catch {
      throw validationError(`Invalid SequenceNumber ${input.SequenceNumber}: not a sequence number of this stream.`);
    }
    const end = shard.endingSequenceNumber === null ? undefined : parseSequenceNumber(shard.endingSequenceNumber);
    if (seq < start || (end !== undefined && seq > end)) {
      throw validationError(`Invalid SequenceNumber ${input.SequenceNumber} for shard ${shard.shardId}: it lies outside the shard's sequence number range.`);
    }
    // An open shard's range has no end, but a number not issued yet would skip the records
    // written until the numbers pass it.
    if (end === undefined && seq > await ctx.engine.lastIssuedSequence()) {
      throw validationError(`Invalid SequenceNumber ${input.SequenceNumber} for shard ${shard.shardId}: no record has been given that number yet.`);
    }
    after = type === 'AT_SEQUENCE_NUMBER' ? seq - 1n : seq;
    const check = await trimmedBefore(ctx, stream, shard, { after, lowMs: 0 }, { seq, inclusive: type === 'AT_SEQUENCE_NUMBER' });
    if (check.trimmed) {
      throw trimmed(`The operation attempted to read past the oldest stream record in a shard: SequenceNumber ${input.SequenceNumber} `
        + `of shard ${shard.shardId} is beyond the trim horizon.`);
    }
    if (type === 'AFTER_SEQUENCE_NUMBER') afterOrdinal = check.anchorOrdinal;
  }
  const token = ctx.tokens.encodeIterator({
    api: 'dynamodb', streamId: stream.id, shardIndex: shard.shardIndex, after, lowMs: 0, issuedMs: ctx.clock(), trimHorizon,
    atSequence: type === 'AT_SEQUENCE_NUMBER', ...(afterOrdinal === undefined ? {} : { afterOrdinal }),
  });
  return { ShardIterator: `${stream.arn}|1|${token}` };
}

const ITERATOR = /^(arn:[^|]+)\|1\|([^|]+)$/;

async function getRecords(ctx: AwsContext, input: { ShardIterator: string; Limit?: number }) {
  const m = ITERATOR.exec(input.ShardIterator);
  const state = m ? ctx.tokens.decodeIterator(m[2]!, 'dynamodb') : undefined;
  if (!m || !state) throw validationError('Invalid ShardIterator');
  const now = ctx.clock();
  if (now - state.issuedMs > ctx.dynamodbIteratorTtlMs) {
    throw expiredIterator(`Iterator expired. The iterator was created at time ${javaDate(state.issuedMs)} while right now it is ${javaDate(now)} `
      + `which is further in the future than the tolerated delay of ${ctx.dynamodbIteratorTtlMs} milliseconds.`);
  }
  const arn = m[1]!;
  const stream = await ctx.engine.catalog.findById(state.streamId);
  if (!stream || stream.kind !== 'DYNAMODB' || stream.arn !== arn) throw streamNotFound(arn);
  const shards = await ctx.engine.catalog.shards(stream, 'ALL');
  const shard = shards.find((s) => s.shardIndex === state.shardIndex);
  if (!shard) throw shardNotFound(arn, `shardId-${String(state.shardIndex).padStart(12, '0')}`);
  const anchor = state.atSequence
    ? { seq: state.after + 1n, inclusive: true }
    : { seq: state.after, inclusive: false, ...(state.afterOrdinal === undefined ? {} : { ordinal: state.afterOrdinal }) };
  if (!state.trimHorizon && (await trimmedBefore(ctx, stream, shard, state, anchor)).trimmed) {
    throw trimmed('The operation attempted to read past the oldest stream record in a shard: records after this iterator have passed the 24-hour retention.');
  }
  const read = await readShard(ctx.engine.handle, stream, shard, { after: state.after, lowMs: state.lowMs },
    input.Limit ?? DDB_GET_RECORDS_MAX, DDB_GET_RECORDS_MAX_BYTES);
  const atEnd = shard.endingSequenceNumber !== null && read.nextArrival === null;
  return {
    Records: read.records.map((r) => {
      const dynamodb = JSON.parse(r.data) as Record<string, unknown>;
      dynamodb.ApproximateCreationDateTime = new Timestamp(Number(dynamodb.ApproximateCreationDateTime) * 1000);
      return {
        eventID: r.eventID,
        eventName: r.eventName,
        eventVersion: '1.1',
        eventSource: 'aws:dynamodb',
        awsRegion: ctx.region,
        dynamodb,
      };
    }),
    ...(atEnd ? {} : {
      NextShardIterator: `${arn}|1|${ctx.tokens.encodeIterator({
        ...state, after: read.next.after, lowMs: read.next.lowMs, issuedMs: now,
        ...(read.lastOrdinal === undefined ? {} : { afterOrdinal: read.lastOrdinal }),
        trimHorizon: state.trimHorizon && read.records.length === 0, atSequence: state.atSequence && read.records.length === 0,
      })}`,
    }),
  };
}

export const DYNAMODB_STREAMS_OPERATIONS: Operations = {
  ListStreams: { shape: SHAPES.ListStreams, run: listStreams },
  DescribeStream: { shape: SHAPES.DescribeStream, run: describeStream },
  GetShardIterator: { shape: SHAPES.GetShardIterator, run: getShardIterator },
  GetRecords: { shape: SHAPES.GetRecords, run: getRecords },
};

function dynamodbError(_ctx: AwsContext, raw: unknown): unknown {
  if (!(raw instanceof ShardlineError)) return raw;
  switch (raw.code) {
    case 'STREAM_NOT_FOUND':
    case 'SHARD_NOT_FOUND':
      return resourceNotFound(`Requested resource not found: ${raw.message}`);
    case 'INVALID_ARGUMENT':
      return validationError(raw.message);
    case 'LIMIT_EXCEEDED':
      return limitExceeded(raw.message);
    default:
      return raw;
  }
}

export const DYNAMODB_STREAMS_SERVICE: Service = {
  targetPrefix: 'DynamoDBStreams_20120810',
  jsonContentType: CONTENT_TYPES.json10,
  errorNamespace: 'com.amazonaws.dynamodb.v20120810',
  internalErrorType: 'InternalServerError',
  operations: DYNAMODB_STREAMS_OPERATIONS,
  mapError: dynamodbError,
};
