/**
 * ShardAppender: concurrent appends to one shard share a statement, each keeping its rows
 * contiguous and in order; a statement's failure reaches every append in it and nothing else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { type PendingRecord, ShardMovedError } from '../engine/records/appendRecords.ts';
import { RecentRecords } from '../engine/records/recentRecords.ts';
import { COMBINE_LIMITS, ShardAppender } from '../engine/records/shardAppender.ts';
import { type TestEngine, b64, backends, openTestEngine } from './harness.ts';

for (const backend of backends) {
  describe(`shard appender (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend);
    });
    after(() => t.close());

    /** The streams' ids only decide what RecentRecords holds: every append here says the same. */
    const STREAM = 1;
    const openShard = async (name: string) => {
      const stream = await t.engine.catalog.create({ name, shardCount: 1 });
      const [shard] = await t.engine.catalog.shards(stream, 'OPEN');
      return shard!;
    };
    const rowsOf = (shardKey: number, tag: string, n: number): PendingRecord[] =>
      Array.from({ length: n }, (_, i) => {
        const data = b64(`${tag}/${i}`);
        return { shardKey, partitionKey: tag, dataBase64: data, sizeBytes: Buffer.byteLength(`${tag}/${i}`) + tag.length };
      });
    const stored = (shardKey: number) =>
      t.engine.handle.query<{ seq: string; ordinal: string; partition_key: string; data: string }>(sql`
        select seq::text, ordinal::text, partition_key, encode(data, 'escape') as data
          from records where shard_key = ${shardKey} order by seq`);

    it('combines concurrent appends into fewer statements; each keeps its rows together and in order', async () => {
      const shard = await openShard('combined');
      const recent = new RecentRecords(1 << 24);
      recent.want(STREAM);
      const appender = new ShardAppender(t.engine.handle, COMBINE_LIMITS, recent);
      const appends = Array.from({ length: 12 }, (_, a) => rowsOf(shard.key, `a${a}`, 1 + (a % 5) * 7));
      let heldWhenResolved = 0;
      const results = await Promise.all(appends.map((rows) => appender.append(STREAM, rows).then(async (seqs) => {
        // Held in memory before the caller hears of its rows: a one-record page at the first of
        // them is answered from memory (with more rows after it, it never needs the count).
        if (seqs.length > 1) {
          const read = await recent.read(shard.key, { after: seqs[0]! - 1n, lowMs: 0 }, 1, 1 << 20, Date.now(), async () => -1);
          if (read?.count === 1) heldWhenResolved++;
        }
        return seqs;
      })));
      assert.equal(heldWhenResolved, appends.filter((rows) => rows.length > 1).length);
      assert.ok(appender.statements < appends.length, `${appender.statements} statements for ${appends.length} appends`);
      assert.ok(appender.statements >= 2, 'the first append does not wait for the others');

      const rows = await stored(shard.key);
      assert.equal(rows.length, appends.flat().length, 'every row stored once');
      assert.deepEqual(rows.map((r) => Number(r.ordinal)), rows.map((_, i) => i + 1), 'dense ordinals in sequence order');
      const bySeq = new Map(rows.map((r) => [r.seq, r]));
      appends.forEach((rowsIn, a) => {
        const seqs = results[a]!;
        assert.equal(seqs.length, rowsIn.length, `append ${a}: a sequence number per row`);
        seqs.forEach((seq, i) => {
          const row = bySeq.get(seq.toString());
          assert.ok(row, `append ${a} row ${i} stored under its sequence number`);
          assert.equal(row.partition_key, `a${a}`);
          assert.equal(row.data, `a${a}/${i}`);
        });
        // Contiguous: no other append's row between this append's first and last.
        const ordinals = seqs.map((seq) => Number(bySeq.get(seq.toString())!.ordinal));
        assert.deepEqual(ordinals, ordinals.map((_, i) => ordinals[0]! + i), `append ${a} contiguous`);
        if (a > 0) assert.ok(results[a - 1]![0]! < seqs[0]!, `append ${a - 1} before append ${a}: in the order they came`);
      });
    });

    it('keeps a combined statement within its row limit', async () => {
      const shard = await openShard('limited');
      const appender = new ShardAppender(t.engine.handle, { maxRows: 5, maxChars: 1 << 20 });
      await Promise.all(Array.from({ length: 6 }, (_, a) => appender.append(STREAM, rowsOf(shard.key, `l${a}`, 3))));
      // The first runs alone; the five queued behind it can only go one by one (3 + 3 > 5).
      assert.equal(appender.statements, 6);
      assert.equal((await stored(shard.key)).length, 18);
    });

    it('when Postgres refuses one append\'s value, fails that append alone', async () => {
      const shard = await openShard('refused');
      const appender = new ShardAppender(t.engine.handle);
      const appends = [rowsOf(shard.key, 'ok0', 2), rowsOf(shard.key, 'bad\u0000key', 1), rowsOf(shard.key, 'ok2', 2), rowsOf(shard.key, 'ok3', 1)];
      const outcomes = await Promise.allSettled(appends.map((rows) => appender.append(STREAM, rows)));
      assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      assert.deepEqual([...new Set((await stored(shard.key)).map((r) => r.partition_key))], ['ok0', 'ok2', 'ok3']);
    });

    it('fails every append of a statement whose shard closed, and only those', async () => {
      const shard = await openShard('closing');
      const other = await openShard('staying');
      const appender = new ShardAppender(t.engine.handle);
      await appender.append(STREAM, rowsOf(shard.key, 'before', 2));
      await t.engine.handle.query(sql`update shards set closed_at = now(), ending_seq = 0 where key = ${shard.key}`);
      const outcomes = await Promise.allSettled([
        ...Array.from({ length: 4 }, (_, a) => appender.append(STREAM, rowsOf(shard.key, `c${a}`, 3))),
        appender.append(STREAM, rowsOf(other.key, 'other', 3)),
      ]);
      for (const outcome of outcomes.slice(0, 4)) {
        assert.equal(outcome.status, 'rejected');
        assert.ok((outcome as PromiseRejectedResult).reason instanceof ShardMovedError);
      }
      assert.equal(outcomes[4]!.status, 'fulfilled', 'another shard is not affected');
      assert.deepEqual((await stored(shard.key)).map((r) => r.partition_key), ['before', 'before'], 'nothing written to the closed shard');
      // The appender is idle again: a later append to an open shard goes through.
      assert.equal((await appender.append(STREAM, rowsOf(other.key, 'later', 1))).length, 1);
    });
  });
}
