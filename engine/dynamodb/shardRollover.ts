/**
 * DYNAMODB shard rollover: like AWS (about every 4 hours, even without load), an open shard
 * closes and one child with the same partition and hash range opens, parentShardId = the old
 * shard. Done under the stream and shard row locks, so a concurrent writeItems commits into
 * the parent before it closes or into the child after.
 */
import { and, eq, isNull, lt, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { shards, streams } from '../schema.ts';
import { type StreamInfo, shardIndexOf } from '../streams/model.ts';
import { type StreamCatalog, nextSequenceValues } from '../streams/streamCatalog.ts';
import { refuseCaptureTarget } from '../capture/captureSources.ts';

type ShardRow = typeof shards.$inferSelect;

export class ShardRollover {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly catalog: StreamCatalog,
    private readonly onShardsChanged: (stream: StreamInfo) => void,
  ) {}

  /** Rolls over the open shards of a DYNAMODB stream (all, or the one named) now. */
  async rollover(streamName: string, shardId?: string | null): Promise<StreamInfo> {
    const stream = await this.handle.transaction(async (tx) => {
      const locked = await this.catalog.lock(tx, streamName);
      if (locked.kind !== 'DYNAMODB') {
        throw invalidArgument(`Shard rollover applies to DYNAMODB streams; ${streamName} is a KINESIS stream (use splitShard or updateShardCount).`);
      }
      await refuseCaptureTarget(this.handle, tx, locked, 'a shard rollover');
      const index = shardId == null ? undefined : shardIndexOf(shardId);
      if (shardId != null && index === undefined) {
        throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${shardId} does not exist in stream ${streamName}.`);
      }
      const open = await tx.select().from(shards).where(and(
        eq(shards.streamId, locked.id),
        index === undefined ? isNull(shards.closedAt) : eq(shards.shardIndex, index),
      )).orderBy(shards.key).for('update');
      if (shardId != null) {
        if (open.length === 0) throw new ShardlineError('SHARD_NOT_FOUND', `Shard ${shardId} does not exist in stream ${streamName}.`);
        if (open[0]!.closedAt !== null) throw new ShardlineError('SHARD_CLOSED', `Shard ${shardId} in stream ${streamName} is already closed.`);
      }
      await this.#rollShards(tx, locked, open);
      return locked;
    });
    this.onShardsChanged(stream);
    return stream;
  }

  /** Rolls over every DYNAMODB shard that has been open for longer than `maxAgeMs`. */
  async rolloverExpired(now: Date, maxAgeMs: number): Promise<number> {
    const due = await this.handle.db.select({ name: streams.name }).from(shards)
      .innerJoin(streams, eq(streams.id, shards.streamId))
      .where(and(
        eq(streams.kind, 'DYNAMODB'), isNull(streams.deletedAt), isNull(shards.closedAt),
        lt(shards.createdAt, new Date(now.getTime() - maxAgeMs)),
        // A capture's local stream rolls over when its source does.
        sql`not exists (select 1 from capture_sources c where c.stream_id = ${streams.id})`,
      ));
    const names = [...new Set(due.map((d) => d.name))];
    let rolled = 0;
    for (const name of names) {
      const stream = await this.handle.transaction(async (tx) => {
        const locked = await this.catalog.lock(tx, name);
        const old = await tx.select().from(shards).where(and(
          eq(shards.streamId, locked.id), isNull(shards.closedAt),
          lt(shards.createdAt, new Date(now.getTime() - maxAgeMs)),
        )).orderBy(shards.key).for('update');
        await this.#rollShards(tx, locked, old);
        rolled += old.length;
        return locked;
      });
      this.onShardsChanged(stream);
    }
    return rolled;
  }

  async #rollShards(tx: Database, stream: StreamInfo, parents: ShardRow[]): Promise<void> {
    if (parents.length === 0) return;
    const [ending] = await nextSequenceValues(this.handle, tx, 1);
    const [counter] = await tx.update(streams).set({ nextShardIndex: sql`${streams.nextShardIndex} + ${parents.length}` })
      .where(eq(streams.id, stream.id)).returning({ next: streams.nextShardIndex });
    const first = counter!.next - parents.length;
    const seqs = await nextSequenceValues(this.handle, tx, parents.length);
    for (const [i, parent] of parents.entries()) {
      await tx.update(shards).set({ endingSeq: ending!, closedAt: sql`now()` }).where(eq(shards.key, parent.key));
      await tx.insert(shards).values({
        streamId: stream.id,
        shardIndex: first + i,
        parentIndex: parent.shardIndex,
        hashStart: parent.hashStart,
        hashEnd: parent.hashEnd,
        partition: parent.partition,
        startingSeq: seqs[i]!,
        lastArrival: parent.lastArrival,
      });
    }
  }
}
