/**
 * Kinesis data-plane operations: PutRecord, PutRecords, GetShardIterator, GetRecords. Writes
 * go through engine.putRecords (the one write path GraphQL and delivery see); reads go through
 * the engine's one-shard reader with AWS's bounds (Limit up to 10,000 records, 10 MiB).
 *
 * GetRecords semantics (aws-semantics §2.6): NextShardIterator sits just after the returned
 * records (or where it was when none came back) and is absent only once a closed shard has been
 * read to its end, in the same response that carries ChildShards. MillisBehindLatest is how old
 * the first record left unread is (0 when caught up). A JSON request gets its records' JSON as
 * the engine holds it for the newest records (RecentRecords) or Postgres writes it
 * (readShardKinesisJson), spliced into the response without parsing; CBOR requests get them as
 * values.
 *
 * On a stream with enforceThroughput, AWS's per-shard limits apply (engine/streams/shardThroughput.ts):
 * PutRecords reports throttled entries per record, PutRecord and GetRecords raise
 * ProvisionedThroughputExceededException.
 */
import { ShardlineError } from '../../../engine/errors.ts';
import { PUT_LIMITS } from '../../../engine/records/putRecords.ts';
import { type ShardPosition, readShardKinesisValues } from '../../../engine/records/shardReads.ts';
import { MAX_HASH_KEY } from '../../../engine/streams/hashKeys.ts';
import { type ShardInfo, type StreamInfo, shardIdOf } from '../../../engine/streams/model.ts';
import { parseSequenceNumber } from '../../../engine/streams/sequenceNumbers.ts';
import { readThrottledMessage } from '../../../engine/streams/shardThroughput.ts';
import { type AwsContext, javaDate } from '../context.ts';
import {
  AwsError, type Blob as WireBlob, Blob, JsonText, Timestamp, expiredIterator, invalidArgument, resourceNotFound, throughputExceeded,
} from '../wire.ts';
import { findStream, kinesisError, onStream, shardNotFound, streamNameOf, streamNotFound } from './common.ts';
import type { StreamRef } from './shapes.ts';

/** GetRecords returns at most this many bytes (data plus partition keys), as AWS. */
export const GET_RECORDS_MAX_BYTES = 10 * 1024 * 1024;
const GET_RECORDS_DEFAULT_LIMIT = 10_000;

interface PutEntry { Data: WireBlob; PartitionKey: string; ExplicitHashKey?: string }

function checkExplicitHashKey(value: string | undefined): void {
  if (value !== undefined && BigInt(value) > MAX_HASH_KEY) {
    throw invalidArgument(`Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was ${value}`);
  }
}

function recordSize(entry: PutEntry): number {
  return entry.Data.length + Buffer.byteLength(entry.PartitionKey, 'utf8');
}

function checkRecordSize(entry: PutEntry): void {
  const size = recordSize(entry);
  if (size > PUT_LIMITS.maxRecordBytes) {
    throw invalidArgument(`The size of a record's data plus its partition key must be at most ${PUT_LIMITS.maxRecordBytes} bytes, got ${size}.`);
  }
}

const internalFailure = () => new AwsError('InternalFailure', 'Internal service failure.', 500);

/**
 * The KINESIS stream a write names, from the write path's one-second routing cache rather than
 * a query per call: a stale entry is harmless, as the write itself checks the stream and its
 * target shards under their locks and routes again.
 */
async function writeTarget(ctx: AwsContext, ref: StreamRef): Promise<StreamInfo> {
  const name = streamNameOf(ctx, ref);
  const { stream } = await onStream(ctx, name, () => ctx.engine.catalog.routing(name));
  if (stream.kind !== 'KINESIS') throw streamNotFound(ctx, name);
  return stream;
}

export async function putRecord(ctx: AwsContext, input: StreamRef & PutEntry & { SequenceNumberForOrdering?: string }) {
  const stream = await writeTarget(ctx, input);
  if (input.SequenceNumberForOrdering !== undefined) {
    const invalid = () => invalidArgument(`ExclusiveMinimumSequenceNumber ${input.SequenceNumberForOrdering} used in PutRecord on stream ${stream.name} `
      + `under account ${ctx.accountId} is invalid.`);
    let minimum: bigint;
    try {
      minimum = parseSequenceNumber(input.SequenceNumberForOrdering);
    } catch {
      throw invalid();
    }
    // Numbers rise with every record, so the new one is above any number issued before it; a
    // number never issued is one the new record might not pass.
    if (minimum > await ctx.engine.lastIssuedSequence()) throw invalid();
  }
  checkExplicitHashKey(input.ExplicitHashKey);
  checkRecordSize(input);
  const result = await onStream(ctx, stream.name, () => ctx.engine.putRecords(stream.name, [{
    partitionKey: input.PartitionKey, data: input.Data.base64, explicitHashKey: input.ExplicitHashKey ?? null, dataBytes: input.Data.length,
  }], { kinesisReaders: true }));
  const entry = result.records[0]!;
  if (entry.errorCode === 'ProvisionedThroughputExceededException') throw throughputExceeded(entry.errorMessage!);
  if (entry.errorCode !== null) throw internalFailure();
  return { ShardId: entry.shardId, SequenceNumber: entry.sequenceNumber, EncryptionType: 'NONE' };
}

