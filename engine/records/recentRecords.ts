/**
 * The newest records of each shard that this process appended, kept in memory, so that tail
 * reads (Kinesis GetRecords: consumers mostly read just behind the writers) need no query.
 * Each record is kept as the member of a GetRecords `Records` array that Postgres would write
 * for it (readShardKinesisJson), built once when its statement commits. A statement's members
 * are held as one string (joined with commas, with each member's end), not a string each: a
 * long string is allocated outside the young generation, so the garbage collector neither
 * copies nor promotes the records one by one, and a page is a few slices of it.
 *
 * What a shard keeps: one run of records with consecutive ordinals, added statement by
 * statement after each commits (StreamAppender: one statement per stream at a time, so in
 * order). Rows written by another process or another write path leave a gap in the ordinals;
 * the next rows added then start a new run. Records never change once written, only leave with
 * retention, which keeps every record for at least 24 hours: memory answers only for records
 * younger than 23 hours (an hour's grace for clocks that disagree), and leaves older ones to
 * Postgres, which knows what retention has removed (and what a widened retention kept).
 *
 * When a read is answered here: the records after a position are exactly the run's records
 * after it when the run holds a record at or before the position (ordinals leave no room for
 * others in between), or starts at the shard's first record. A read never learns from the run
 * that the shard ends where the run ends: a page that reaches the run's end asks Postgres for
 * the shard's record count, and when anyone wrote more since, the read goes to Postgres; so does
 * the poll of a consumer at the run's end (an empty page from memory only when nothing is new).
 *
 * Bounded by a budget of characters held over all shards; the oldest statements' rows are
 * dropped first. Only streams with Kinesis readers are held, as far as this process can tell:
 * those written through the Kinesis API or read through its JSON GetRecords in the last
 * WANTED_MS. Other writes (GraphQL, CBOR readers' streams) pay nothing for it.
 */
import type { PendingRecord } from './appendRecords.ts';
import { type KinesisJsonRead, type ShardPosition, kinesisTimestamp } from './shardReads.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';
import { canonicalBase64 } from './base64.ts';

/** How long a stream stays held after its last Kinesis write or JSON read through this process. */
export const WANTED_MS = 10 * 60_000;

/** Records older than this are left to Postgres: retention (24 h at least) may have removed them. */
export const RECENT_WINDOW_MS = 23 * 3_600_000;
const NO_SEQS = new BigInt64Array(0);
const NO_NUMBERS = new Uint32Array(0);

/** One statement's rows of one shard: they share an arrival time. */
interface Chunk {
  shardKey: number;
  firstOrdinal: number;
  seqs: BigInt64Array;
  /** The records' GetRecords member JSON, in order, joined with commas. */
  text: string;
  /** Where each record's member ends in text (exclusive); the next one starts a comma later. */
  ends: Uint32Array;
  /** Each record's data plus partition key bytes (what read throughput charges). */
  sizes: Uint32Array;
  arrivedUs: number;
  /** False once its shard's run restarted without it or the budget dropped it. */
  live: boolean;
}

interface Run {
  chunks: Chunk[];
  lastOrdinal: number;
}


export class RecentRecords {
  readonly #runs = new Map<number, Run>();
  /** Every live chunk, oldest first (a chunk is dropped lazily once dead). */
  #order: (Chunk | undefined)[] = [];
  #orderHead = 0;
  /** Dead chunks still in #order (a run restarted without them). */
  #deadInOrder = 0;
  #chars = 0;
  #hits = 0;
  /** Streams whose newest records are held: stream id -> until (epoch ms). */
  readonly #wanted = new Map<number, number>();

  constructor(private readonly budgetChars: number) {}

