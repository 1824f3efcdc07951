/**
 * One-shard reads for the AWS wire APIs (GetRecords): records of one shard after a position,
 * in sequence order, bounded by a count *and* a byte budget, plus what a GetRecords response
 * needs around them: whether anything is left to read and the arrival of the next unread
 * record (for MillisBehindLatest).
 *
 * The byte budget is applied in SQL with a running sum over the page (a streaming window over
 * the (shard, seq) index scan), so a 10,000-record limit over 1 MiB records never loads more
 * than the budget. The first record is always returned, so a read always makes progress.
 * Retention filters exactly as RecordReader.readAfter does: expired records are skipped.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { SEQUENCE_NUMBER_OFFSET, formatSequenceNumber } from '../streams/sequenceNumbers.ts';
import { type StoredRecord, toStoredRecord } from './readRecords.ts';
import { readBinaryCopy, timestamptzUs } from './recordsCopy.ts';

export interface ShardPosition {
  /** Internal sequence value of the last record consumed (-1 before the first). */
  after: bigint;
  /** Arrival lower bound in epoch ms (lets Postgres prune partitions; 0 for none). */
  lowMs: number;
}

export interface ShardRead {
  records: StoredRecord[];
  /** The position just after the returned records (the given one when none were returned). */
  next: ShardPosition;
  /** Arrival of the first record left unread (within retention), or null when none is left. */
  nextArrival: Date | null;
  /** The shard's dense ordinal of the last record returned (undefined when none was). */
  lastOrdinal?: number;
}

/**
 * The page of a shard after a position: up to limit + 1 rows in sequence order, each marked
 * `included` when it fits the count and byte budget (the first always does); the first row not
 * included is only there to say what is left.
 */
function pageOf(stream: StreamInfo, shard: ShardInfo, from: ShardPosition, limit: number, maxBytes: number): SQL {
  // A DYNAMODB record's size_bytes is DynamoDB's item size (SizeBytes), a fraction of the JSON
  // a response carries: the budget counts the stored JSON instead.
  const bytes = stream.kind === 'DYNAMODB' ? sql`octet_length(r.data)` : sql`r.size_bytes`;
  return sql`
    select r.seq, r.ordinal, r.arrived_at, r.partition_key, r.data, r.size_bytes, r.event_name, r.event_id, r.origin,
           (row_number() over w = 1
             or (row_number() over w <= ${limit}::int and sum(${bytes}) over w <= ${maxBytes}::bigint)) as included
      from records r
     where r.shard_key = ${shard.key} and r.seq > ${from.after.toString()}::bigint
       and r.arrived_at >= greatest(to_timestamp(${from.lowMs}::float8 / 1000), now() - make_interval(hours => ${stream.retentionHours}::int))
    window w as (order by r.seq rows between unbounded preceding and current row)
     order by r.seq
     limit ${limit + 1}::int`;
}

export async function readShard(
  handle: DatabaseHandle,
  stream: StreamInfo,
  shard: ShardInfo,
  from: ShardPosition,
  limit: number,
  maxBytes: number,
): Promise<ShardRead> {
  const dataExpr = stream.kind === 'KINESIS' ? sql`encode(p.data, 'base64')` : sql`convert_from(p.data, 'UTF8')`;
  const rows = await handle.query<{
    seq: string; ordinal: string | number; arrived_ms: number; partition_key: string; data: string | null; size_bytes: number;
    event_name: string | null; event_id: string | null; origin: string | null; included: boolean;
  }>(sql`
    select p.seq::text as seq, p.ordinal, (extract(epoch from p.arrived_at) * 1000)::float8 as arrived_ms, p.partition_key,
           case when p.included then ${dataExpr} end as data,
           p.size_bytes, p.event_name, p.event_id, p.origin::text as origin, p.included
      from (${pageOf(stream, shard, from, limit, maxBytes)}) p
     order by p.seq`);
  const records: StoredRecord[] = [];
  let next = from;
  let nextArrival: Date | null = null;
  let lastOrdinal: number | undefined;
  for (const row of rows) {
    if (!row.included) {
      nextArrival = new Date(Math.floor(row.arrived_ms));
      break;
    }
    records.push(toStoredRecord(stream, shard, { ...row, data: row.data ?? '' }));
    next = { after: BigInt(row.seq), lowMs: Math.floor(row.arrived_ms) };
    lastOrdinal = Number(row.ordinal);
  }
  return { records, next, nextArrival, ...(lastOrdinal === undefined ? {} : { lastOrdinal }) };
}

