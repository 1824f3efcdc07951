/**
 * Kinesis GetRecords pages from Postgres: the page read as binary COPY, its JSON written by
 * Node, is byte for byte the page that Postgres's own aggregate writes (what PGlite runs), and
 * its records as values (CBOR's) are readShard's, for every position, limit, byte budget and
 * arrival bound; and the binary COPY reader takes rows however the chunks split them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { type PendingRecord, appendRecords } from '../engine/records/appendRecords.ts';
import { readBinaryCopy } from '../engine/records/recordsCopy.ts';
import { type KinesisJsonRead, type KinesisValuesRead, type ShardPosition, readShardKinesisJson, readShardKinesisValues } from '../engine/records/shardReads.ts';
import type { StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, backends, openTestEngine } from './harness.ts';

const MAX_BYTES = 10 * 1024 * 1024;
const KEYS = ['plain', 'quote"d', 'back\\slash', 'tab\there', 'ctl\u0001\u001f\u007f', 'ünïcödé', 'emoji 🎉', 'line\nbreak',
  'lone \ud800 surrogate', 'sep\u2028\u2029', '</script>'];

const postgres = backends.find((b) => b.name === 'postgres');

describe('Kinesis pages: binary COPY against the aggregate and readShard (postgres)', { skip: postgres ? false : 'needs DATABASE_URL' }, () => {
  let t: TestEngine;
  before(async () => {
    t = await openTestEngine(postgres!);
  });
  after(() => t?.close());

  const page = (read: KinesisJsonRead) => ({
    json: read.recordsJson.join(','),
    count: read.count,
    sizeBytes: read.sizeBytes,
    next: { after: read.next.after.toString(), lowMs: read.next.lowMs },
    nextArrival: read.nextArrival?.getTime() ?? null,
  });

  const values = (read: KinesisValuesRead) => ({
    records: read.records.map((r) => ({ ...r, data: r.data.toString('hex') })),
    sizeBytes: read.sizeBytes,
    next: { after: read.next.after.toString(), lowMs: read.next.lowMs },
    nextArrival: read.nextArrival?.getTime() ?? null,
  });

  it('agrees byte for byte from every position, under every limit, budget and arrival bound', async () => {
    assert.ok(t.engine.handle.copyOut, 'the Postgres handle reads pages as COPY');
    const aggregate = { ...t.engine.handle, copyOut: undefined };
    await t.engine.catalog.create({ name: 'pages', shardCount: 1 });
    const stream = (await t.engine.catalog.get('pages')) as StreamInfo;
    const [shard] = await t.engine.catalog.shards(stream, 'OPEN');
    // Several statements (arrivals), payloads from empty to a few KiB, keys that need escaping.
    let n = 0;
    for (const size of [3, 1, 7, 5, 2]) {
      const rows: PendingRecord[] = Array.from({ length: size }, () => {
        const data = randomBytes([0, 1, 2, 3, 57, 1024, 3000][n % 7]!);
        const key = `${KEYS[n % KEYS.length]}-${n++}`;
        return { shardKey: shard!.key, partitionKey: key, dataBase64: data.toString('base64'), sizeBytes: data.length + Buffer.byteLength(key) };
      });
      await appendRecords(t.engine.handle, undefined, rows);
    }
    const all = await readShardKinesisJson(t.engine.handle, stream, shard!, { after: -1n, lowMs: 0 }, 10_000, MAX_BYTES);
    assert.equal(all.count, n);
    const stored = JSON.parse(`[${all.recordsJson.join(',')}]`) as { SequenceNumber: string; ApproximateArrivalTimestamp: number; PartitionKey: string }[];
    assert.equal(stored[8]!.PartitionKey, 'lone \ufffd surrogate-8', 'a lone surrogate is stored as U+FFFD');
    const seqs = stored.map((r) => BigInt(r.SequenceNumber) - 10n ** 20n);
    const midMs = Math.round(stored[Math.floor(n / 2)]!.ApproximateArrivalTimestamp * 1000);
    const positions: ShardPosition[] = [{ after: -1n, lowMs: 0 }, { after: -1n, lowMs: midMs }, { after: -1n, lowMs: Date.now() + 60_000 }];
    for (const seq of seqs) positions.push({ after: seq, lowMs: 0 }, { after: seq, lowMs: midMs });
    let compared = 0;
    for (const from of positions) {
      for (const [limit, maxBytes] of [[10_000, MAX_BYTES], [3, MAX_BYTES], [10_000, 2500], [1, 1]] as const) {
        const viaCopy = page(await readShardKinesisJson(t.engine.handle, stream, shard!, from, limit, maxBytes));
        const viaAggregate = page(await readShardKinesisJson(aggregate, stream, shard!, from, limit, maxBytes));
        const where = `after ${from.after} low ${from.lowMs}, limit ${limit}, ${maxBytes} bytes`;
        assert.deepEqual(viaCopy, viaAggregate, where);
        const valuesViaCopy = values(await readShardKinesisValues(t.engine.handle, stream, shard!, from, limit, maxBytes));
        assert.deepEqual(valuesViaCopy, values(await readShardKinesisValues(aggregate, stream, shard!, from, limit, maxBytes)), `values, ${where}`);
        assert.equal(valuesViaCopy.records.length, viaCopy.count, where);
        compared += viaCopy.count;
      }
    }
    assert.ok(compared > 100, `${compared} records compared`);
  });
});

describe('binary COPY reader', () => {
  /** Binary COPY data of rows of two fields (null as null), as Postgres writes it. */
  const copyData = (rows: (Buffer | null)[][]) => {
    const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 4, 9, 9, 9, 9])];
    for (const row of rows) {
      const count = Buffer.alloc(2);
      count.writeInt16BE(row.length);
      parts.push(count);
      for (const field of row) {
        const length = Buffer.alloc(4);
        length.writeInt32BE(field ? field.length : -1);
        parts.push(length, ...(field ? [field] : []));
      }
    }
    parts.push(Buffer.from([0xff, 0xff]));
    return Buffer.concat(parts);
  };
  const rows = [[Buffer.from('first'), null], [Buffer.alloc(0), randomBytes(300)], [null, Buffer.from('ü')]];
  const read = (chunks: Buffer[]) => {
    const out: (string | null)[][] = [];
    readBinaryCopy(chunks, 2, (buffer, starts, lengths) => {
      out.push([0, 1].map((f) => (lengths[f]! < 0 ? null : buffer.subarray(starts[f]!, starts[f]! + lengths[f]!).toString('hex'))));
    });
    return out;
  };
  const expected = rows.map((row) => row.map((field) => field?.toString('hex') ?? null));

  it('reads every row however the data is split into chunks', () => {
    const data = copyData(rows);
    assert.deepEqual(read([data]), expected);
    for (let cut = 0; cut <= data.length; cut++) {
      assert.deepEqual(read([data.subarray(0, cut), data.subarray(cut)]), expected, `cut at ${cut}`);
    }
    assert.deepEqual(read([...data].map((byte) => Buffer.from([byte]))), expected, 'one byte per chunk');
  });

  it('refuses data without its trailer, its signature, or with rows of another width', () => {
    const data = copyData(rows);
    assert.throws(() => read([data.subarray(0, data.length - 2)]), /without its trailer/);
    assert.throws(() => read([Buffer.concat([Buffer.from('X'), data.subarray(1)])]), /no signature/);
    assert.throws(() => read([copyData([[Buffer.from('a')]])]), /1 fields, expected 2/);
  });
});
