/**
 * Opaque tokens of the wire APIs: shard iterators (Kinesis and DynamoDB Streams) and the
 * NextToken of ListStreams / ListShards.
 *
 * A token is base64url(JSON payload) + "." + base64url(HMAC-SHA256(payload), 16 bytes). The MAC
 * makes a token tamper-evident and version-checked; it is not a secret boundary (the APIs have
 * no authentication yet, and a forged iterator could only position a read the caller may make
 * anyway). The key is fixed by default so that iterators stay valid across restarts and across
 * the engine processes that share one database; `tokenKey` replaces it.
 *
 * An iterator holds the stream's internal id (a stream deleted and created again under the same
 * name gets a new id, so old iterators stop working), the shard index, the read position
 * (after-sequence and an arrival lower bound, exactly the engine's per-shard position), the
 * issue time and the lifetime, so expiry needs no state on the server. DynamoDB Streams
 * iterators take AWS's `<streamArn>|1|<token>` form.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const DEFAULT_KEY = 'shardline/aws-tokens/v1';
const MAC_BYTES = 16;
const MAX_SEQ = (1n << 63n) - 1n;
/** The end of the year 9999: inside Postgres' timestamp range. */
const MAX_TIMESTAMP_MS = 253_402_300_799_999;

export type IteratorApi = 'kinesis' | 'dynamodb';

export interface IteratorState {
  api: IteratorApi;
  streamId: number;
  shardIndex: number;
  /** Internal sequence value of the last record consumed (-1 before the first). */
  after: bigint;
  /** Arrival lower bound, epoch ms. */
  lowMs: number;
  /** When the iterator was issued, epoch ms. */
  issuedMs: number;
  /**
   * Positioned at the trim horizon and nothing read yet: records passing retention ahead of it
   * are skipped silently rather than reported as trimmed (DynamoDB Streams).
   */
  trimHorizon: boolean;
  /**
   * Positioned AT a sequence number (after = that number − 1) and nothing read yet: the record
   * at after + 1 is the one asked for (DynamoDB Streams' trimmed-data check).
   */
  atSequence?: boolean;
  /**
   * The shard's dense ordinal of the record at `after`, when the iterator came from reading it:
   * the trimmed-data check needs it once that record itself has been trimmed away.
   */
  afterOrdinal?: number;
}

export class TokenCodec {
  readonly #key: Buffer;

  constructor(key: string = DEFAULT_KEY) {
    this.#key = Buffer.from(key, 'utf8');
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#key).update(payload).digest().subarray(0, MAC_BYTES);
  }

  seal(payload: unknown): string {
    const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
    return `${body}.${this.#mac(body).toString('base64url')}`;
  }

  /** The payload of a token this codec sealed, or undefined for anything else. */
  open(token: string): unknown {
    const dot = token.indexOf('.');
    if (dot <= 0 || dot !== token.lastIndexOf('.')) return undefined;
    const body = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1), 'base64url');
    const expected = this.#mac(body);
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
  }

  encodeIterator(state: IteratorState): string {
    return this.seal({
      v: 1, i: state.api === 'kinesis' ? 'K' : 'D', s: state.streamId, n: state.shardIndex,
      a: state.after.toString(), l: state.lowMs, t: state.issuedMs,
      ...(state.trimHorizon ? { h: 1 } : {}), ...(state.atSequence ? { x: 1 } : {}),
      ...(state.afterOrdinal === undefined ? {} : { o: state.afterOrdinal }),
    });
  }

  /** The iterator's state, or undefined when the token is not an iterator of this API. */
  decodeIterator(token: string, api: IteratorApi): IteratorState | undefined {
    const p = this.open(token) as Record<string, unknown> | undefined;
    if (!p || p.v !== 1 || p.i !== (api === 'kinesis' ? 'K' : 'D')) return undefined;
    const { s, n, a, l, t } = p;
    if (!Number.isSafeInteger(s) || !Number.isSafeInteger(n) || typeof a !== 'string' || !/^-?\d{1,19}$/.test(a)
      || typeof l !== 'number' || !(l >= 0 && l <= MAX_TIMESTAMP_MS) || !Number.isSafeInteger(t)) return undefined;
    const after = BigInt(a);
    if (after < -1n || after > MAX_SEQ) return undefined;
    return {
      api, streamId: s as number, shardIndex: n as number, after, lowMs: l, issuedMs: t as number,
      trimHorizon: p.h === 1, atSequence: p.x === 1,
      ...(Number.isSafeInteger(p.o) && (p.o as number) >= 0 ? { afterOrdinal: p.o as number } : {}),
    };
  }
}
