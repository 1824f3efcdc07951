/**
 * Concurrent putRecords appends to one stream, combined into one statement.
 *
 * An append statement holds its target shards' row locks until it commits (appendRecords), so
 * concurrent calls writing a stream's shards queue behind one another anyway. Here they queue
 * in this process instead, and the rows that gathered while one statement ran go together in
 * the next: Postgres runs one transaction and one commit where it ran one per call and shard,
 * and no connection sits waiting on a lock. Each call's rows keep their order within each shard
 * and stay contiguous there; calls go in the order they arrived.
 *
 * Per stream: idle (no entry) → open (a statement in flight; later appends queue) → when it
 * has nothing left but its commit (or settles), the queue (up to the row and byte limits) is
 * the next statement, open in turn, or the stream is committing: the next append starts a
 * statement at once. A statement started beside a commit waits in Postgres for the shard locks
 * that commit releases, so its numbers still come after the committing statement's, and the
 * round trip that starts it overlaps the commit's flush. Idle again once nothing runs or waits.
 * A statement's outcome is every one of its callers' outcome: each gets its own
 * rows' sequence numbers, or the error — except when Postgres refused a value in it or a target
 * shard had closed (one caller's rows' doing, maybe): then each caller's rows go again alone,
 * so the others are not failed with them.
 */
import { type DatabaseHandle, databaseError } from '../db.ts';
import { type PendingRecord, type ShardPlacement, ShardMovedError, appendRecordsPlaced } from './appendRecords.ts';
import type { RecentRecords } from './recentRecords.ts';

interface StreamState {
  queue: Append[];
  /** A statement is in flight and not yet committing: appends wait for the next one. */
  open: boolean;
  /** Statements in flight (at most one open; the others committing). */
  running: number;
}

interface Append {
  rows: PendingRecord[];
  resolve: (seqs: bigint[]) => void;
  reject: (error: unknown) => void;
}

/** A combined statement's bounds: what a few concurrent full putRecords calls add up to. */
export const COMBINE_LIMITS = { maxRows: 2_000, maxChars: 16 * 1024 * 1024 };

export class StreamAppender {
  /** Streams with a statement in flight, each with the appends waiting for the next one. */
  readonly #writing = new Map<number, StreamState>();
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

  /** Appends rows to shards of the stream; resolves with their sequence numbers in order. */
  append(streamId: number, rows: PendingRecord[]): Promise<bigint[]> {
    return new Promise((resolve, reject) => {
      const append = { rows, resolve, reject };
      let state = this.#writing.get(streamId);
      if (!state) this.#writing.set(streamId, state = { queue: [], open: false, running: 0 });
      if (state.open) {
        state.queue.push(append);
      } else {
        this.#start(streamId, state, [append]);
      }
    });
  }

  #start(streamId: number, state: StreamState, batch: Append[]): void {
    state.open = true;
    state.running++;
    void this.#write(streamId, state, batch);
  }

  async #write(streamId: number, state: StreamState, batch: Append[]): Promise<void> {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      state.open = false;
      if (state.queue.length === 0) return;
      const next = this.#take(state.queue);
      state.queue = state.queue.slice(next.length);
      this.#start(streamId, state, next);
    };
    await this.#run(streamId, batch, release);
    release();
    if (--state.running === 0 && !state.open && state.queue.length === 0) this.#writing.delete(streamId);
  }

  /** One statement for the batch; settles every append in it. */
  async #run(streamId: number, batch: Append[], onCommit?: () => void): Promise<void> {
    const rows = batch.length === 1 ? batch[0]!.rows : batch.flatMap((a) => a.rows);
    this.#statements++;
    try {
      const { seqs, placed } = await appendRecordsPlaced(this.handle, undefined, rows, onCommit);
      this.#remember(streamId, seqs, rows, placed);
      let offset = 0;
      for (const append of batch) {
        append.resolve(seqs.slice(offset, offset + append.rows.length));
        offset += append.rows.length;
      }
    } catch (error) {
      if (batch.length > 1 && (error instanceof ShardMovedError || databaseError(error).code?.startsWith('22'))) {
        // A closed target shard, or SQLSTATE class 22 (Postgres refused a value): nothing was
        // written, and it may be one caller's rows only. Each goes again alone.
        for (const append of batch) await this.#run(streamId, [append]);
      } else {
        for (const append of batch) append.reject(error);
      }
    }
  }

  /** Before the callers hear of the rows: a reader they tell finds them in memory already. */
  #remember(streamId: number, seqs: bigint[], rows: PendingRecord[], placed: ShardPlacement[]): void {
    if (!this.recent || !this.recent.wants(streamId)) return;
    try {
      if (placed.length === 1) {
        this.recent.add(placed[0]!.shardKey, placed[0]!.ordinalBefore + 1, seqs, rows, placed[0]!.arrivedUs);
        return;
      }
      for (const place of placed) {
        const shardSeqs: bigint[] = [];
        const shardRows: PendingRecord[] = [];
        rows.forEach((row, i) => {
          if (row.shardKey !== place.shardKey) return;
          shardSeqs.push(seqs[i]!);
          shardRows.push(row);
        });
        this.recent.add(place.shardKey, place.ordinalBefore + 1, shardSeqs, shardRows, place.arrivedUs);
      }
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
