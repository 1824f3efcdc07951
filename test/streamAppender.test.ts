/**
 * StreamAppender: concurrent appends to one stream share a statement, each keeping its rows
 * contiguous and in order in each shard; a statement's failure reaches every append in it and
 * nothing else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { randomBytes } from 'node:crypto';
import { COPY_MIN_ROWS, type PendingRecord, ShardMovedError, appendRecordsPlaced } from '../engine/records/appendRecords.ts';
import { RecentRecords } from '../engine/records/recentRecords.ts';
import { COMBINE_LIMITS, StreamAppender } from '../engine/records/streamAppender.ts';
import { type TestEngine, b64, backends, bounded, openTestEngine, waitFor } from './harness.ts';

for (const backend of backends) {
  describe(`stream appender (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend);
    });
    after(() => t.close());

    /** Appends of a row or so, and from COPY_MIN_ROWS (a binary COPY on Postgres, recordsCopy.ts). */
    const SIZES = [['small', 1], ['COPY-sized', COPY_MIN_ROWS]] as const;
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
          from records where shard_key = ${shardKey} order by records.seq`); // the number, not its text

    // COPY-sized appends also come one by one, so that some arrive while a statement commits
    // and start beside it.
    for (const [size, per, spaced] of [['small', 1, false], ['COPY-sized, arriving one by one', COPY_MIN_ROWS, true]] as const) it(`combines concurrent appends into fewer statements; each keeps its rows together and in order (${size})`, async () => {
      const shard = await openShard(`combined-${per}`);
      const recent = new RecentRecords(1 << 24);
      recent.want(STREAM);
      const appender = new StreamAppender(t.engine.handle, COMBINE_LIMITS, recent);
      const appends = Array.from({ length: 12 }, (_, a) => rowsOf(shard.key, `a${a}`, per * (1 + (a % 5) * 7)));
      let heldWhenResolved = 0;
      const pending: Promise<bigint[]>[] = [];
      for (const rows of appends) {
        pending.push(appender.append(STREAM, rows));
        if (spaced) await new Promise((resolve) => setImmediate(resolve));
      }
      const results = await Promise.all(pending.map((appended) => appended.then(async (seqs) => {
        // Held in memory before the caller hears of its rows: a one-record page at the first of
        // them is answered from memory (with more rows after it, it never needs the count).
        if (seqs.length > 1) {
          const read = await recent.read(shard.key, { after: seqs[0]! - 1n, lowMs: 0 }, 1, 1 << 20, Date.now(), async () => -1);
          if (read?.count === 1) heldWhenResolved++;
        }
        return seqs;
      })));
      assert.equal(heldWhenResolved, appends.filter((rows) => rows.length > 1).length);
      // (Spaced, each may have its statement to itself: PGlite answers before the next arrives.)
      if (!spaced) assert.ok(appender.statements < appends.length, `${appender.statements} statements for ${appends.length} appends`);
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

    it('writes an append to several shards of a stream in one statement, in order in each shard', async () => {
      const stream = await t.engine.catalog.create({ name: 'spread', shardCount: 3 });
      const shards = await t.engine.catalog.shards(stream, 'OPEN');
      const recent = new RecentRecords(1 << 24);
      recent.want(stream.id);
      const appender = new StreamAppender(t.engine.handle, COMBINE_LIMITS, recent);
      // Two calls at once, each with rows for every shard, interleaved; COPY-sized and small.
      const callRows = (tag: string, n: number) => Array.from({ length: n }, (_, i) => {
        const shardKey = shards[i % shards.length]!.key;
        return { shardKey, partitionKey: `${tag}`, dataBase64: b64(`${tag}/${i}`), sizeBytes: 8 };
      });
      const calls = [callRows('x', 3 * COPY_MIN_ROWS), callRows('y', 5)];
      const results = await Promise.all(calls.map((rows) => appender.append(stream.id, rows)));
      assert.equal(appender.statements, 2, 'one statement per call (the second waited for the first)');
      for (const shard of shards) {
        const rows = await stored(shard.key);
        assert.deepEqual(rows.map((r) => Number(r.ordinal)), rows.map((_, i) => i + 1), `${shard.shardId}: dense ordinals`);
        const expected = calls.flatMap((rowsIn, c) => rowsIn.flatMap((row, i) => (row.shardKey === shard.key
          ? [{ seq: results[c]![i]!.toString(), data: `${row.partitionKey}/${i}` }] : [])));
        assert.deepEqual(rows.map((r) => ({ seq: r.seq, data: r.data })), expected, `${shard.shardId}: the calls' rows in order`);
        // Each shard's rows are held in memory for tail reads, with the same pages.
        const read = await recent.read(shard.key, { after: -1n, lowMs: 0 }, 10_000, 1 << 24, Date.now(), async () => rows.length);
        assert.equal(read?.count, rows.length, `${shard.shardId}: every row held`);
      }
    });

    for (const [size, per] of SIZES) {
      it(`refuses a write to several shards whole when one of them has closed (${size})`, async () => {
        const stream = await t.engine.catalog.create({ name: `half-closed-${per}`, shardCount: 2 });
        const [open, closing] = await t.engine.catalog.shards(stream, 'OPEN');
        await t.engine.handle.query(sql`update shards set closed_at = now(), ending_seq = 0 where key = ${closing!.key}`);
        const counts = () => t.engine.handle.query<{ key: string; record_count: string }>(sql`
          select key::text, record_count::text from shards where stream_id = ${stream.id} order by key`);
        const before = await counts();
        await assert.rejects(appendRecordsPlaced(t.engine.handle, undefined, [...rowsOf(open!.key, 'o', per), ...rowsOf(closing!.key, 'c', per)]),
          ShardMovedError);
        assert.deepEqual(await counts(), before, 'no shard count moved');
        assert.equal((await stored(open!.key)).length, 0, 'nothing written to the open shard');
      });
    }

    // Two connections are needed to deadlock; PGlite has one.
    if (backend.name === 'postgres') {
      for (const [size, per] of SIZES) {
        it(`an append that loses a deadlock runs again and is written once (${size})`, async () => {
          const stream = await t.engine.catalog.create({ name: `deadlock-${per}`, shardCount: 2 });
          const [first, second] = (await t.engine.catalog.shards(stream, 'OPEN')).sort((a, b) => a.key - b.key);
          const rows = [...rowsOf(first!.key, 'one', per), ...rowsOf(second!.key, 'two', per)];
          let release!: () => void;
          const released = new Promise<void>((resolve) => (release = resolve));
          let holds!: () => void;
          const holding = new Promise<void>((resolve) => (holds = resolve));
          let attempts = 0;
          // Another writer locks the second shard, waits until the append holds the first and waits
          // for the second, then asks for the first: whoever waited first (the append) is aborted.
          const other = t.engine.handle.transaction(async (tx) => {
            if (++attempts > 1) return;
            await t.engine.handle.query(sql`select key from shards where key = ${second!.key} for update`, tx);
            holds();
            await released;
            await t.engine.handle.query(sql`select key from shards where key = ${first!.key} for update`, tx);
          });
          await bounded(holding, 'the other writer holding the second shard');
          const append = appendRecordsPlaced(t.engine.handle, undefined, rows);
          await waitFor(async () => (await t.engine.handle.query<{ n: number }>(sql`
            select count(*)::int as n from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'`))[0]!.n > 0, 'the append waiting for the lock');
          release();
          const { seqs } = await bounded(append, 'the append', 20_000);
          await bounded(other, 'the other writer', 20_000);
          assert.equal(seqs.length, rows.length);
          for (const [shard, tag] of [[first!, 'one'], [second!, 'two']] as const) {
            const stored_ = await stored(shard.key);
            assert.deepEqual(stored_.map((r) => r.partition_key), Array(per).fill(tag), `${tag}: written once`);
            assert.deepEqual(stored_.map((r) => Number(r.ordinal)), stored_.map((_, i) => i + 1));
          }
        });
      }
    }

    it('keeps a combined statement within its row limit', async () => {
      const shard = await openShard('limited');
      const appender = new StreamAppender(t.engine.handle, { maxRows: 5, maxChars: 1 << 20 });
      await Promise.all(Array.from({ length: 6 }, (_, a) => appender.append(STREAM, rowsOf(shard.key, `l${a}`, 3))));
      // The first runs alone; the five queued behind it can only go one by one (3 + 3 > 5).
      assert.equal(appender.statements, 6);
      assert.equal((await stored(shard.key)).length, 18);
    });

    // From COPY_MIN_ROWS rows, Postgres takes a statement's rows as a binary COPY (recordsCopy.ts).
    for (const [size, per] of SIZES) {
      it(`when Postgres refuses one append's value, fails that append alone (${size} appends)`, async () => {
        const shard = await openShard(`refused-${per}`);
        const appender = new StreamAppender(t.engine.handle);
        const appends = [rowsOf(shard.key, 'ok0', 2 * per), rowsOf(shard.key, 'bad\u0000key', per), rowsOf(shard.key, 'ok2', 2 * per), rowsOf(shard.key, 'ok3', per)];
        const outcomes = await bounded(Promise.allSettled(appends.map((rows) => appender.append(STREAM, rows))), 'the appends');
        assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
        assert.deepEqual([...new Set((await stored(shard.key)).map((r) => r.partition_key))], ['ok0', 'ok2', 'ok3']);
        assert.equal((await stored(shard.key)).length, 5 * per);
        // The refused one alone again: nothing written, and the shard takes the next append.
        await assert.rejects(bounded(appender.append(STREAM, rowsOf(shard.key, 'bad\u0000again', per)), 'the refused append'));
        assert.equal((await appender.append(STREAM, rowsOf(shard.key, 'after', per))).length, per);
        const rows = await stored(shard.key);
        assert.equal(rows.length, 6 * per);
        assert.deepEqual(rows.map((r) => Number(r.ordinal)), rows.map((_, i) => i + 1), 'dense ordinals: a refused statement took none');
      });
    }

    it('stores a COPY-sized statement as it stores a small one: every column, byte for byte', async () => {
      const shard = await openShard('columns');
      const payloads = ['', 'AA==', b64('x'), randomBytes(1000).toString('base64'), Buffer.from([0, 255, 10, 92]).toString('base64')];
      const rowsFor = (tag: string, n: number): PendingRecord[] => Array.from({ length: n }, (_, i) => ({
        shardKey: shard.key,
        partitionKey: `${tag}-ключ-😀-${i}`,
        dataBase64: payloads[i % payloads.length]!,
        sizeBytes: 1000 + i,
        eventName: i % 3 === 0 ? null : `INSERT${i}`,
        eventId: i % 4 === 0 ? undefined : `id-\\-"${i}"`,
        origin: i % 2 === 0 ? null : { sequenceNumber: String(i), nested: { quote: 'a"b', unicode: 'é😀', n: i } },
      }));
      const small = rowsFor('s', COPY_MIN_ROWS - 1);
      const large = rowsFor('l', COPY_MIN_ROWS);
      const first = await appendRecordsPlaced(t.engine.handle, undefined, small);
      const second = await appendRecordsPlaced(t.engine.handle, undefined, large);
      assert.equal(second.seqs.length, large.length);
      assert.ok(second.seqs[0]! > first.seqs.at(-1)!, 'numbers keep rising');
      assert.deepEqual(second.placed.map((p) => [p.shardKey, p.ordinalBefore]), [[shard.key, small.length]]);
      const rows = await t.engine.handle.query<{
        seq: string; ordinal: string; arrived_us: string; partition_key: string; data: string; size_bytes: number;
        event_name: string | null; event_id: string | null; origin: string | null;
      }>(sql`select seq::text, ordinal::text, (extract(epoch from arrived_at) * 1000000)::int8::text as arrived_us, partition_key,
                    encode(data, 'hex') as data, size_bytes, event_name, event_id, origin::text as origin
               from records where shard_key = ${shard.key} order by seq`);
      assert.equal(rows.length, small.length + large.length);
      const written = [...small, ...large];
      const seqs = [...first.seqs, ...second.seqs];
      rows.forEach((row, i) => {
        const input = written[i]!;
        const place = i < small.length ? first.placed[0]! : second.placed[0]!;
        assert.deepEqual({ ...row, origin: row.origin === null ? null : JSON.parse(row.origin) }, {
          seq: seqs[i]!.toString(),
          ordinal: String(i + 1),
          arrived_us: String(place.arrivedUs),
          partition_key: input.partitionKey,
          data: Buffer.from(input.dataBase64, 'base64').toString('hex'),
          size_bytes: input.sizeBytes,
          event_name: input.eventName ?? null,
          event_id: input.eventId ?? null,
          origin: input.origin ?? null,
        }, `row ${i}`);
      });
    });

    for (const [size, per] of SIZES) it(`fails every append of a statement whose shard closed, and only those (${size} appends)`, async () => {
      const shard = await openShard(`closing-${per}`);
      const other = await openShard(`staying-${per}`);
      const appender = new StreamAppender(t.engine.handle);
      await appender.append(STREAM, rowsOf(shard.key, 'before', 2));
      await t.engine.handle.query(sql`update shards set closed_at = now(), ending_seq = 0 where key = ${shard.key}`);
      const outcomes = await Promise.allSettled([
        ...Array.from({ length: 4 }, (_, a) => appender.append(STREAM, rowsOf(shard.key, `c${a}`, 3 * per))),
        appender.append(STREAM, rowsOf(other.key, 'other', 3 * per)),
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
