/**
 * AWS's per-shard throughput limits, for streams that opt in (`enforceThroughput`), so producers
 * and consumers can exercise their back-off code against shardline:
 *
 *   in   1 MiB/s of data plus partition keys, and 1,000 records/s
 *   out  2 MiB/s, and 5 GetRecords calls/s
 *
 * Each limit is a token bucket per shard that holds one second's worth and refills continuously.
 * A write admits the longest prefix of a shard's records that fits both write buckets; the rest
 * are throttled, which keeps per-shard order (a rejected record is never followed by an
 * accepted one of the same call on that shard). A read needs a call token and a read-byte
 * bucket that is not in debt; the bytes it returned are charged afterwards and may drive the
 * bucket negative (one GetRecords call returns up to 10 MiB, as in AWS), so the following calls
 * are throttled until the debt is paid, as AWS throttles calls after a large response.
 *
 * The buckets live in this process's memory: each engine process enforces the limits on the
 * calls it serves, so N processes behind a load balancer admit up to N times the rate. That is
 * enough to provoke ProvisionedThroughputExceededException in tests, and costs no database
 * round trip. Streams that do not enforce never touch a bucket.
 */
import type { ShardInfo, StreamInfo } from './model.ts';

export const SHARD_THROUGHPUT = {
  writeBytesPerSecond: 1024 * 1024,
  writeRecordsPerSecond: 1000,
  readBytesPerSecond: 2 * 1024 * 1024,
  readCallsPerSecond: 5,
} as const;

/** Buckets of shards idle long enough to be full again are dropped once this many exist. */
const PRUNE_ABOVE = 4096;

class TokenBucket {
  tokens: number;

  constructor(readonly perSecond: number) {
    this.tokens = perSecond;
  }

  refill(elapsedMs: number): void {
    this.tokens = Math.min(this.perSecond, this.tokens + (elapsedMs * this.perSecond) / 1000);
  }

  get full(): boolean {
    return this.tokens >= this.perSecond;
  }
}

class ShardBuckets {
  readonly writeBytes = new TokenBucket(SHARD_THROUGHPUT.writeBytesPerSecond);
  readonly writeRecords = new TokenBucket(SHARD_THROUGHPUT.writeRecordsPerSecond);
  readonly readBytes = new TokenBucket(SHARD_THROUGHPUT.readBytesPerSecond);
  readonly readCalls = new TokenBucket(SHARD_THROUGHPUT.readCallsPerSecond);

  constructor(public at: number) {}

  refill(now: number): void {
    // A clock that steps back refills nothing rather than draining.
    const elapsed = Math.max(0, now - this.at);
    this.at = Math.max(this.at, now);
    if (elapsed === 0) return;
    this.writeBytes.refill(elapsed);
    this.writeRecords.refill(elapsed);
    this.readBytes.refill(elapsed);
    this.readCalls.refill(elapsed);
  }

  get full(): boolean {
    return this.writeBytes.full && this.writeRecords.full && this.readBytes.full && this.readCalls.full;
  }
}

export class ShardThroughput {
  readonly #shards = new Map<number, ShardBuckets>();

  /** `clock`: epoch ms; injectable so tests refill buckets without waiting. */
  constructor(private readonly clock: () => number = Date.now) {}

  /**
   * How many of a shard's records (sizes in bytes, in call order) are admitted now: a prefix.
   * Records of a stream that does not enforce are all admitted.
   */
  admitWrites(stream: StreamInfo, shard: ShardInfo, sizes: readonly number[]): number {
    if (!stream.enforceThroughput) return sizes.length;
    const buckets = this.#buckets(shard);
    let admitted = 0;
    for (const size of sizes) {
      if (buckets.writeRecords.tokens < 1 || buckets.writeBytes.tokens < size) break;
      buckets.writeRecords.tokens -= 1;
      buckets.writeBytes.tokens -= size;
      admitted++;
    }
    return admitted;
  }

  /** Whether a GetRecords call on the shard may run now; an admitted call takes a call token. */
  admitRead(stream: StreamInfo, shard: ShardInfo): boolean {
    if (!stream.enforceThroughput) return true;
    const buckets = this.#buckets(shard);
    if (buckets.readCalls.tokens < 1 || buckets.readBytes.tokens < 0) return false;
    buckets.readCalls.tokens -= 1;
    return true;
  }

  /** Charges the bytes an admitted GetRecords call returned; beyond the bucket they are a debt. */
  chargeRead(stream: StreamInfo, shard: ShardInfo, bytes: number): void {
    if (!stream.enforceThroughput) return;
    this.#buckets(shard).readBytes.tokens -= bytes;
  }

  #buckets(shard: ShardInfo): ShardBuckets {
    const now = this.clock();
    let buckets = this.#shards.get(shard.key);
    if (buckets) {
      buckets.refill(now);
      return buckets;
    }
    if (this.#shards.size >= PRUNE_ABOVE) this.#prune(now);
    buckets = new ShardBuckets(now);
    this.#shards.set(shard.key, buckets);
    return buckets;
  }

  /** A full bucket behaves as a fresh one, so forgetting it changes nothing (and frees deleted shards' buckets). */
  #prune(now: number): void {
    for (const [key, buckets] of this.#shards) {
      buckets.refill(now);
      if (buckets.full) this.#shards.delete(key);
    }
  }
}

/** The account in a stream's ARN (arn:aws:kinesis:<region>:<account>:stream/<name>). */
function accountOf(stream: StreamInfo): string {
  return stream.arn.split(':')[4] ?? '';
}

/** A PutRecord(s) entry over the write limit, with AWS's ErrorCode and message. */
export function writeThrottled(stream: StreamInfo, shard: ShardInfo) {
  return {
    shardId: null,
    sequenceNumber: null,
    errorCode: 'ProvisionedThroughputExceededException',
    errorMessage: `Rate exceeded for shard ${shard.shardId} in stream ${stream.name} under account ${accountOf(stream)}.`,
  };
}

/** AWS's message for a GetRecords call over the read limit. */
export function readThrottledMessage(stream: StreamInfo, shard: ShardInfo): string {
  return `Rate exceeded for Shard - ${accountOf(stream)}/${stream.name}/${shard.shardId}`;
}