export interface KinesisJsonRead {
  /**
   * The records as the members of Kinesis GetRecords' `Records` array, in order, to be joined
   * with commas (SequenceNumber, ApproximateArrivalTimestamp, Data, PartitionKey); a piece may
   * hold several members joined already, as text or as UTF-8 bytes. Empty when none were read.
   */
  recordsJson: (string | Buffer)[];
  count: number;
  /** Data plus partition key bytes of the records (what read throughput charges). */
  sizeBytes: number;
  next: ShardPosition;
  nextArrival: Date | null;
}

/**
 * The same read as readShard for a KINESIS shard, as the JSON members of GetRecords' `Records`.
 *
 * On Postgres the page comes as binary COPY (raw payload bytes, no text form of any column) and
 * Node writes the JSON; a page of 10,000 records of 1 KiB took Postgres 11–13 ms against 66–78
 * ms for the aggregate below, which PGlite still runs (bench/README.md, "Eleventh session").
 *
 * The aggregate has Postgres make the JSON: Node then neither parses 10,000 rows into objects
 * nor serialises them again. The page subquery's order is the aggregate's input order (one
 * sorted, non-parallel stream under the window); the base64 loses Postgres's line breaks with
 * replace(), which costs next to nothing (translate() would cost 4×), partition keys are
 * escaped by to_json, and concat() copies each record's pieces once (a chain of || copies the
 * base64 again at every step). Sequence numbers and arrival are written as formatSequenceNumber
 * and kinesisTimestamp write them.
 */
export async function readShardKinesisJson(
  handle: DatabaseHandle,
  stream: StreamInfo,
  shard: ShardInfo,
  from: ShardPosition,
  limit: number,
  maxBytes: number,
): Promise<KinesisJsonRead> {
  if (handle.copyOut) return kinesisJsonOf(await copyKinesisPage(handle.copyOut, stream, shard, from, limit, maxBytes), from);
  const [row] = await handle.query<{
    records: string | null; n: number; bytes: number | string | null; last_seq: string | null; last_ms: number | null; next_ms: number | null;
  }>(sql`
    select string_agg(concat('{"SequenceNumber":"', ${SEQUENCE_NUMBER_OFFSET.toString()}::numeric + p.seq,
                             '","ApproximateArrivalTimestamp":', trunc(extract(epoch from p.arrived_at), 3),
                             ',"Data":"', replace(encode(p.data, 'base64'), chr(10), ''),
                             '","PartitionKey":', to_json(p.partition_key), '}'), ',') filter (where p.included) as records,
           (count(*) filter (where p.included))::int as n,
           sum(p.size_bytes) filter (where p.included) as bytes,
           (max(p.seq) filter (where p.included))::text as last_seq,
           (extract(epoch from max(p.arrived_at) filter (where p.included)) * 1000)::float8 as last_ms,
           (extract(epoch from min(p.arrived_at) filter (where not p.included)) * 1000)::float8 as next_ms
      from (${pageOf(stream, shard, from, limit, maxBytes)}) p`);
  const count = row?.n ?? 0;
  return {
    recordsJson: row?.records ? [row.records] : [],
    count,
    sizeBytes: Number(row?.bytes ?? 0),
    // Arrival never falls as sequence numbers rise within a shard, so the latest arrival is the last record's.
    next: count === 0 ? from : { after: BigInt(row!.last_seq!), lowMs: Math.floor(row!.last_ms!) },
    nextArrival: row?.next_ms == null ? null : new Date(Math.floor(row.next_ms)),
  };
}

const COPY_FIELDS = 6;

/** A KINESIS page read as binary COPY: its records' fields, each payload a view of the bytes received. */
interface CopiedPage {
  seqs: bigint[];
  arrivalsUs: number[];
  keys: string[];
  datas: Buffer[];
  sizeBytes: number;
  /** Arrival of the first record left unread (epoch µs), when one is. */
  nextUs: number | undefined;
}

