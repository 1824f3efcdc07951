/**
 * Reading records: ranges of (shard, sequence) from a position, a page at a time.
 *
 * A read position is kept per shard ({after: last sequence returned, low: arrival lower
 * bound}), never as one stream-wide number: records of one shard become visible in sequence
 * order (appendRecords holds the shard lock to commit), but across shards a lower number can
 * commit after a higher one, so a single number would skip it. The arrival lower bound lets
 * Postgres prune whole partitions (arrival is monotonic with sequence within a shard).
 *
 * Each shard is read by an index range scan limited to the page size (a LATERAL per shard),
 * and the pages are merged by sequence number, so the cost of a page does not grow with the
 * size of the table.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { MAX_PAGE_SIZE, pageSize } from '../pageSize.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { formatSequenceNumber, parseSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';

export type PositionType = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP' | 'AT_SEQUENCE_NUMBER' | 'AFTER_SEQUENCE_NUMBER';
export interface Position { type: PositionType; sequenceNumber?: string | null; timestamp?: Date | null }

export interface StoredRecord {
  eventID: string;
  shardId: string;
  shardKey: number;
  sequenceNumber: string;
  partitionKey: string;
  /** Base64 of the bytes for KINESIS; the JSON of the `dynamodb` object for DYNAMODB. */
  data: string;
  approximateArrivalTimestamp: Date;
  sizeBytes: number;
  eventName: string | null;
  keys: unknown;
  newImage: unknown;
  oldImage: unknown;
  /** Imported records: the original event's identifiers and times. */
  origin: unknown;
}

interface ShardPosition { after: bigint; lowMs: number }
/** Per-shard read positions, keyed by shard index. */
export type Positions = Map<number, ShardPosition>;

export const PAGE_LIMITS = { default: 100, max: MAX_PAGE_SIZE };
const MAX_SEQ = (1n << 63n) - 1n;
/** Years 1 to 9999: inside Postgres' timestamp range. */
const MIN_TIMESTAMP_MS = -62_135_596_800_000;
const MAX_TIMESTAMP_MS = 253_402_300_799_999;

export interface RecordPage {
  records: { cursor: string; record: StoredRecord }[];
  hasNextPage: boolean;
  endCursor: string;
}

export function encodeCursor(positions: Positions): string {
  const p = [...positions].map(([index, pos]) => [index, pos.after.toString(), pos.lowMs]);
  return Buffer.from(JSON.stringify({ v: 1, p })).toString('base64url');
}

export function decodeCursor(cursor: string, field = 'after'): Positions {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v: number; p: [number, string, number][] };
    if (parsed.v !== 1 || !Array.isArray(parsed.p)) throw new Error('version');
    return new Map(parsed.p.map(([index, after, lowMs]) => {
      if (!Number.isInteger(index) || typeof after !== 'string' || !/^-?\d+$/.test(after) || typeof lowMs !== 'number') throw new Error('shape');
      // In range of what the query binds (bigint sequence, a timestamp), so a forged cursor is no database error.
      const seq = BigInt(after);
      if (seq < -1n || seq > MAX_SEQ || !(lowMs >= MIN_TIMESTAMP_MS && lowMs <= MAX_TIMESTAMP_MS)) throw new Error('range');
      return [index, { after: seq, lowMs }];
    }));
  } catch {
    throw invalidArgument(`${field} is not a cursor returned by this API.`);
  }
}

