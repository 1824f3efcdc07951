/**
 * RecentRecords: GetRecords pages answered from memory are the pages Postgres writes, for any
 * position, limit and byte budget; rows written around the memory (another process, another
 * write path) are never skipped; a caught-up poll needs no page query; the budget and
 * retention are kept.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { type PendingRecord, appendRecords } from '../engine/records/appendRecords.ts';
import { RecentRecords, WANTED_MS } from '../engine/records/recentRecords.ts';
import { type KinesisJsonRead, type ShardPosition, readShardKinesisJson } from '../engine/records/shardReads.ts';
import type { ShardInfo, StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, backends, openTestEngine, rejectsWith } from './harness.ts';

const MAX_BYTES = 10 * 1024 * 1024;
const KEYS = ['plain', 'quote"d', 'back\\slash', 'tab\there', 'ctl\u0001', 'ünïcödé', 'emoji 🎉', 'line\nbreak', 'lone \ud800 surrogate'];

for (const backend of backends) {
  describe(`recent records (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend);
    });
    after(() => t.close());

    const parsed = (read: KinesisJsonRead) => ({
      records: JSON.parse(`[${read.recordsJson.join(',')}]`) as unknown[],
      count: read.count,
      sizeBytes: read.sizeBytes,
      next: { after: read.next.after.toString(), lowMs: read.next.lowMs },
      nextArrival: read.nextArrival?.getTime() ?? null,
    });
    const put = async (stream: string, n: number, bytes: () => number) => {
      const records = Array.from({ length: n }, (_, i) => ({ partitionKey: `${KEYS[i % KEYS.length]}-${i}`, data: randomBytes(bytes()).toString('base64') }));
      const result = await t.engine.putRecords(stream, records, { kinesisReaders: true });
      assert.equal(result.failedRecordCount, 0);
    };
    /** Rows appended past the engine's memory, as another process would. */
    const appendAround = async (shard: ShardInfo, n: number) => {
      const rows: PendingRecord[] = Array.from({ length: n }, (_, i) => {
        const data = randomBytes(20 + i);
        return { shardKey: shard.key, partitionKey: `around-${i}`, dataBase64: data.toString('base64'), sizeBytes: data.length + `around-${i}`.length };
      });
      await appendRecords(t.engine.handle, undefined, rows);
    };
    const openShards = async (name: string) => {
      const stream = (await t.engine.catalog.get(name)) as StreamInfo;
      return { stream, shards: await t.engine.catalog.shards(stream, 'OPEN') };
    };
    const storedSeqs = async (stream: StreamInfo, shard: ShardInfo) =>
      (await readShardKinesisJson(t.engine.handle, stream, shard, { after: -1n, lowMs: 0 }, 10_000, MAX_BYTES)).recordsJson
        .flatMap((piece) => (JSON.parse(`[${piece}]`) as { SequenceNumber: string }[]).map((r) => BigInt(r.SequenceNumber) - 10n ** 20n));

    /** Every read from every position (before, at and between the records) agrees with Postgres. */
    const agreesEverywhere = async (stream: StreamInfo, shard: ShardInfo) => {
      const seqs = await storedSeqs(stream, shard);
      const positions: ShardPosition[] = [{ after: -1n, lowMs: 0 }];
      for (const seq of seqs) positions.push({ after: seq, lowMs: 0 }, { after: seq + 1n, lowMs: 0 });
      // Positions as iterators carry them: each page's next, with its arrival bound.
      for (let from: ShardPosition = { after: -1n, lowMs: 0 }, pages = 0; pages < 100; pages++) {
        const page = await readShardKinesisJson(t.engine.handle, stream, shard, from, 3, MAX_BYTES);
        if (page.count === 0) break;
        positions.push(page.next);
        from = page.next;
      }
      for (const from of positions) {
        for (const [limit, maxBytes] of [[10_000, MAX_BYTES], [1, MAX_BYTES], [3, MAX_BYTES], [10_000, 900]]) {
          const fromMemory = await t.engine.readShardKinesisJson(stream, shard, from, limit!, maxBytes!);
          const fromPostgres = await readShardKinesisJson(t.engine.handle, stream, shard, from, limit!, maxBytes!);
          assert.deepEqual(parsed(fromMemory), parsed(fromPostgres), `after ${from.after}, limit ${limit}, maxBytes ${maxBytes}`);
        }
      }
      return seqs.length;
    };

    it('answers reads from memory exactly as Postgres does, around rows it never saw', async () => {
      await t.engine.catalog.create({ name: 'tail', shardCount: 2 });
      const { stream, shards } = await openShards('tail');
      const hits = t.engine.recentRecords.hits;
      await put('tail', 9, () => 1 + Math.floor(Math.random() * 300));
      // Concurrent calls: their rows share statements.
      await Promise.all([put('tail', 2, () => 200), put('tail', 2, () => 100), put('tail', 1, () => 10)]);
      const before = t.engine.recentRecords.hits;
      assert.equal(await agreesEverywhere(stream, shards[0]!) + await agreesEverywhere(stream, shards[1]!), 14);
      assert.ok(t.engine.recentRecords.hits > before, 'reads were answered from memory');

      // Another writer's rows, then ours again: a gap in what memory holds.
      await appendAround(shards[0]!, 3);
      await put('tail', 6, () => 50);
      await appendAround(shards[1]!, 2);
      assert.equal(await agreesEverywhere(stream, shards[0]!) + await agreesEverywhere(stream, shards[1]!), 25);
      assert.ok(t.engine.recentRecords.hits > hits);
    });

    it('answers a caught-up poll from memory, and never hides rows written past it', async () => {
      await t.engine.catalog.create({ name: 'tip', shardCount: 1 });
      const { stream, shards: [shard] } = await openShards('tip');
      await put('tip', 4, () => 10);
      const seqs = await storedSeqs(stream, shard!);
      const tip = { after: seqs[seqs.length - 1]!, lowMs: 0 };
      const hits = t.engine.recentRecords.hits;
      const empty = await t.engine.readShardKinesisJson(stream, shard!, tip, 100, MAX_BYTES);
      assert.deepEqual(parsed(empty), parsed(await readShardKinesisJson(t.engine.handle, stream, shard!, tip, 100, MAX_BYTES)));
      assert.equal(empty.count, 0);
      assert.equal(t.engine.recentRecords.hits, hits + 1, 'the empty poll came from memory');

      await appendAround(shard!, 2);
      const later = await t.engine.readShardKinesisJson(stream, shard!, tip, 100, MAX_BYTES);
      assert.equal(later.count, 2, 'rows written past memory are read');
      // A page that ends where memory ends must not claim the shard ends there either.
      const fromStart = await t.engine.readShardKinesisJson(stream, shard!, { after: -1n, lowMs: 0 }, 100, MAX_BYTES);
      assert.equal(fromStart.count, 6);
    });

    it('drops the oldest statements beyond its budget and still reads everything', async () => {
      const small = await openTestEngine(backend, { recentRecordsBytes: 4_000 });
      try {
        await small.engine.catalog.create({ name: 'budget', shardCount: 1 });
        for (let i = 0; i < 6; i++) {
          await small.engine.putRecords('budget', Array.from({ length: 3 }, (_, j) => ({ partitionKey: `k${i}-${j}`, data: randomBytes(300).toString('base64') })), { kinesisReaders: true });
        }
        const stream = (await small.engine.catalog.get('budget')) as StreamInfo;
        const [shard] = await small.engine.catalog.shards(stream, 'OPEN');
        const all = await small.engine.readShardKinesisJson(stream, shard!, { after: -1n, lowMs: 0 }, 100, MAX_BYTES);
        assert.equal(all.count, 18, 'the evicted start is read from Postgres');
        const seqs = (JSON.parse(`[${all.recordsJson.join(',')}]`) as { SequenceNumber: string }[]).map((r) => BigInt(r.SequenceNumber) - 10n ** 20n);
        const hits = small.engine.recentRecords.hits;
        const tail = await small.engine.readShardKinesisJson(stream, shard!, { after: seqs[14]!, lowMs: 0 }, 100, MAX_BYTES);
        assert.equal(tail.count, 3);
        assert.equal(small.engine.recentRecords.hits, hits + 1, 'the newest statements are still held');
      } finally {
        await small.close();
      }
    });

    it('holds a stream only once it has Kinesis readers: a Kinesis write or a JSON read', async () => {
      await t.engine.catalog.create({ name: 'graphql-only', shardCount: 1 });
      const { stream, shards: [shard] } = await openShards('graphql-only');
      const records = (n: number) => Array.from({ length: n }, (_, i) => ({ partitionKey: `g${i}`, data: randomBytes(8).toString('base64') }));
      await t.engine.putRecords('graphql-only', records(3));
      const hits = t.engine.recentRecords.hits;
      assert.equal((await t.engine.readShardKinesisJson(stream, shard!, { after: -1n, lowMs: 0 }, 100, MAX_BYTES)).count, 3);
      assert.equal(t.engine.recentRecords.hits, hits, 'GraphQL writes alone are not held');
      // That read announced a Kinesis reader: from now on the stream's writes are held.
      await t.engine.putRecords('graphql-only', records(2));
      const seqs = await storedSeqs(stream, shard!);
      // The run starts at the 4th record; after it, memory knows what follows.
      const tail = await t.engine.readShardKinesisJson(stream, shard!, { after: seqs[3]!, lowMs: 0 }, 100, MAX_BYTES);
      assert.equal(tail.count, 1);
      assert.equal(t.engine.recentRecords.hits, hits + 1, 'read from memory');
    });

    it('refuses a partition key holding U+0000, which Postgres text cannot store', async () => {
      await t.engine.catalog.create({ name: 'nul', shardCount: 1 });
      await rejectsWith(t.engine.putRecords('nul', [{ partitionKey: 'a\u0000b', data: 'QUFB' }]), 'INVALID_ARGUMENT', /records\[0\]\.partitionKey/, /U\+0000/);
    });
  });
}

