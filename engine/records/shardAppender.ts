/**
 * Concurrent putRecords appends to one shard, combined into one statement.
 *
 * A shard's append statement holds the shard row's lock until it commits (appendRecords), so
 * concurrent calls writing the same shard queue behind one another anyway. Here they queue in
 * this process instead, and the rows that gathered while one statement ran go together in the
 * next: Postgres runs one statement and one commit where it ran several, and no connection sits
 * waiting on a lock. Each call's rows stay contiguous and in their order; calls go in the order
 * they arrived.
 *
 * Per shard: idle (no entry) → writing (one statement in flight; later appends queue) → when it
 * settles, the queue (up to the row and byte limits) is the next statement, or the shard is idle
 * again. A statement's outcome is every one of its callers' outcome: each gets its own rows'
 * sequence numbers, or the error (a ShardMovedError sends each caller to route again) — except
 * when Postgres refuses a value in it (one caller's rows' doing, maybe): then each caller's
 * rows go again alone.
 */
import { type DatabaseHandle, databaseError } from '../db.ts';
import { type PendingRecord, type ShardPlacement, appendRecordsPlaced } from './appendRecords.ts';
import type { RecentRecords } from './recentRecords.ts';

interface Append {
  rows: PendingRecord[];
  streamId: number;
  resolve: (seqs: bigint[]) => void;
  reject: (error: unknown) => void;
}

/** A combined statement's bounds: what a few concurrent full putRecords calls add up to. */
export const COMBINE_LIMITS = { maxRows: 2_000, maxChars: 16 * 1024 * 1024 };

export class ShardAppender {
  /** Shards with a statement in flight, each with the appends waiting for the next one. */
  readonly #writing = new Map<number, Append[]>();
  #statements = 0;

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly limits = COMBINE_LIMITS,
    /** Told each committed statement's rows, for tail reads. */
    private readonly recent?: RecentRecords,
  ) {}

  /** Statements run so far (each one append or several combined). */
  get statements(): number {
    return this.#statements;
  }

  /** Appends rows that all target one shard of the stream; resolves with their sequence numbers in order. */
  append(streamId: number, rows: PendingRecord[]): Promise<bigint[]> {
    const shardKey = rows[0]!.shardKey;
    return new Promise((resolve, reject) => {
      const append = { rows, streamId, resolve, reject };
      const queue = this.#writing.get(shardKey);
      if (queue) {
        queue.push(append);
      } else {
        this.#writing.set(shardKey, []);
        void this.#write(shardKey, [append]);
      }
    });
  }

  async #write(shardKey: number, batch: Append[]): Promise<void> {
    await this.#run(shardKey, batch);
    const queue = this.#writing.get(shardKey)!;
    if (queue.length === 0) {
      this.#writing.delete(shardKey);
      return;
    }
    const next = this.#take(queue);
    this.#writing.set(shardKey, queue.slice(next.length));
    void this.#write(shardKey, next);
  }

  /** One statement for the batch; settles every append in it. */
  async #run(shardKey: number, batch: Append[]): Promise<void> {
    const rows = batch.length === 1 ? batch[0]!.rows : batch.flatMap((a) => a.rows);
    this.#statements++;
    try {
      const { seqs, placed } = await appendRecordsPlaced(this.handle, undefined, rows);
      this.#remember(batch[0]!.streamId, shardKey, seqs, rows, placed);
      let offset = 0;
      for (const append of batch) {
        append.resolve(seqs.slice(offset, offset + append.rows.length));
        offset += append.rows.length;
      }
    } catch (error) {
      if (batch.length > 1 && databaseError(error).code?.startsWith('22')) {
        // SQLSTATE class 22: Postgres refused a value (so nothing was written), which may be
        // one caller's rows: each goes again alone, so the others are not failed with it.
        for (const append of batch) await this.#run(shardKey, [append]);
      } else {
        for (const append of batch) append.reject(error);
      }
    }
  }

  /** Before the callers hear of the rows: a reader they tell finds them in memory already. */
  #remember(streamId: number, shardKey: number, seqs: bigint[], rows: PendingRecord[], placed: ShardPlacement[]): void {
    if (!this.recent || placed.length !== 1 || !this.recent.wants(streamId)) return;
    try {
      this.recent.add(shardKey, placed[0]!.ordinalBefore + 1, seqs, rows, placed[0]!.arrivedUs);
    } catch {
      this.recent.clear(); // memory only speeds reads up; the rows are committed
    }
  }

  /** The queue's longest prefix within the limits; always at least one append. */
  #take(queue: Append[]): Append[] {
    let rows = 0;
    let chars = 0;
    let n = 0;
    for (const append of queue) {
      const size = append.rows.reduce((sum, r) => sum + r.dataBase64.length + r.partitionKey.length, 0);
      if (n > 0 && (rows + append.rows.length > this.limits.maxRows || chars + size > this.limits.maxChars)) break;
      rows += append.rows.length;
      chars += size;
      n++;
    }
    return queue.slice(0, n);
  }
}