export class RecordReader {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly catalog: StreamCatalog,
  ) {}

  /** Shards in scope: one (by id) or all the stream lists. */
  async scope(stream: StreamInfo, shardId?: string | null): Promise<ShardInfo[]> {
    const all = await this.catalog.shards(stream, 'ALL');
    if (shardId == null) return all;
    const shard = all.find((s) => s.shardId === shardId);
    if (!shard) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${shardId} does not exist in stream ${stream.name}.`);
    return [shard];
  }

  /** Resolves a position into per-shard read positions. */
  async resolve(shards: ShardInfo[], position: Position | null | undefined): Promise<Positions> {
    const type = position?.type ?? 'TRIM_HORIZON';
    const positions: Positions = new Map();
    if (type === 'TRIM_HORIZON') {
      for (const s of shards) positions.set(s.shardIndex, { after: -1n, lowMs: 0 });
    } else if (type === 'AT_SEQUENCE_NUMBER' || type === 'AFTER_SEQUENCE_NUMBER') {
      if (!position?.sequenceNumber) throw invalidArgument(`from.sequenceNumber is required for ${type}.`);
      const seq = parseSequenceNumber(position.sequenceNumber, 'from.sequenceNumber');
      const after = type === 'AT_SEQUENCE_NUMBER' ? seq - 1n : seq;
      for (const s of shards) positions.set(s.shardIndex, { after, lowMs: 0 });
    } else if (type === 'LATEST') {
      const latest = await this.latestSeqs(shards);
      for (const s of shards) positions.set(s.shardIndex, { after: latest.get(s.key) ?? -1n, lowMs: 0 });
    } else if (type === 'AT_TIMESTAMP') {
      if (!position?.timestamp) throw invalidArgument('from.timestamp is required for AT_TIMESTAMP.');
      const ms = position.timestamp.getTime();
      if (!(ms >= MIN_TIMESTAMP_MS && ms <= MAX_TIMESTAMP_MS)) throw invalidArgument('from.timestamp must be a date between the years 1 and 9999.');
      const rows = await this.handle.query<{ k: unknown; first: string | null; latest: string | null }>(sql`
        select c.k,
               (select r.seq::text from records r where r.shard_key = c.k and r.arrived_at >= to_timestamp(${ms}::float8 / 1000)
                 order by r.arrived_at, r.seq limit 1) as first,
               (select r.seq::text from records r where r.shard_key = c.k order by r.seq desc limit 1) as latest
          from unnest(${sql.param(shards.map((s) => s.key))}::bigint[]) as c(k)`);
      const byKey = new Map(rows.map((r) => [Number(r.k), r]));
      for (const s of shards) {
        const row = byKey.get(s.key);
        const after = row?.first != null ? BigInt(row.first) - 1n : row?.latest != null ? BigInt(row.latest) : -1n;
        positions.set(s.shardIndex, { after, lowMs: ms });
      }
    } else {
      throw invalidArgument(`from.type must be one of TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER.`);
    }
    return positions;
  }

  /** The newest committed sequence number of each shard (by shard key). */
  async latestSeqs(shards: ShardInfo[]): Promise<Map<number, bigint>> {
    const rows = await this.handle.query<{ k: unknown; latest: string | null }>(sql`
      select c.k, (select r.seq::text from records r where r.shard_key = c.k order by r.seq desc limit 1) as latest
        from unnest(${sql.param(shards.map((s) => s.key))}::bigint[]) as c(k)`);
    return new Map(rows.filter((r) => r.latest !== null).map((r) => [Number(r.k), BigInt(r.latest!)]));
  }

  /**
   * Reads up to `limit` records after the given positions, merged by sequence number.
   * Shards missing from the positions are read from their beginning (they were created later).
   * Updates `positions` in place and returns each record with the cursor just after it.
   */
  async readAfter(stream: StreamInfo, shards: ShardInfo[], positions: Positions, limit: number): Promise<RecordPage> {
    for (const s of shards) if (!positions.has(s.shardIndex)) positions.set(s.shardIndex, { after: -1n, lowMs: 0 });
    const inScope = shards.filter((s) => positions.has(s.shardIndex));
    const byKey = new Map(inScope.map((s) => [s.key, s]));
    const dataExpr = stream.kind === 'KINESIS'
      ? sql`encode(r.data, 'base64')`
      : sql`convert_from(r.data, 'UTF8')`;
    const rows = await this.handle.query<{
      shard_key: unknown; seq: string; arrived_ms: number; partition_key: string; data: string;
      size_bytes: number; event_name: string | null; event_id: string | null; origin: string | null;
    }>(sql`
      select r.shard_key, r.seq::text as seq, (extract(epoch from r.arrived_at) * 1000)::float8 as arrived_ms,
             r.partition_key, ${dataExpr} as data, r.size_bytes, r.event_name, r.event_id, r.origin::text as origin
        from unnest(
          ${sql.param(inScope.map((s) => s.key))}::bigint[],
          ${sql.param(inScope.map((s) => positions.get(s.shardIndex)!.after.toString()))}::bigint[],
          ${sql.param(inScope.map((s) => positions.get(s.shardIndex)!.lowMs))}::float8[]
        ) as c(k, a, l)
        cross join lateral (
          select * from records r
           where r.shard_key = c.k and r.seq > c.a
             and r.arrived_at >= greatest(to_timestamp(c.l / 1000), now() - make_interval(hours => ${stream.retentionHours}::int))
           order by r.seq
           limit ${limit + 1}::int
        ) r
       order by r.seq
       limit ${limit + 1}::int`);
    const hasNextPage = rows.length > limit;
    const records: RecordPage['records'] = [];
    for (const row of rows.slice(0, limit)) {
      const shard = byKey.get(Number(row.shard_key))!;
      const record = toStoredRecord(stream, shard, row);
      positions.set(shard.shardIndex, { after: BigInt(row.seq), lowMs: Math.floor(row.arrived_ms) });
      records.push({ cursor: encodeCursor(positions), record });
    }
    return { records, hasNextPage, endCursor: encodeCursor(positions) };
  }

  /** One page of Stream.records. */
  async page(streamName: string, args: { shardId?: string | null; from?: Position | null; first?: number | null; after?: string | null }): Promise<RecordPage> {
    const first = pageSize(args.first ?? PAGE_LIMITS.default, PAGE_LIMITS.max);
    const stream = await this.catalog.get(streamName);
    const shards = await this.scope(stream, args.shardId);
    const positions = args.after != null ? restrict(decodeCursor(args.after), shards) : await this.resolve(shards, args.from);
    return this.readAfter(stream, shards, positions, first);
  }
}

/** A cursor from a stream-wide read may be used for a one-shard read: keep that shard only. */
function restrict(positions: Positions, shards: ShardInfo[]): Positions {
  const indexes = new Set(shards.map((s) => s.shardIndex));
  return new Map([...positions].filter(([index]) => indexes.has(index)));
}

export function toStoredRecord(
  stream: StreamInfo,
  shard: ShardInfo,
  row: { seq: string; arrived_ms: number; partition_key: string; data: string; size_bytes: number; event_name: string | null; event_id: string | null; origin: string | null },
): StoredRecord {
  const sequenceNumber = formatSequenceNumber(row.seq);
  const arrival = new Date(Math.floor(row.arrived_ms));
  // Postgres's base64 breaks lines every 76 characters; removing them here is several times
  // cheaper than translate() in SQL.
  let data = stream.kind === 'KINESIS' ? row.data.replaceAll('\n', '') : row.data;
  let keys: unknown = null;
  let newImage: unknown = null;
  let oldImage: unknown = null;
  if (stream.kind === 'DYNAMODB') {
    const stored = JSON.parse(row.data) as { Keys: unknown; NewImage?: unknown; OldImage?: unknown };
    keys = stored.Keys;
    newImage = stored.NewImage ?? null;
    oldImage = stored.OldImage ?? null;
    data = JSON.stringify(dynamodbObject(stream, stored, sequenceNumber, arrival, row.size_bytes));
  }
  return {
    eventID: row.event_id ?? `${shard.shardId}:${sequenceNumber}`,
    shardId: shard.shardId,
    shardKey: shard.key,
    sequenceNumber,
    partitionKey: row.partition_key,
    data,
    approximateArrivalTimestamp: arrival,
    sizeBytes: row.size_bytes,
    eventName: row.event_name,
    keys,
    newImage,
    oldImage,
    origin: row.origin === null ? null : JSON.parse(row.origin),
  };
}

/** The `dynamodb` object of a DynamoDB stream record, in AWS's field order. */
export function dynamodbObject(
  stream: StreamInfo,
  stored: { Keys: unknown; NewImage?: unknown; OldImage?: unknown },
  sequenceNumber: string,
  arrival: Date,
  sizeBytes: number,
): Record<string, unknown> {
  return {
    ApproximateCreationDateTime: Math.floor(arrival.getTime() / 1000),
    Keys: stored.Keys,
    ...(stored.NewImage !== undefined ? { NewImage: stored.NewImage } : {}),
    ...(stored.OldImage !== undefined ? { OldImage: stored.OldImage } : {}),
    SequenceNumber: sequenceNumber,
    SizeBytes: sizeBytes,
    StreamViewType: stream.viewType,
  };
}
