/**
 * Per-token rate limit on write requests (putRecords, writeItems, importRecords, the Kinesis
 * API's PutRecord/PutRecords): a token bucket per principal holding up to two seconds' worth, so
 * short bursts pass and a runaway producer gets LIMIT_EXCEEDED instead of filling the database.
 * Kept in memory per process; local mode (no token configured) is not limited.
 */
import { ShardlineError } from '../errors.ts';
import type { Principal } from './scopes.ts';

const BURST_SECONDS = 2;

export class WriteRateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perSecond: number, private readonly now: () => number = Date.now) {}

  /** Takes one write request from the principal's bucket, or throws LIMIT_EXCEEDED. */
  take(principal: Principal): void {
    if (this.perSecond <= 0 || principal.name === 'local') return;
    const now = this.now();
    const capacity = this.perSecond * BURST_SECONDS;
    const bucket = this.#buckets.get(principal.name) ?? { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) {
      this.#buckets.set(principal.name, bucket);
      const retryMs = Math.ceil(((1 - bucket.tokens) / this.perSecond) * 1000);
      throw new ShardlineError('LIMIT_EXCEEDED',
        `Token "${principal.name}" exceeded its rate limit of ${this.perSecond} write requests per second (SHARDLINE_WRITE_RATE_LIMIT); retry in ${retryMs} ms.`);
    }
    bucket.tokens -= 1;
    if (this.#buckets.size >= 10_000 && !this.#buckets.has(principal.name)) this.#buckets.clear();
    this.#buckets.set(principal.name, bucket);
  }
}