  /** Holds a stream's newest records from now on (renewed by every call; lapses after WANTED_MS). */
  want(streamId: number, nowMs = Date.now()): void {
    if (this.budgetChars <= 0) return;
    if (this.#wanted.size > 100_000) this.#wanted.clear();
    this.#wanted.set(streamId, nowMs + WANTED_MS);
  }

  /** Whether a stream's new records are to be held. */
  wants(streamId: number, nowMs = Date.now()): boolean {
    const until = this.#wanted.get(streamId);
    if (until === undefined) return false;
    if (until >= nowMs) return true;
    this.#wanted.delete(streamId);
    return false;
  }

  /** Chunks the eviction order tracks, live or not (bounded by about twice the live ones). */
  get trackedChunks(): number {
    return this.#order.length - this.#orderHead;
  }

  /** Characters held now (the budget's unit). */
  get heldChars(): number {
    return this.#chars;
  }

  /** Reads answered from memory so far. */
  get hits(): number {
    return this.#hits;
  }

  /**
   * Rows one committed statement appended to a shard, in order: their sequence numbers, the
   * first one's ordinal and their arrival (epoch microseconds).
   */
  add(shardKey: number, firstOrdinal: number, seqs: bigint[], rows: PendingRecord[], arrivedUs: number): void {
    if (this.budgetChars <= 0 || rows.length === 0) return;
    let run = this.#runs.get(shardKey);
    if (run && run.lastOrdinal !== firstOrdinal - 1) {
      for (const chunk of run.chunks) {
        this.#drop(chunk);
        this.#deadInOrder++;
      }
      run = undefined;
    }
    if (!run) this.#runs.set(shardKey, run = { chunks: [], lastOrdinal: firstOrdinal - 1 });
    const arrival = kinesisTimestamp(arrivedUs);
    // The pieces of every member, joined once: no intermediate string per member.
    const pieces = new Array<string>(rows.length * 3);
    const ends = new Uint32Array(rows.length);
    const sizes = new Uint32Array(rows.length);
    let at = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const head = `${i === 0 ? '' : ','}{"SequenceNumber":"${formatSequenceNumber(seqs[i]!)}","ApproximateArrivalTimestamp":${arrival},"Data":"`;
      const data = canonicalBase64(row.dataBase64);
      const tail = `","PartitionKey":${JSON.stringify(asStored(row.partitionKey))}}`;
      pieces[3 * i] = head;
      pieces[3 * i + 1] = data;
      pieces[3 * i + 2] = tail;
      at += head.length + data.length + tail.length;
      ends[i] = at;
      sizes[i] = row.sizeBytes;
    }
    const text = pieces.join('');
    const chunk: Chunk = {
      shardKey, firstOrdinal, seqs: BigInt64Array.from(seqs), text, ends, sizes, arrivedUs, live: true,
    };
    run.chunks.push(chunk);
    run.lastOrdinal = firstOrdinal + rows.length - 1;
    this.#order.push(chunk);
    this.#chars += text.length; // characters: the budget's unit, close to bytes for base64 and most keys
    while (this.#chars > this.budgetChars && this.#orderHead < this.#order.length) {
      const oldest = this.#order[this.#orderHead]!;
      this.#order[this.#orderHead++] = undefined;
      if (!oldest.live) {
        this.#deadInOrder--;
        continue;
      }
      const owner = this.#runs.get(oldest.shardKey)!;
      // A shard's chunks join the order in their run's order, so the oldest is its run's first.
      owner.chunks.shift();
      this.#drop(oldest);
      if (owner.chunks.length === 0) this.#runs.delete(oldest.shardKey);
    }
    // What the order still tracks stays within twice what is live.
    if (this.#orderHead + this.#deadInOrder > 64 && (this.#orderHead + this.#deadInOrder) * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#orderHead).filter((c) => c!.live);
      this.#orderHead = 0;
      this.#deadInOrder = 0;
    }
  }