async function copyKinesisPage(
  copyOut: NonNullable<DatabaseHandle['copyOut']>, stream: StreamInfo, shard: ShardInfo, from: ShardPosition, limit: number, maxBytes: number,
): Promise<CopiedPage> {
  const chunks = await copyOut(sql`
    select p.seq, p.arrived_at, p.partition_key, case when p.included then p.data end, p.size_bytes, p.included
      from (${pageOf(stream, shard, from, limit, maxBytes)}) p
     order by p.seq`);
  const page: CopiedPage = { seqs: [], arrivalsUs: [], keys: [], datas: [], sizeBytes: 0, nextUs: undefined };
  readBinaryCopy(chunks, COPY_FIELDS, (buffer, at, length) => {
    const arrivedUs = timestamptzUs(buffer, at[1]!);
    if (buffer[at[5]!] !== 1) {
      // Rows not included only say when the next unread record arrived.
      if (page.nextUs === undefined || arrivedUs < page.nextUs) page.nextUs = arrivedUs;
      return;
    }
    page.seqs.push(buffer.readBigInt64BE(at[0]!));
    page.arrivalsUs.push(arrivedUs);
    page.keys.push(buffer.toString('utf8', at[2]!, at[2]! + length[2]!));
    page.datas.push(buffer.subarray(at[3]!, at[3]! + Math.max(0, length[3]!)));
    page.sizeBytes += buffer.readInt32BE(at[4]!);
  });
  return page;
}

/** Where a copied page leaves the reader, and what is left after it. */
function pageEnd(page: CopiedPage, from: ShardPosition): { next: ShardPosition; nextArrival: Date | null } {
  const count = page.seqs.length;
  return {
    next: count === 0 ? from : { after: page.seqs[count - 1]!, lowMs: Math.floor(page.arrivalsUs[count - 1]! / 1000) },
    nextArrival: page.nextUs === undefined ? null : new Date(Math.floor(page.nextUs / 1000)),
  };
}

/** A copied page as the JSON members of GetRecords' `Records`, written into one buffer. */
function kinesisJsonOf(page: CopiedPage, from: ShardPosition): KinesisJsonRead {
  const count = page.seqs.length;
  // First the records' heads and tails (small strings) and the page's size; then one buffer.
  const heads = new Array<string>(count);
  const tails = new Array<string>(count);
  let size = 0;
  for (let i = 0; i < count; i++) {
    heads[i] = `${i === 0 ? '' : ','}{"SequenceNumber":"${formatSequenceNumber(page.seqs[i]!)}","ApproximateArrivalTimestamp":${kinesisTimestamp(page.arrivalsUs[i]!)},"Data":"`;
    tails[i] = `","PartitionKey":${JSON.stringify(page.keys[i]!)}}`;
    size += heads[i]!.length + 4 * Math.ceil(page.datas[i]!.length / 3) + Buffer.byteLength(tails[i]!, 'utf8');
  }
  let json: Buffer | undefined;
  if (count > 0) {
    json = Buffer.allocUnsafe(size);
    let at = 0;
    for (let i = 0; i < count; i++) {
      at += json.write(heads[i]!, at, 'latin1');
      at += json.write(page.datas[i]!.toString('base64'), at, 'latin1');
      at += json.write(tails[i]!, at, 'utf8');
    }
  }
  return { recordsJson: json ? [json] : [], count, sizeBytes: page.sizeBytes, ...pageEnd(page, from) };
}

/** A KINESIS record as GetRecords answers it in CBOR: its payload as bytes. */
export interface KinesisRecordValue {
  sequenceNumber: string;
  arrivalMs: number;
  data: Buffer;
  partitionKey: string;
}

export interface KinesisValuesRead {
  records: KinesisRecordValue[];
  /** Data plus partition key bytes of the records (what read throughput charges). */
  sizeBytes: number;
  next: ShardPosition;
  nextArrival: Date | null;
}

