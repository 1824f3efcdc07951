/**
 * putRecords for KINESIS streams, with AWS's limits: 1–500 records and at most 5 MiB per call
 * (partition keys included), partition keys of 1–256 characters, data plus partition key at
 * most 1 MiB. AWS rejects a call that breaks a field constraint as a whole, so these are
 * whole-request errors and nothing is written.
 *
 * A valid call is written as one statement (its own transaction) for all its target shards;
 * the rows concurrent calls send to one stream share a statement (StreamAppender), so calls
 * never wait on each other's shard locks and Postgres commits once for all of them. Like AWS
 * PutRecords the call is not atomic across records: a write that fails leaves its records with
 * a per-record errorCode (InternalFailure) and failedRecordCount counts them, while records
 * with the same partition key always share a shard and keep their order.
 * On a stream that enforces throughput, admitWrites admits a prefix of each shard's records and
 * the rest fail with ProvisionedThroughputExceededException (streams/shardThroughput.ts).
 */
import type { DatabaseHandle } from '../db.ts';
import { coerceError, invalidArgument, limitExceeded } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { hashKeyOf, parseHashKey } from '../streams/hashKeys.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { writeThrottled } from '../streams/shardThroughput.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import { type PendingRecord, ShardMovedError } from './appendRecords.ts';
import { base64Length, isBase64 } from './base64.ts';
import { ensurePartitionsForDatabaseTime, isMissingPartition } from './partitions.ts';
import type { StreamAppender } from './streamAppender.ts';

export const PUT_LIMITS = {
  maxRecords: 500,
  maxRequestBytes: 5 * 1024 * 1024,
  maxRecordBytes: 1024 * 1024,
  maxPartitionKeyChars: 256,
};

export interface PutRecordInput {
  partitionKey: string;
  data: string;
  explicitHashKey?: string | null;
  /**
   * The decoded length of data, from a caller that has already checked it is strict base64
   * (the AWS wire APIs do while deserialising): the check, a pass over every byte, is not repeated.
   */
  dataBytes?: number;
}
export interface PutResultEntry {
  shardId: string | null;
  sequenceNumber: string | null;
  errorCode: string | null;
  errorMessage: string | null;
}
export interface PutResult { failedRecordCount: number; records: PutResultEntry[] }
/** How many of a shard's records (sizes in bytes, in order) fit its throughput now: a prefix. */
export type AdmitWrites = (stream: StreamInfo, shard: ShardInfo, sizes: number[]) => number;

/** Open shards sorted by range start, with their bounds parsed once per call. */
export class ShardRouter {
  readonly #ranges: { start: bigint; end: bigint; shard: ShardInfo }[];

  constructor(open: ShardInfo[]) {
    this.#ranges = open
      .map((shard) => ({ start: BigInt(shard.hashKeyRange.startingHashKey), end: BigInt(shard.hashKeyRange.endingHashKey), shard }))
      .sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  route(hashKey: bigint): ShardInfo {
    let low = 0;
    let high = this.#ranges.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const range = this.#ranges[mid]!;
      if (hashKey < range.start) high = mid - 1;
      else if (hashKey > range.end) low = mid + 1;
      else return range.shard;
    }
    throw new Error(`No open shard covers hash key ${hashKey}; the shard map has a hole.`);
  }
}

interface Validated { partitionKey: string; data: string; size: number; hashKey: bigint }

export function validatePutRecords(records: PutRecordInput[]): Validated[] {
  if (records.length === 0) throw invalidArgument('records must hold between 1 and 500 entries, got 0.');
  if (records.length > PUT_LIMITS.maxRecords) {
    throw limitExceeded(`records must hold at most ${PUT_LIMITS.maxRecords} entries, got ${records.length}.`);
  }
  let total = 0;
  const validated = records.map((record, i) => {
    const keyChars = codePoints(record.partitionKey);
    if (keyChars < 1 || keyChars > PUT_LIMITS.maxPartitionKeyChars) {
      throw invalidArgument(`records[${i}].partitionKey must be 1–256 characters, got ${keyChars}.`);
    }
    if (record.partitionKey.indexOf('\u0000') !== -1) {
      throw invalidArgument(`records[${i}].partitionKey must not contain U+0000 (NUL): Postgres text cannot hold it.`);
    }
    if (record.dataBytes === undefined && !isBase64(record.data)) throw invalidArgument(`records[${i}].data must be base64.`);
    const keyBytes = Buffer.byteLength(record.partitionKey, 'utf8');
    const size = record.dataBytes ?? base64Length(record.data);
    if (size + keyBytes > PUT_LIMITS.maxRecordBytes) {
      throw limitExceeded(
        `records[${i}]: data plus partitionKey must be at most 1 MiB (1048576 bytes), got ${size + keyBytes}.`,
      );
    }
    total += size + keyBytes;
    let hashKey: bigint;
    if (record.explicitHashKey != null) {
      const explicit = parseHashKey(record.explicitHashKey);
      if (explicit === undefined) {
        throw invalidArgument(
          `records[${i}].explicitHashKey must be in the range [0, 2^128-1], got "${record.explicitHashKey}".`,
        );
      }
      hashKey = explicit;
    } else {
      hashKey = hashKeyOf(record.partitionKey);
    }
    return { partitionKey: record.partitionKey, data: record.data, size: size + keyBytes, hashKey };
  });
  if (total > PUT_LIMITS.maxRequestBytes) {
    throw limitExceeded(`A putRecords call may carry at most 5 MiB (5242880 bytes) of data and partition keys, got ${total}.`);
  }
  return validated;
}

