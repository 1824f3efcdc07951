/**
 * Streams and their shards: create, look up, list, delete, retention. Resharding lives in
 * resharding.ts; both lock the stream row so that shard changes of one stream are serial.
 */
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument, limitExceeded, streamNotFound } from '../errors.ts';
import { shards, streams } from '../schema.ts';
import { evenRanges } from './hashKeys.ts';
import {
  MAX_DYNAMODB_PARTITIONS,
  MAX_SHARDS_PER_STREAM,
  STREAM_NAME,
  type ShardInfo,
  type StreamInfo,
  type StreamKind,
  type ViewType,
  shardIdOf,
} from './model.ts';
import { formatSequenceNumber } from './sequenceNumbers.ts';

export interface ArnContext { region: string; accountId: string }

export interface CreateStreamInput {
  name: string;
  kind?: StreamKind | null;
  shardCount: number;
  retentionHours?: number | null;
  viewType?: ViewType | null;
  /** AWS's per-shard throughput limits (KINESIS only). (Default: false) */
  enforceThroughput?: boolean | null;
}

export const KINESIS_RETENTION = { min: 24, max: 8760, default: 24 };
export const DYNAMODB_RETENTION_HOURS = 24;

type StreamRow = typeof streams.$inferSelect;
type ShardRow = typeof shards.$inferSelect;

/** DYNAMODB stream label: creation time, ISO-8601 with milliseconds and no zone. */
const streamLabel = (createdAt: Date) => createdAt.toISOString().replace(/Z$/, '');

export function toStreamInfo(row: StreamRow, ctx: ArnContext): StreamInfo {
  const arn =
    row.kind === 'KINESIS'
      ? `arn:aws:kinesis:${ctx.region}:${ctx.accountId}:stream/${row.name}`
      : `arn:aws:dynamodb:${ctx.region}:${ctx.accountId}:table/${row.name}/stream/${streamLabel(row.createdAt)}`;
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    status: row.status,
    retentionHours: row.retentionHours,
    viewType: row.viewType,
    createdAt: row.createdAt,
    arn,
    enforceThroughput: row.enforceThroughput,
  };
}

export function toShardInfo(row: ShardRow): ShardInfo {
  return {
    key: row.key,
    shardIndex: row.shardIndex,
    shardId: shardIdOf(row.shardIndex),
    parentShardId: row.parentIndex === null ? null : shardIdOf(row.parentIndex),
    adjacentParentShardId: row.adjacentParentIndex === null ? null : shardIdOf(row.adjacentParentIndex),
    hashKeyRange: { startingHashKey: row.hashStart, endingHashKey: row.hashEnd },
    startingSequenceNumber: formatSequenceNumber(row.startingSeq),
    endingSequenceNumber: row.endingSeq === null ? null : formatSequenceNumber(row.endingSeq),
    createdAt: row.createdAt,
    closedAt: row.closedAt,
    partition: row.partition,
  };
}

export function validateStreamName(name: string, field = 'name'): void {
  if (!STREAM_NAME.test(name)) {
    throw invalidArgument(`${field} must be 1–128 characters of [a-zA-Z0-9_.-], got "${name.slice(0, 140)}".`);
  }
}