describe('recent records in memory', () => {
  const rows = (n: number, data = 'QUFB'): PendingRecord[] =>
    Array.from({ length: n }, (_, i) => ({ shardKey: 1, partitionKey: `k${i}`, dataBase64: data, sizeBytes: 3 + `k${i}`.length }));
  const count = (n: number) => async () => n;
  const NOW = 1_800_000_000_000; // ms
  const at = (msAgo: number) => (NOW - msAgo) * 1000; // µs

  it('applies lowMs, and writes timestamps and base64 as Postgres would', async () => {
    const recent = new RecentRecords(1 << 20);
    recent.add(1, 1, [10n, 11n], rows(2, 'QR=='), at(60_000));
    recent.add(1, 3, [12n, 13n], rows(2), at(1_000));
    const read = await recent.read(1, { after: -1n, lowMs: NOW - 30_000 }, 10, 1 << 20, NOW, count(4));
    assert.ok(read);
    const records = JSON.parse(`[${read.recordsJson.join(',')}]`) as { SequenceNumber: string; ApproximateArrivalTimestamp: number }[];
    assert.deepEqual(records.map((r) => BigInt(r.SequenceNumber) - 10n ** 20n), [12n, 13n]);
    assert.equal(records[0]!.ApproximateArrivalTimestamp, (NOW - 1_000) / 1000, 'epoch seconds');
    const all = await recent.read(1, { after: -1n, lowMs: 0 }, 10, 1 << 20, NOW, count(4));
    assert.match(String(all!.recordsJson[0]!), /"Data":"QQ=="/, 'canonical base64');
    assert.match(String(all!.recordsJson[0]!), /"ApproximateArrivalTimestamp":1799999940\.000,/);
  });

  it('leaves records that retention may have removed to Postgres', async () => {
    const recent = new RecentRecords(1 << 20);
    recent.add(1, 1, [10n], rows(1), at(24 * 3_600_000));
    recent.add(1, 2, [11n], rows(1), at(3_600_000));
    assert.equal(await recent.read(1, { after: -1n, lowMs: 0 }, 10, 1 << 20, NOW, count(2)), undefined, 'older than 23 h');
    assert.equal((await recent.read(1, { after: 10n, lowMs: 0 }, 10, 1 << 20, NOW, count(2)))?.count, 1);
  });

  it('does not answer what it cannot know', async () => {
    const recent = new RecentRecords(1 << 20);
    recent.add(1, 5, [50n, 51n], rows(2), at(0));
    // Starts past ordinal 1 and holds nothing at or before the position: records may precede.
    assert.equal(await recent.read(1, { after: -1n, lowMs: 0 }, 10, 1 << 20, NOW, count(6)), undefined);
    // Reaches the end of what is held while the shard has more.
    assert.equal(await recent.read(1, { after: 50n, lowMs: 0 }, 10, 1 << 20, NOW, count(7)), undefined);
    assert.equal((await recent.read(1, { after: 50n, lowMs: 0 }, 10, 1 << 20, NOW, count(6)))?.count, 1);
    // A gap in the ordinals starts a new run.
    recent.add(1, 9, [90n], rows(1), at(0));
    assert.equal(await recent.read(1, { after: 50n, lowMs: 0 }, 10, 1 << 20, NOW, count(9)), undefined);
    assert.equal((await recent.read(1, { after: 90n, lowMs: 0 }, 10, 1 << 20, NOW, count(9)))?.count, 0);
    assert.equal(await recent.read(1, { after: 90n, lowMs: 0 }, 10, 1 << 20, NOW, count(10)), undefined, 'a poll past what is held, with more written');
    assert.equal(await recent.read(2, { after: 0n, lowMs: 0 }, 10, 1 << 20, NOW, count(0)), undefined, 'a shard never written here');
  });

  it('holds a stream for WANTED_MS after its last Kinesis call', () => {
    const recent = new RecentRecords(1 << 20);
    assert.equal(recent.wants(7, NOW), false);
    recent.want(7, NOW);
    assert.equal(recent.wants(7, NOW + WANTED_MS), true);
    assert.equal(recent.wants(7, NOW + WANTED_MS + 1), false);
    assert.equal(new RecentRecords(0).wants((new RecentRecords(0).want(7, NOW), 7), NOW), false, 'a zero budget holds nothing');
  });

  it('keeps what it tracks bounded through restarts and evictions', () => {
    const recent = new RecentRecords(20_000);
    let ordinal = 1;
    let seq = 1n;
    for (let i = 0; i < 3000; i++) {
      // Every other statement follows a gap (another writer's rows), restarting the run.
      if (i % 2 === 0) ordinal += 3;
      recent.add(1 + (i % 3), ordinal, [seq, seq + 1n], rows(2, 'A'.repeat(400)), at(0));
      ordinal += 2;
      seq += 5n;
    }
    assert.ok(recent.trackedChunks <= 2 * (20_000 / 800) + 64, `${recent.trackedChunks} chunks tracked`);
  });
});
