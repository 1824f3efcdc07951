/**
 * Record rows in PostgreSQL's binary COPY format: written for `COPY records (...) FROM STDIN
 * (FORMAT binary)`, and read from `COPY (query) TO STDOUT (FORMAT binary)`.
 *
 * Writing: Postgres loads COPY rows a page at a time (one WAL record per page rather than per
 * row) and reads the payloads as raw bytes, where an INSERT of base64 text decodes every
 * payload and logs every row: on the 2-core bench machine the backends spent 7–9 ms per 1,000
 * rows of 1 KiB against 12–15 ms for the INSERT (bench/README.md, "Tenth session").
 *
 * The whole COPY is one buffer, sized first: the payloads are decoded from base64 straight into
 * it. Layout (PostgreSQL's "Binary Format" of COPY): a signature, flags and header-extension
 * length; per row a 16-bit field count, then per field a 32-bit length (-1 for null) and its
 * bytes in the type's binary form; a 16-bit -1 at the end.
 */
import type { PendingRecord, ShardPlacement } from './appendRecords.ts';
import { base64Length } from './base64.ts';

/** The columns, in the order each row's fields are written. */
export const COPY_COLUMNS = 'shard_key, seq, ordinal, arrived_at, partition_key, data, size_bytes, event_name, event_id, origin';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const FIELDS = 10;
/** Microseconds from the Unix epoch to Postgres's (2000-01-01). */
const POSTGRES_EPOCH_US = 946_684_800_000_000;
const TWO_32 = 2 ** 32;

/** A payload that is not strict base64: the caller's check was skipped. Class 22, as Postgres's decode() would fail. */
export class InvalidPayloadError extends Error {
  readonly code = '22023';
}

/**
 * The COPY data for rows with their sequence numbers (in row order) and their shards' placements.
 * Ranks are each row's 1-based place among its shard's rows in this statement.
 */
export function encodeRecordsCopy(rows: PendingRecord[], seqs: bigint[], ranks: number[], placements: Map<number, ShardPlacement>): Buffer {
  const keyBytes = new Uint32Array(rows.length);
  const origins: (Buffer | null)[] = new Array(rows.length);
  let size = SIGNATURE.length + 8 + 2;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    keyBytes[i] = Buffer.byteLength(row.partitionKey, 'utf8');
    const origin = row.origin === undefined || row.origin === null ? null : Buffer.from(`\x01${JSON.stringify(row.origin)}`, 'utf8');
    origins[i] = origin;
    size += 2 + FIELDS * 4 + 8 * 4 + 4 + keyBytes[i]! + base64Length(row.dataBase64)
      + textBytes(row.eventName) + textBytes(row.eventId) + (origin?.length ?? 0);
  }
  const out = Buffer.allocUnsafe(size);
  let at = SIGNATURE.copy(out, 0);
  at = out.writeUInt32BE(0, at); // flags
  at = out.writeUInt32BE(0, at); // header extension length
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const placement = placements.get(row.shardKey)!;
    at = out.writeInt16BE(FIELDS, at);
    at = int8(out, at, row.shardKey);
    at = out.writeInt32BE(8, at);
    at = out.writeBigInt64BE(seqs[i]!, at);
    at = int8(out, at, placement.ordinalBefore + ranks[i]!);
    at = int8(out, at, placement.arrivedUs - POSTGRES_EPOCH_US);
    at = out.writeInt32BE(keyBytes[i]!, at);
    at += out.write(row.partitionKey, at, keyBytes[i]!, 'utf8');
    const length = base64Length(row.dataBase64);
    at = out.writeInt32BE(length, at);
    if (out.write(row.dataBase64, at, length, 'base64') !== length) {
      throw new InvalidPayloadError('A record payload is not valid base64.');
    }
    at += length;
    at = out.writeInt32BE(4, at);
    at = out.writeInt32BE(row.sizeBytes, at);
    at = text(out, at, row.eventName);
    at = text(out, at, row.eventId);
    at = origins[i] ? bytes(out, at, origins[i]!) : out.writeInt32BE(-1, at);
  }
  at = out.writeInt16BE(-1, at);
  if (at !== size) throw new Error(`COPY buffer size mismatch: wrote ${at} of ${size} bytes.`);
  return out;
}

function textBytes(value: string | null | undefined): number {
  return value === null || value === undefined ? 0 : Buffer.byteLength(value, 'utf8');
}

/** A 64-bit integer field from a safe integer, without a BigInt. */
function int8(out: Buffer, at: number, value: number): number {
  at = out.writeInt32BE(8, at);
  const high = Math.floor(value / TWO_32);
  at = out.writeInt32BE(high, at);
  return out.writeUInt32BE(value - high * TWO_32, at);
}

function bytes(out: Buffer, at: number, value: Buffer): number {
  at = out.writeInt32BE(value.length, at);
  return at + value.copy(out, at);
}

function text(out: Buffer, at: number, value: string | null | undefined): number {
  if (value === null || value === undefined) return out.writeInt32BE(-1, at);
  const length = Buffer.byteLength(value, 'utf8');
  at = out.writeInt32BE(length, at);
  return at + out.write(value, at, length, 'utf8');
}

/**
 * Reading: calls onRow for every row of binary COPY data, given as the chunks it arrived in,
 * with the buffer that holds the row and each field's start and length in it (-1: null). The
 * arrays are reused from row to row. A row is copied only when it spans chunks.
 */
export function readBinaryCopy(
  chunks: Buffer[], fields: number, onRow: (buffer: Buffer, starts: Int32Array, lengths: Int32Array) => void,
): void {
  const starts = new Int32Array(fields);
  const lengths = new Int32Array(fields);
  let pending: Buffer | undefined;
  let headerRead = false;
  for (const chunk of chunks) {
    const buffer = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    let at = 0;
    if (!headerRead) {
      if (buffer.length < SIGNATURE.length + 8 || buffer.length < SIGNATURE.length + 8 + buffer.readUInt32BE(SIGNATURE.length + 4)) {
        pending = buffer;
        continue;
      }
      if (!buffer.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error('Not binary COPY data: no signature.');
      at = SIGNATURE.length + 8 + buffer.readUInt32BE(SIGNATURE.length + 4);
      headerRead = true;
    }
    while (at < buffer.length) {
      const row = at;
      if (buffer.length - at < 2) break;
      const count = buffer.readInt16BE(at);
      if (count === -1) return;
      if (count !== fields) throw new Error(`Binary COPY row of ${count} fields, expected ${fields}.`);
      at += 2;
      let whole = true;
      for (let f = 0; f < fields; f++) {
        if (buffer.length - at < 4) {
          whole = false;
          break;
        }
        const length = buffer.readInt32BE(at);
        at += 4;
        if (length > 0 && buffer.length - at < length) {
          whole = false;
          break;
        }
        starts[f] = at;
        lengths[f] = length;
        if (length > 0) at += length;
      }
      if (!whole) {
        at = row;
        break;
      }
      onRow(buffer, starts, lengths);
    }
    if (at < buffer.length) pending = buffer.subarray(at);
  }
  throw new Error('Binary COPY data ended without its trailer.');
}

/**
 * A timestamptz field in binary form (microseconds from 2000-01-01) as epoch microseconds: what
 * int8 wrote for an arrival, read back.
 */
export function timestamptzUs(buffer: Buffer, at: number): number {
  return buffer.readInt32BE(at) * TWO_32 + buffer.readUInt32BE(at + 4) + POSTGRES_EPOCH_US;
}