  /**
   * The page of a shard after a position, as readShardKinesisJson would read it (the first
   * record always, then up to limit records within maxBytes, lowMs applied), or undefined when
   * memory cannot tell it. recordCount reads the shard's count of records ever written; it is
   * asked only when the page reaches the end of what is held.
   */
  async read(
    shardKey: number, from: ShardPosition, limit: number, maxBytes: number, nowMs: number,
    recordCount: () => Promise<number>,
  ): Promise<KinesisJsonRead | undefined> {
    const run = this.#runs.get(shardKey);
    if (!run || run.chunks.length === 0) return undefined;
    const chunks = run.chunks;
    let [c, i] = firstAfter(chunks, from.after);
    if (c === chunks.length) {
      // At or past the newest record held: nothing to read, if nobody has written since (the
      // poll of a consumer that has caught up, which then needs no page query).
      const held = run.lastOrdinal;
      if ((await recordCount()) !== held) return undefined;
      this.#hits++;
      return { recordsJson: [], count: 0, sizeBytes: 0, next: from, nextArrival: null };
    }
    if (c === 0 && i === 0 && chunks[0]!.firstOrdinal !== 1) return undefined;
    const lowUs = from.lowMs * 1000;
    while (c < chunks.length && chunks[c]!.arrivedUs < lowUs) {
      c++;
      i = 0;
    }
    if (c === chunks.length) return undefined;
    if (chunks[c]!.arrivedUs < (nowMs - RECENT_WINDOW_MS) * 1000) return undefined;

    // Each chunk gives one slice: its records from i up to where the page ends.
    const parts: string[] = [];
    let count = 0;
    let bytes = 0;
    let last: Chunk | undefined;
    let lastIndex = 0;
    let full = false;
    while (c < chunks.length && !full) {
      const chunk = chunks[c]!;
      const first = i;
      for (; i < chunk.sizes.length; i++) {
        const size = chunk.sizes[i]!;
        if (count > 0 && (count >= limit || bytes + size > maxBytes)) {
          full = true;
          break;
        }
        count++;
        bytes += size;
      }
      if (i > first) {
        parts.push(chunk.text.slice(first === 0 ? 0 : chunk.ends[first - 1]! + 1, chunk.ends[i - 1]!));
        last = chunk;
        lastIndex = i - 1;
      }
      if (i === chunk.sizes.length) {
        c++;
        i = 0;
      }
    }
    const next = { after: last!.seqs[lastIndex]!, lowMs: Math.floor(last!.arrivedUs / 1000) };
    let nextArrival: Date | null = null;
    if (c < chunks.length) {
      nextArrival = new Date(Math.floor(chunks[c]!.arrivedUs / 1000));
    } else {
      const held = run.lastOrdinal;
      if ((await recordCount()) !== held) return undefined;
      // The run may have grown, restarted or been dropped while the count was read; the page,
      // taken before, stands either way.
    }
    this.#hits++;
    return { recordsJson: parts, count, sizeBytes: bytes, next, nextArrival };
  }

  /** Forgets everything held. */
  clear(): void {
    for (const run of this.#runs.values()) for (const chunk of run.chunks) this.#drop(chunk);
    this.#runs.clear();
    this.#order = [];
    this.#orderHead = 0;
    this.#deadInOrder = 0;
  }

  #drop(chunk: Chunk): void {
    if (!chunk.live) return;
    chunk.live = false;
    this.#chars -= chunk.text.length;
    // Whatever still refers to the chunk, its records are let go.
    chunk.seqs = NO_SEQS;
    chunk.text = '';
    chunk.ends = NO_NUMBERS;
    chunk.sizes = NO_NUMBERS;
  }
}

/** Chunk and index of the first record with a sequence value above `after` (chunks.length, 0 when none). */
function firstAfter(chunks: Chunk[], after: bigint): [number, number] {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const seqs = chunks[mid]!.seqs;
    if (seqs[seqs.length - 1]! > after) hi = mid;
    else lo = mid + 1;
  }
  if (lo === chunks.length) return [lo, 0];
  const seqs = chunks[lo]!.seqs;
  let a = 0;
  let b = seqs.length - 1;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (seqs[mid]! > after) b = mid;
    else a = mid + 1;
  }
  return [lo, a];
}

/** A key as Postgres stores it: a lone surrogate reaches it as U+FFFD (the drivers send UTF-8). */
function asStored(key: string): string {
  return /[\ud800-\udfff]/.test(key) ? Buffer.from(key, 'utf8').toString('utf8') : key;
}