/**
 * The same read as readShard for a KINESIS shard, with each payload as bytes: on Postgres the
 * page comes as binary COPY, so no payload is written as base64 by Postgres and decoded again
 * by Node (a CBOR GetRecords carries the bytes as they are).
 */
export async function readShardKinesisValues(
  handle: DatabaseHandle, stream: StreamInfo, shard: ShardInfo, from: ShardPosition, limit: number, maxBytes: number,
): Promise<KinesisValuesRead> {
  if (handle.copyOut) {
    const page = await copyKinesisPage(handle.copyOut, stream, shard, from, limit, maxBytes);
    return {
      records: page.seqs.map((seq, i) => ({
        sequenceNumber: formatSequenceNumber(seq), arrivalMs: Math.floor(page.arrivalsUs[i]! / 1000), data: page.datas[i]!, partitionKey: page.keys[i]!,
      })),
      sizeBytes: page.sizeBytes,
      ...pageEnd(page, from),
    };
  }
  const read = await readShard(handle, stream, shard, from, limit, maxBytes);
  return {
    records: read.records.map((r) => ({
      sequenceNumber: r.sequenceNumber, arrivalMs: r.approximateArrivalTimestamp.getTime(), data: Buffer.from(r.data, 'base64'), partitionKey: r.partitionKey,
    })),
    sizeBytes: read.records.reduce((sum, r) => sum + r.sizeBytes, 0),
    next: read.next,
    nextArrival: read.nextArrival,
  };
}

/** Epoch seconds with the milliseconds truncated to three decimals, as trunc(extract(epoch …), 3) prints them. */
export function kinesisTimestamp(us: number): string {
  const ms = Math.floor(us / 1000);
  const seconds = Math.floor(ms / 1000);
  return `${seconds}.${String(ms - seconds * 1000).padStart(3, '0')}`;
}

/**
 * What DynamoDB Streams' TrimmedDataAccessException needs to know about a position: the first
 * record after it *ignoring* retention (its dense per-shard ordinal, and whether it has passed
 * retention), and the ordinal of the anchor record (the one at or just before the position)
 * while it is still stored.
 * Ordinals are dense within a shard (1, 2, 3 …), so a gap between the two means records in
 * between have been trimmed away. Both lookups are bounded below by the position's arrival.
 */
export async function positionCheck(
  handle: DatabaseHandle, stream: StreamInfo, shard: ShardInfo, from: ShardPosition, anchorSeq: bigint,
): Promise<{ next: { ordinal: number; expired: boolean } | undefined; anchorOrdinal: number | undefined }> {
  const [row] = await handle.query<{ next_ordinal: string | number | null; next_expired: boolean | null; at_ordinal: string | number | null }>(sql`
    select n.ordinal as next_ordinal, n.expired as next_expired,
           (select r.ordinal from records r
             where r.shard_key = ${shard.key} and r.seq = ${anchorSeq.toString()}::bigint
               and r.arrived_at >= to_timestamp(${from.lowMs}::float8 / 1000) limit 1) as at_ordinal
      from (select 1) as one
      left join lateral (
        select r.ordinal, r.arrived_at < now() - make_interval(hours => ${stream.retentionHours}::int) as expired
          from records r
         where r.shard_key = ${shard.key} and r.seq > ${from.after.toString()}::bigint
           and r.arrived_at >= to_timestamp(${from.lowMs}::float8 / 1000)
         order by r.seq limit 1
      ) n on true`);
  return {
    next: row?.next_ordinal == null ? undefined : { ordinal: Number(row.next_ordinal), expired: row.next_expired === true },
    anchorOrdinal: row?.at_ordinal == null ? undefined : Number(row.at_ordinal),
  };
}

/** The newest record stored in a shard (whatever its age): its sequence value and dense ordinal. */
export async function newestRecord(handle: DatabaseHandle, shard: ShardInfo): Promise<{ seq: bigint; ordinal: number } | undefined> {
  const [row] = await handle.query<{ seq: string; ordinal: string | number }>(sql`
    select seq::text as seq, ordinal from records where shard_key = ${shard.key} order by seq desc limit 1`);
  return row ? { seq: BigInt(row.seq), ordinal: Number(row.ordinal) } : undefined;
}