export async function putRecords(ctx: AwsContext, input: StreamRef & { Records: PutEntry[] }) {
  const stream = await writeTarget(ctx, input);
  let total = 0;
  for (const entry of input.Records) {
    checkExplicitHashKey(entry.ExplicitHashKey);
    checkRecordSize(entry);
    total += recordSize(entry);
  }
  if (total > PUT_LIMITS.maxRequestBytes) throw invalidArgument('Records size exceeds 5 MB limit');
  const result = await onStream(ctx, stream.name, () => ctx.engine.putRecords(stream.name, input.Records.map((entry) => ({
    partitionKey: entry.PartitionKey, data: entry.Data.base64, explicitHashKey: entry.ExplicitHashKey ?? null, dataBytes: entry.Data.length,
  })), { kinesisReaders: true }));
  return {
    FailedRecordCount: result.failedRecordCount,
    Records: result.records.map((entry) => (entry.errorCode !== null
      ? { ErrorCode: entry.errorCode, ErrorMessage: entry.errorMessage }
      : { SequenceNumber: entry.sequenceNumber, ShardId: entry.shardId })),
    EncryptionType: 'NONE',
  };
}

/** A listed shard of a stream by id; closed shards stay until their data passes retention. */
async function shardOf(ctx: AwsContext, stream: StreamInfo, shardId: string): Promise<ShardInfo> {
  const shard = (await ctx.engine.catalog.shards(stream, 'ALL')).find((s) => s.shardId === shardId);
  if (!shard) throw shardNotFound(ctx, stream.name, shardId);
  return shard;
}

function iteratorTypeMismatch(type: string, sequenceNumber: string | undefined): AwsError {
  return invalidArgument('Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or '
    + `(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified ${type} and `
    + `${sequenceNumber === undefined ? 'no StartingSequenceNumber' : `also a StartingSequenceNumber`}.`);
}

export async function getShardIterator(ctx: AwsContext, input: StreamRef & {
  ShardId: string; ShardIteratorType: string; StartingSequenceNumber?: string; Timestamp?: number;
}) {
  const stream = await findStream(ctx, input);
  const shard = await shardOf(ctx, stream, input.ShardId);
  const type = input.ShardIteratorType;
  const seqText = input.StartingSequenceNumber;
  const start = parseSequenceNumber(shard.startingSequenceNumber);
  let after: bigint;
  let lowMs = 0;
  switch (type) {
    case 'TRIM_HORIZON':
    case 'LATEST': {
      if (seqText !== undefined) throw iteratorTypeMismatch(type, seqText);
      if (type === 'TRIM_HORIZON') {
        after = -1n;
      } else {
        const latest = (await ctx.engine.reader.latestSeqs([shard])).get(shard.key);
        after = latest !== undefined && latest > start ? latest : start;
      }
      break;
    }
    case 'AT_SEQUENCE_NUMBER':
    case 'AFTER_SEQUENCE_NUMBER': {
      if (seqText === undefined) throw iteratorTypeMismatch(type, seqText);
      let seq: bigint;
      try {
        seq = parseSequenceNumber(seqText);
      } catch {
        throw invalidArgument(`StartingSequenceNumber ${seqText} used in GetShardIterator on shard ${shard.shardId} in stream ${stream.name} `
          + `under account ${ctx.accountId} is invalid.`);
      }
      const end = shard.endingSequenceNumber === null ? undefined : parseSequenceNumber(shard.endingSequenceNumber);
      if (seq < start || (end !== undefined && seq > end)) {
        throw invalidArgument(`Invalid StartingSequenceNumber. ${seqText} lies outside the sequence number range of ${shard.shardId} `
          + `in stream ${stream.name} under account ${ctx.accountId}, so it was not issued by this shard.`);
      }
      // An open shard's range has no end, but a number not issued yet would skip every record
      // written until the numbers pass it.
      if (end === undefined && seq > await ctx.engine.lastIssuedSequence()) {
        throw invalidArgument(`StartingSequenceNumber ${seqText} used in GetShardIterator on shard ${shard.shardId} in stream ${stream.name} `
          + `under account ${ctx.accountId} is invalid.`);
      }
      after = type === 'AT_SEQUENCE_NUMBER' ? seq - 1n : seq;
      break;
    }
    case 'AT_TIMESTAMP': {
      if (input.Timestamp === undefined) {
        throw invalidArgument('Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.');
      }
      const now = Date.now();
      if (input.Timestamp > now) {
        throw invalidArgument(`The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: ${input.Timestamp}, currentTimestampInMillis: ${now}`);
      }
      // A time before the trim horizon reads from it, as AWS: 1970 is before every record.
      const positions = await onStream(ctx, stream.name, () =>
        ctx.engine.reader.resolve([shard], { type: 'AT_TIMESTAMP', timestamp: new Date(Math.max(0, input.Timestamp!)) }));
      const position = positions.get(shard.shardIndex)!;
      after = position.after;
      lowMs = Math.max(0, position.lowMs);
      break;
    }
    default:
      throw invalidArgument(`Unknown ShardIteratorType ${type}.`);
  }
  const iterator = ctx.tokens.encodeIterator({
    api: 'kinesis', streamId: stream.id, shardIndex: shard.shardIndex, after, lowMs, issuedMs: ctx.clock(), trimHorizon: false,
  });
  return { ShardIterator: iterator };
}

