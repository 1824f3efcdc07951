/**
 * Resharding of KINESIS streams: splitShard, mergeShards and updateShardCount (uniform
 * scaling). Each runs in one transaction holding the stream row lock and the parent shard row
 * locks, so a concurrent putRecords either commits into the parent before it closes or routes
 * to the children after: nothing already stored moves and no record lands in a closed shard.
 *
 * A closing parent's endingSequenceNumber is taken from record_seq under its row lock, so it is
 * above every record the parent holds. updateShardCount is a series of splits and merges, as
 * AWS does it: intermediate shards open and close inside the transaction and are left empty.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument, limitExceeded } from '../errors.ts';
import { scalings, shards, streams } from '../schema.ts';
import { evenRanges, parseHashKey } from './hashKeys.ts';
import { MAX_SHARDS_PER_STREAM, type StreamInfo, shardIndexOf } from './model.ts';
import { type StreamCatalog, nextSequenceValues } from './streamCatalog.ts';
import { refuseCaptureTarget } from '../capture/captureSources.ts';

type ShardRow = typeof shards.$inferSelect;

const MAX_SCALINGS_PER_DAY = 10;

export class Resharding {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly catalog: StreamCatalog,
    private readonly onShardsChanged: (stream: StreamInfo) => void,
  ) {}

  async splitShard(streamName: string, shardId: string, newStartingHashKey: string): Promise<StreamInfo> {
    const key = parseHashKey(newStartingHashKey);
    if (key === undefined) {
      throw invalidArgument(`newStartingHashKey must be a decimal integer in [0, 2^128-1], got "${newStartingHashKey}".`);
    }
    return this.#reshard(streamName, async (tx, stream) => {
      const parent = await this.#lockOpenShard(tx, stream, shardId);
      const start = BigInt(parent.hashStart);
      const end = BigInt(parent.hashEnd);
      if (!(key > start + 1n && key < end)) {
        throw invalidArgument(
          `newStartingHashKey ${newStartingHashKey} used in splitShard() on shard ${shardId} in stream ${stream.name} ` +
            `is not both greater than one plus the shard's StartingHashKey ${parent.hashStart} and less than the shard's EndingHashKey ${parent.hashEnd}.`,
        );
      }
      await this.#checkShardLimit(tx, stream, 1);
      await this.#split(tx, stream, parent, key);
    });
  }

  async mergeShards(streamName: string, shardId: string, adjacentShardId: string): Promise<StreamInfo> {
    return this.#reshard(streamName, async (tx, stream) => {
      if (shardId === adjacentShardId) {
        throw invalidArgument(`shardId and adjacentShardId must name two different shards, both are ${shardId}.`);
      }
      const first = await this.#lockOpenShard(tx, stream, shardId);
      const second = await this.#lockOpenShard(tx, stream, adjacentShardId);
      const adjacent =
        BigInt(first.hashEnd) + 1n === BigInt(second.hashStart) || BigInt(second.hashEnd) + 1n === BigInt(first.hashStart);
      if (!adjacent) {
        throw invalidArgument(
          `Shards ${shardId} and ${adjacentShardId} in stream ${stream.name} are not an adjacent pair of shards eligible for merging.`,
        );
      }
      await this.#merge(tx, stream, first, second);
    });
  }

  async updateShardCount(streamName: string, targetShardCount: number): Promise<StreamInfo> {
    if (!Number.isInteger(targetShardCount) || targetShardCount < 1 || targetShardCount > MAX_SHARDS_PER_STREAM) {
      throw invalidArgument(`targetShardCount must be between 1 and ${MAX_SHARDS_PER_STREAM}, got ${targetShardCount}.`);
    }
    return this.#reshard(streamName, async (tx, stream) => {
      const open = await this.#lockOpenShards(tx, stream);
      const current = open.length;
      if (targetShardCount > current * 2) {
        throw limitExceeded(`targetShardCount must be at most double the current shard count (${current}), so at most ${current * 2}; got ${targetShardCount}.`);
      }
      if (targetShardCount * 2 < current) {
        throw limitExceeded(`targetShardCount must be at least half the current shard count (${current}), so at least ${Math.ceil(current / 2)}; got ${targetShardCount}.`);
      }
      const [{ count }] = (await this.handle.query<{ count: number }>(sql`
        select count(*)::int as count from scalings
        where stream_id = ${stream.id} and at > now() - interval '24 hours'`, tx)) as [{ count: number }];
      if (count >= MAX_SCALINGS_PER_DAY) {
        throw limitExceeded(`updateShardCount may run at most ${MAX_SCALINGS_PER_DAY} times per rolling 24 hours for stream ${stream.name}.`);
      }
      await tx.insert(scalings).values({ streamId: stream.id });
      const targets = evenRanges(targetShardCount);
      const boundaries = new Set(targets.slice(1).map((t) => t.start));
      // 1. Split every open shard at each target boundary strictly inside it.
      let pieces: ShardRow[] = [];
      for (const shard of open) {
        let rest = shard;
        const inside = [...boundaries]
          .filter((b) => b > BigInt(rest.hashStart) && b <= BigInt(rest.hashEnd))
          .sort((a, b) => (a < b ? -1 : 1));
        for (const boundary of inside) {
          const [low, high] = await this.#split(tx, stream, rest, boundary);
          pieces.push(low);
          rest = high;
        }
        pieces.push(rest);
      }
      pieces = pieces.sort((a, b) => (BigInt(a.hashStart) < BigInt(b.hashStart) ? -1 : 1));
      // 2. Merge the pieces inside each target range, left to right.
      for (const target of targets) {
        const inRange = pieces.filter((p) => BigInt(p.hashStart) >= target.start && BigInt(p.hashEnd) <= target.end);
        let merged = inRange[0]!;
        for (const next of inRange.slice(1)) merged = await this.#merge(tx, stream, merged, next);
      }
    });
  }

  async #reshard(streamName: string, change: (tx: Database, stream: StreamInfo) => Promise<void>): Promise<StreamInfo> {
    const stream = await this.handle.transaction(async (tx) => {
      const locked = await this.catalog.lock(tx, streamName);
      if (locked.kind !== 'KINESIS') {
        throw invalidArgument(`Resharding applies to KINESIS streams; ${streamName} is a DYNAMODB stream, whose shards roll over by themselves.`);
      }
      await refuseCaptureTarget(this.handle, tx, locked, 'resharding');
      await change(tx, locked);
      return locked;
    });
    this.onShardsChanged(stream);
    return stream;
  }

  async #lockOpenShards(tx: Database, stream: StreamInfo): Promise<ShardRow[]> {
    return tx.select().from(shards).where(and(eq(shards.streamId, stream.id), isNull(shards.closedAt)))
      .orderBy(shards.key).for('update');
  }

  async #lockOpenShard(tx: Database, stream: StreamInfo, shardId: string): Promise<ShardRow> {
    const index = shardIndexOf(shardId);
    const [row] = index === undefined ? [] : await tx.select().from(shards)
      .where(and(eq(shards.streamId, stream.id), eq(shards.shardIndex, index))).for('update');
    if (!row) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${shardId} does not exist in stream ${stream.name}.`);
    if (row.closedAt !== null) {
      throw new ShardlineError('SHARD_CLOSED',
        `Shard ${shardId} in stream ${stream.name} has already been merged or split, and thus is not eligible for merging or splitting.`);
    }
    return row;
  }

  async #checkShardLimit(tx: Database, stream: StreamInfo, added: number): Promise<void> {
    const [{ count }] = (await this.handle.query<{ count: number }>(sql`
      select count(*)::int as count from shards where stream_id = ${stream.id} and closed_at is null`, tx)) as [{ count: number }];
    if (count + added > MAX_SHARDS_PER_STREAM) {
      throw limitExceeded(`A stream may have at most ${MAX_SHARDS_PER_STREAM} open shards; this request would make ${count + added}.`);
    }
  }

  /** Takes n shard indexes from the stream's counter. */
  async #allocateIndexes(tx: Database, stream: StreamInfo, n: number): Promise<number> {
    const [row] = await tx.update(streams).set({ nextShardIndex: sql`${streams.nextShardIndex} + ${n}` })
      .where(eq(streams.id, stream.id)).returning({ next: streams.nextShardIndex });
    return row!.next - n;
  }

  async #close(tx: Database, parents: ShardRow[]): Promise<void> {
    const [ending] = await nextSequenceValues(this.handle, tx, 1);
    for (const parent of parents) {
      await tx.update(shards).set({ endingSeq: ending!, closedAt: sql`now()` }).where(eq(shards.key, parent.key));
    }
  }

  async #split(tx: Database, stream: StreamInfo, parent: ShardRow, key: bigint): Promise<[ShardRow, ShardRow]> {
    await this.#close(tx, [parent]);
    const first = await this.#allocateIndexes(tx, stream, 2);
    const seqs = await nextSequenceValues(this.handle, tx, 2);
    const children = await tx.insert(shards).values([
      { start: BigInt(parent.hashStart), end: key - 1n },
      { start: key, end: BigInt(parent.hashEnd) },
    ].map((range, i) => ({
      streamId: stream.id,
      shardIndex: first + i,
      parentIndex: parent.shardIndex,
      hashStart: range.start.toString(),
      hashEnd: range.end.toString(),
      startingSeq: seqs[i]!,
      lastArrival: parent.lastArrival,
    }))).returning();
    return [children[0]!, children[1]!];
  }

  async #merge(tx: Database, stream: StreamInfo, shard: ShardRow, adjacent: ShardRow): Promise<ShardRow> {
    await this.#close(tx, [shard, adjacent]);
    const index = await this.#allocateIndexes(tx, stream, 1);
    const [seq] = await nextSequenceValues(this.handle, tx, 1);
    const low = BigInt(shard.hashStart) < BigInt(adjacent.hashStart) ? shard : adjacent;
    const high = low === shard ? adjacent : shard;
    const lastArrival = [shard.lastArrival, adjacent.lastArrival].filter((d): d is Date => d !== null)
      .sort((a, b) => b.getTime() - a.getTime())[0] ?? null;
    const [child] = await tx.insert(shards).values({
      streamId: stream.id,
      shardIndex: index,
      parentIndex: shard.shardIndex,
      adjacentParentIndex: adjacent.shardIndex,
      hashStart: low.hashStart,
      hashEnd: high.hashEnd,
      startingSeq: seq!,
      lastArrival,
    }).returning();
    return child!;
  }
}