/** Characters as AWS counts them (code points: a surrogate pair is one), without an array per key. */
function codePoints(value: string): number {
  let n = value.length;
  for (let i = 0; i < value.length - 1; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/**
 * A closed target shard means a reshard committed in between; routing again always makes
 * progress then, so this only bounds a pathological storm of reshards.
 */
const MAX_ROUTING_ATTEMPTS = 100;
const INTERNAL_FAILURE = { errorCode: 'InternalFailure', errorMessage: 'Internal service failure.' };

export async function putRecords(
  handle: DatabaseHandle,
  appender: StreamAppender,
  catalog: StreamCatalog,
  events: EngineEvents,
  streamName: string,
  records: PutRecordInput[],
  onShardError: (error: Error) => void = () => {},
  admitWrites?: AdmitWrites,
): Promise<PutResult> {
  const valid = validatePutRecords(records);
  const entries: PutResultEntry[] = new Array(valid.length);
  let pending = valid.map((_, i) => i);
  let { stream, open } = await catalog.routing(streamName);
  if (stream.kind !== 'KINESIS') {
    throw invalidArgument(`putRecords writes to KINESIS streams; ${streamName} is a DYNAMODB stream (use writeItems).`);
  }
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > 1) ({ stream, open } = await catalog.routing(streamName, true));
    if (attempt > MAX_ROUTING_ATTEMPTS) break;
    const router = new ShardRouter(open);
    const groups = new Map<ShardInfo, number[]>();
    for (const i of pending) {
      const shard = router.route(valid[i]!.hashKey);
      const group = groups.get(shard);
      if (group) group.push(i);
      else groups.set(shard, [i]);
    }
    const written: number[] = [];
    const rows: PendingRecord[] = [];
    const shardOf: ShardInfo[] = [];
    for (let [shard, indexes] of groups) {
      if (admitWrites && stream.enforceThroughput) {
        const admitted = admitWrites(stream, shard, indexes.map((i) => valid[i]!.size));
        for (const i of indexes.slice(admitted)) entries[i] = writeThrottled(stream, shard);
        indexes = indexes.slice(0, admitted);
      }
      for (const i of indexes) {
        written.push(i);
        shardOf.push(shard);
        rows.push({ shardKey: shard.key, partitionKey: valid[i]!.partitionKey, dataBase64: valid[i]!.data, sizeBytes: valid[i]!.size });
      }
    }
    let retry: number[] = [];
    if (rows.length > 0) {
      try {
        // One statement for all target shards, atomic on its own (appendRecords): no
        // transaction around it; concurrent calls' rows for the stream share it (StreamAppender).
        const seqs = await appender.append(stream.id, rows);
        written.forEach((i, j) => {
          entries[i] = { shardId: shardOf[j]!.shardId, sequenceNumber: formatSequenceNumber(seqs[j]!), errorCode: null, errorMessage: null };
        });
      } catch (raw) {
        if (raw instanceof ShardMovedError) {
          retry = written;
        } else if (isMissingPartition(raw)) {
          await ensurePartitionsForDatabaseTime(handle);
          retry = written;
        } else {
          onShardError(coerceError(raw));
          for (const i of written) entries[i] = { shardId: null, sequenceNumber: null, ...INTERNAL_FAILURE };
        }
      }
    }
    pending = retry.sort((a, b) => a - b);
  }
  if (pending.length > 0) {
    onShardError(new Error(`putRecords to ${streamName}: ${pending.length} record(s) found their shard closed ${MAX_ROUTING_ATTEMPTS} times in a row.`));
  }
  for (const i of pending) entries[i] = { shardId: null, sequenceNumber: null, ...INTERNAL_FAILURE };
  const failedRecordCount = entries.filter((e) => e.errorCode !== null).length;
  if (failedRecordCount < entries.length) events.emit('records', { streamId: stream.id, streamName: stream.name });
  return { failedRecordCount, records: entries };
}