export class StreamCatalog {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly arns: ArnContext,
  ) {}

  async create(input: CreateStreamInput): Promise<StreamInfo> {
    const kind = input.kind ?? 'KINESIS';
    validateStreamName(input.name);
    const maxShards = kind === 'KINESIS' ? MAX_SHARDS_PER_STREAM : MAX_DYNAMODB_PARTITIONS;
    if (!Number.isInteger(input.shardCount) || input.shardCount < 1 || input.shardCount > maxShards) {
      throw (input.shardCount > maxShards ? limitExceeded : invalidArgument)(
        `shardCount must be between 1 and ${maxShards} for a ${kind} stream, got ${input.shardCount}.`,
      );
    }
    let retentionHours: number;
    if (kind === 'KINESIS') {
      retentionHours = input.retentionHours ?? KINESIS_RETENTION.default;
      checkKinesisRetention(retentionHours);
      if (input.viewType != null) throw invalidArgument('viewType applies to DYNAMODB streams only; leave it out for KINESIS.');
    } else {
      retentionHours = DYNAMODB_RETENTION_HOURS;
      if (input.retentionHours != null && input.retentionHours !== DYNAMODB_RETENTION_HOURS) {
        throw invalidArgument(`retentionHours of a DYNAMODB stream is fixed at 24, got ${input.retentionHours}.`);
      }
    }
    const viewType = kind === 'DYNAMODB' ? (input.viewType ?? 'NEW_AND_OLD_IMAGES') : null;
    const enforceThroughput = input.enforceThroughput ?? false;
    if (enforceThroughput) checkThroughputKind(kind);
    const row = await this.handle.transaction(async (tx) => {
      const [existing] = await tx.select({ id: streams.id }).from(streams)
        .where(and(eq(streams.name, input.name), isNull(streams.deletedAt)));
      if (existing) throw new ShardlineError('STREAM_EXISTS', `Stream "${input.name}" already exists.`);
      const [created] = await tx.insert(streams).values({
        name: input.name,
        kind,
        status: 'ACTIVE',
        retentionHours,
        viewType,
        enforceThroughput,
        nextShardIndex: input.shardCount,
      }).returning();
      const ranges = evenRanges(input.shardCount);
      const seqs = await nextSequenceValues(this.handle, tx, input.shardCount);
      await tx.insert(shards).values(ranges.map((range, i) => ({
        streamId: created!.id,
        shardIndex: i,
        hashStart: range.start.toString(),
        hashEnd: range.end.toString(),
        partition: kind === 'DYNAMODB' ? i : null,
        startingSeq: seqs[i]!,
      })));
      return created!;
    }).catch((raw) => {
      // Two concurrent creates of one name: the unique index decides, the loser hears STREAM_EXISTS.
      if (isUniqueViolation(raw)) throw new ShardlineError('STREAM_EXISTS', `Stream "${input.name}" already exists.`);
      throw raw;
    });
    return toStreamInfo(row, this.arns);
  }

  async find(name: string, executor: Database = this.handle.db): Promise<StreamInfo | undefined> {
    // Postgres text cannot hold NUL, so no stream has such a name (and the query would fail).
    if (name.includes('\u0000')) return undefined;
    const [row] = await executor.select().from(streams).where(and(eq(streams.name, name), isNull(streams.deletedAt)));
    return row ? toStreamInfo(row, this.arns) : undefined;
  }

  async findById(id: number, executor: Database = this.handle.db): Promise<StreamInfo | undefined> {
    const [row] = await executor.select().from(streams).where(and(eq(streams.id, id), isNull(streams.deletedAt)));
    return row ? toStreamInfo(row, this.arns) : undefined;
  }

  async get(name: string, executor?: Database): Promise<StreamInfo> {
    const stream = await this.find(name, executor);
    if (!stream) throw streamNotFound(name);
    return stream;
  }

  /** Locks the stream row for the rest of the transaction (shard changes are serial per stream). */
  async lock(tx: Database, name: string): Promise<StreamInfo> {
    const rows = await this.handle.query<{ id: string | number }>(
      sql`select id from streams where name = ${name} and deleted_at is null for update`, tx);
    if (rows.length === 0) throw streamNotFound(name);
    return this.get(name, tx);
  }

  async list(): Promise<StreamInfo[]> {
    const rows = await this.handle.db.select().from(streams).where(isNull(streams.deletedAt)).orderBy(asc(streams.name));
    return rows.map((row) => toStreamInfo(row, this.arns));
  }

  /**
   * Shards of a stream in shard-id order. Closed shards stay listed until their data has aged
   * past retention (as in AWS), then they are dropped from listings.
   */
  async shards(stream: StreamInfo, filter: 'OPEN' | 'CLOSED' | 'ALL' = 'ALL', executor: Database = this.handle.db): Promise<ShardInfo[]> {
    const rows = await executor.select().from(shards).where(and(
      eq(shards.streamId, stream.id),
      filter === 'OPEN' ? isNull(shards.closedAt) : undefined,
      filter === 'CLOSED' ? sql`${shards.closedAt} is not null` : undefined,
      sql`(${shards.closedAt} is null or ${shards.closedAt} > now() - make_interval(hours => ${stream.retentionHours}))`,
    )).orderBy(asc(shards.shardIndex));
    return rows.map(toShardInfo);
  }

  readonly #routing = new Map<string, { stream: StreamInfo; open: ShardInfo[]; at: number }>();
  /** Bumped by every invalidation: a routing read in flight across one is not remembered. */
  #routingVersion = 0;

  #forgetRouting(name: string): void {
    this.#routing.delete(name);
    this.#routingVersion++;
  }

  /**
   * A stream and its open shards, remembered for a second: the write path routes every call with
   * them. Safe to be stale: a write locks its target shard and checks it is still open and its
   * stream not deleted, and on a miss routes again with `fresh`.
   */
  async routing(name: string, fresh = false): Promise<{ stream: StreamInfo; open: ShardInfo[] }> {
    const hit = this.#routing.get(name);
    if (!fresh && hit && Date.now() - hit.at < 1000) return hit;
    const version = this.#routingVersion;
    const stream = await this.get(name);
    const open = await this.shards(stream, 'OPEN');
    const entry = { stream, open, at: Date.now() };
    // A read that a change overtook (invalidated meanwhile) is used once, not remembered.
    if (version === this.#routingVersion) this.#routing.set(name, entry);
    return entry;
  }

  /**
   * Marks a stream deleted. `refuse` runs first with the stream's row locked (creating a mapping
   * locks it too), so what it checks cannot change before the delete commits.
   */
  async delete(name: string, refuse?: (tx: Database, stream: StreamInfo) => Promise<void>): Promise<boolean> {
    this.#forgetRouting(name);
    return this.handle.transaction(async (tx) => {
      const stream = await this.lock(tx, name);
      await refuse?.(tx, stream);
      const result = await this.handle.query<{ id: number }>(sql`
        update streams set deleted_at = now(), status = 'DELETING'
        where id = ${stream.id} and deleted_at is null returning id`, tx);
      if (result.length === 0) throw streamNotFound(name);
      return true;
    });
  }

  async updateRetention(name: string, retentionHours: number): Promise<StreamInfo> {
    const stream = await this.get(name);
    if (stream.kind === 'DYNAMODB') {
      if (retentionHours !== DYNAMODB_RETENTION_HOURS) {
        throw invalidArgument(`retentionHours of a DYNAMODB stream is fixed at 24, got ${retentionHours}.`);
      }
      return stream;
    }
    checkKinesisRetention(retentionHours);
    const row = await this.handle.transaction(async (tx) => {
      const locked = await this.lock(tx, name);
      if (retentionHours > locked.retentionHours) {
        // Records that expired under the shorter retention stay gone (as in AWS): readers only
        // filter by arrival, so delete the ones the trimmer has not removed yet before widening.
        await this.handle.query(sql`
          delete from records
           where shard_key in (select key from shards where stream_id = ${locked.id})
             and arrived_at < now() - make_interval(hours => ${locked.retentionHours}::int)`, tx);
      }
      const [updated] = await tx.update(streams).set({ retentionHours }).where(eq(streams.id, locked.id)).returning();
      return updated!;
    });
    return toStreamInfo(row, this.arns);
  }

  /** Turns AWS's per-shard throughput limits on or off; this process's routing sees it at once, others within a second. */
  async updateThroughput(name: string, enforceThroughput: boolean): Promise<StreamInfo> {
    const stream = await this.get(name);
    if (enforceThroughput) checkThroughputKind(stream.kind);
    const [row] = await this.handle.db.update(streams).set({ enforceThroughput })
      .where(and(eq(streams.id, stream.id), isNull(streams.deletedAt))).returning();
    if (!row) throw streamNotFound(name);
    this.#forgetRouting(name);
    return toStreamInfo(row, this.arns);
  }
}

function checkThroughputKind(kind: StreamKind): void {
  // DYNAMODB streams are written by item changes and read by DynamoDB Streams, which have no such limits.
  if (kind !== 'KINESIS') throw invalidArgument('enforceThroughput applies to KINESIS streams only.');
}

function checkKinesisRetention(hours: number): void {
  if (!Number.isInteger(hours) || hours < KINESIS_RETENTION.min || hours > KINESIS_RETENTION.max) {
    throw invalidArgument(
      `retentionHours must be between ${KINESIS_RETENTION.min} and ${KINESIS_RETENTION.max}, got ${hours}.`,
    );
  }
}

export function isUniqueViolation(raw: unknown): boolean {
  const e = raw as { code?: string; cause?: { code?: string } };
  return e?.code === '23505' || e?.cause?.code === '23505';
}

/** n fresh values of record_seq, ascending. */
export async function nextSequenceValues(handle: DatabaseHandle, tx: Database, n: number): Promise<bigint[]> {
  const rows = await handle.query<{ v: string }>(
    sql`select nextval('record_seq')::text as v from generate_series(1, ${n}::int)`, tx);
  return rows.map((r) => BigInt(r.v)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