/** ChildShards of a shard read to its end: each child with its parents and hash key range. */
export function childShards(shards: ShardInfo[], parent: ShardInfo) {
  return shards
    .filter((s) => s.parentShardId === parent.shardId || s.adjacentParentShardId === parent.shardId)
    .map((s) => ({
      ShardId: s.shardId,
      ParentShards: [s.parentShardId, s.adjacentParentShardId].filter((id): id is string => id !== null),
      HashKeyRange: { StartingHashKey: s.hashKeyRange.startingHashKey, EndingHashKey: s.hashKeyRange.endingHashKey },
    }));
}

export async function getRecords(ctx: AwsContext, input: { ShardIterator: string; Limit?: number; StreamARN?: string }) {
  const state = ctx.tokens.decodeIterator(input.ShardIterator, 'kinesis');
  if (!state) throw invalidArgument('Invalid ShardIterator.');
  const now = ctx.clock();
  if (now - state.issuedMs > ctx.kinesisIteratorTtlMs) {
    throw expiredIterator(`Iterator expired. The iterator was created at time ${javaDate(state.issuedMs)} while right now it is ${javaDate(now)} `
      + `which is further in the future than the tolerated delay of ${ctx.kinesisIteratorTtlMs} milliseconds.`);
  }
  const stream = await ctx.engine.catalog.findById(state.streamId);
  if (!stream || stream.kind !== 'KINESIS') {
    throw resourceNotFound(`The stream of this shard iterator under account ${ctx.accountId} no longer exists.`);
  }
  if (input.StreamARN !== undefined && input.StreamARN !== stream.arn) {
    throw invalidArgument(`StreamARN ${input.StreamARN} is not the stream of this shard iterator (${stream.arn}).`);
  }
  const shards = await ctx.engine.catalog.shards(stream, 'ALL');
  const shard = shards.find((s) => s.shardIndex === state.shardIndex);
  if (!shard) throw shardNotFound(ctx, stream.name, shardIdOf(state.shardIndex));
  if (!ctx.engine.throughput.admitRead(stream, shard)) throw throughputExceeded(readThrottledMessage(stream, shard));
  const from = { after: state.after, lowMs: state.lowMs };
  const limit = input.Limit ?? GET_RECORDS_DEFAULT_LIMIT;
  // JSON requests get the records' JSON as the engine holds it or writes it from Postgres's page; CBOR needs them as values.
  let read: { next: ShardPosition; nextArrival: Date | null; sizeBytes: number; records: unknown[] | { json: (string | Buffer)[] } };
  try {
    if (ctx.format === 'json') {
      const json = await ctx.engine.readShardKinesisJson(stream, shard, from, limit, GET_RECORDS_MAX_BYTES);
      read = { ...json, records: { json: json.recordsJson } };
    } else {
      const values = await readShardKinesisValues(ctx.engine.handle, stream, shard, from, limit, GET_RECORDS_MAX_BYTES);
      read = {
        next: values.next,
        nextArrival: values.nextArrival,
        sizeBytes: values.sizeBytes,
        records: values.records.map((r) => ({
          SequenceNumber: r.sequenceNumber,
          ApproximateArrivalTimestamp: new Timestamp(r.arrivalMs),
          Data: Blob.fromBytes(r.data),
          PartitionKey: r.partitionKey,
        })),
      };
    }
  } catch (raw) {
    throw raw instanceof ShardlineError ? kinesisError(ctx, raw, stream.name) : raw;
  }
  if (stream.enforceThroughput) ctx.engine.throughput.chargeRead(stream, shard, read.sizeBytes);
  const atEnd = shard.endingSequenceNumber !== null && read.nextArrival === null;
  const millisBehind = read.nextArrival === null ? 0 : Math.max(0, Date.now() - read.nextArrival.getTime());
  const rest = {
    ...(atEnd ? {} : {
      NextShardIterator: ctx.tokens.encodeIterator({ ...state, after: read.next.after, lowMs: read.next.lowMs, issuedMs: now }),
    }),
    MillisBehindLatest: millisBehind,
    ...(atEnd ? { ChildShards: childShards(shards, shard) } : {}),
  };
  if (!Array.isArray(read.records)) {
    const parts: (string | Buffer)[] = ['{"Records":['];
    read.records.json.forEach((piece, i) => (i === 0 ? parts.push(piece) : parts.push(',', piece)));
    parts.push('],', JSON.stringify(rest).slice(1));
    return new JsonText(parts);
  }
  return { Records: read.records, ...rest };
}
