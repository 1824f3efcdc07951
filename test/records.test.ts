/**
 * Reading KINESIS records: positions (TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT/AFTER_SEQUENCE_NUMBER),
 * pagination, page limits and cursors, and concurrent writers and readers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import type { Position, RecordPage, StoredRecord } from '../engine/records/readRecords.ts';
import type { StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine, rejectsWith } from './harness.ts';


const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const bySeq = (a: { sequenceNumber: string }, b: { sequenceNumber: string }) =>
  (BigInt(a.sequenceNumber) < BigInt(b.sequenceNumber) ? -1 : BigInt(a.sequenceNumber) > BigInt(b.sequenceNumber) ? 1 : 0);

for (const backend of backends) {
  describe(`reading records (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    type PageArgs = { shardId?: string; from?: Position; first?: number };

    /** Pages from a position (or cursor) until a page says there is no next one. */
    async function readAll(streamName: string, args: PageArgs & { after?: string } = {}): Promise<{ records: StoredRecord[]; endCursor: string; pages: number }> {
      const records: StoredRecord[] = [];
      let page: RecordPage = await t.engine.reader.page(streamName, { first: 1000, ...args });
      let pages = 1;
      for (;;) {
        records.push(...page.records.map((r) => r.record));
        if (!page.hasNextPage) return { records, endCursor: page.endCursor, pages };
        page = await t.engine.reader.page(streamName, { shardId: args.shardId, first: args.first ?? 1000, after: page.endCursor });
        pages++;
      }
    }

    async function putMany(streamName: string, count: number, prefix: string, perCall = 500) {
      const out: { partitionKey: string; data: string; shardId: string; sequenceNumber: string }[] = [];
      for (let offset = 0; offset < count; offset += perCall) {
        const records = Array.from({ length: Math.min(perCall, count - offset) }, (_, i) => ({
          partitionKey: `${prefix}-${offset + i}`, data: b64(`${prefix}-${offset + i}`),
        }));
        const result = await t.engine.putRecords(streamName, records);
        result.records.forEach((r, i) => out.push({ ...records[i]!, shardId: r.shardId!, sequenceNumber: r.sequenceNumber! }));
      }
      return out;
    }

    /** Waits (without polling the database) until the clock has moved past the given ms. */
    async function nextMillisecond(after = Date.now()) {
      while (Date.now() <= after + 1) await new Promise((r) => setTimeout(r, 1));
    }

    describe('positions', () => {
      let written: Awaited<ReturnType<typeof putMany>> = [];
      let stream: StreamInfo;
      before(async () => {
        stream = await t.engine.catalog.create({ name: 'positions', shardCount: 2 });
        // Five calls with distinct arrival milliseconds.
        for (let call = 0; call < 5; call++) {
          written.push(...await putMany('positions', 20, `call${call}`));
          await nextMillisecond();
        }
        // Arrival times on exact milliseconds, so AT_TIMESTAMP can be tested on an exact match.
        await t.engine.handle.query(sql`
          update records set arrived_at = date_trunc('milliseconds', arrived_at)
           where shard_key in (select key from shards where stream_id = ${stream.id})`);
      });

      it('TRIM_HORIZON (and no position) reads everything in sequence order', async () => {
        const all = (await readAll('positions', { from: { type: 'TRIM_HORIZON' } })).records;
        assert.deepEqual(all.map((r) => r.sequenceNumber), [...written].sort(bySeq).map((r) => r.sequenceNumber));
        const implicit = (await readAll('positions')).records;
        assert.deepEqual(implicit.map((r) => r.sequenceNumber), all.map((r) => r.sequenceNumber));
        for (const r of all) {
          const w = written.find((x) => x.sequenceNumber === r.sequenceNumber)!;
          assert.equal(r.partitionKey, w.partitionKey);
          assert.equal(r.data, w.data);
          assert.equal(r.shardId, w.shardId);
        }
        // One shard only.
        const shard0 = (await readAll('positions', { shardId: 'shardId-000000000000' })).records;
        assert.deepEqual(shard0.map((r) => r.sequenceNumber), written.filter((w) => w.shardId === 'shardId-000000000000').map((w) => w.sequenceNumber));
        assert.ok(shard0.length > 0 && shard0.length < written.length);
      });

      it('LATEST gives an empty page whose cursor then yields only later records', async () => {
        for (const shardId of [undefined, 'shardId-000000000001']) {
          const page = await t.engine.reader.page('positions', { shardId, from: { type: 'LATEST' } });
          assert.deepEqual(page.records, []);
          assert.equal(page.hasNextPage, false);
          const again = await t.engine.reader.page('positions', { shardId, after: page.endCursor });
          assert.deepEqual(again.records, [], 'nothing new yet');
          const later = await putMany('positions', 30, `latest-${shardId ?? 'all'}`);
          written.push(...later);
          const read = (await readAll('positions', { shardId, after: page.endCursor })).records;
          const expected = later.filter((w) => shardId === undefined || w.shardId === shardId).sort(bySeq);
          assert.ok(expected.length > 0);
          assert.deepEqual(read.map((r) => r.sequenceNumber), expected.map((w) => w.sequenceNumber));
        }
      });

      it('LATEST on an empty stream and on an empty shard still sees the first record', async () => {
        await t.engine.catalog.create({ name: 'latest-empty', shardCount: 2 });
        const page = await t.engine.reader.page('latest-empty', { from: { type: 'LATEST' } });
        assert.deepEqual(page.records, []);
        const later = await putMany('latest-empty', 10, 'first');
        const read = (await readAll('latest-empty', { after: page.endCursor })).records;
        assert.deepEqual(read.map((r) => r.sequenceNumber), later.sort(bySeq).map((w) => w.sequenceNumber));
      });

      it('AT_TIMESTAMP starts at the first record with arrival ≥ the timestamp, inclusive of an exact ms match', async () => {
        const all = (await readAll('positions')).records;
        const times = [...new Set(all.map((r) => r.approximateArrivalTimestamp.getTime()))].sort((a, b) => a - b);
        assert.ok(times.length >= 5, `distinct arrival times: ${times.length}`);
        for (const ms of [times[0]! - 1, times[0]!, times[2]!, times[2]! + 1, times.at(-1)!]) {
          const expected = all.filter((r) => r.approximateArrivalTimestamp.getTime() >= ms);
          const read = (await readAll('positions', { from: { type: 'AT_TIMESTAMP', timestamp: new Date(ms) } })).records;
          assert.deepEqual(read.map((r) => r.sequenceNumber), expected.map((r) => r.sequenceNumber), `AT_TIMESTAMP ${ms}`);
          for (const shardId of ['shardId-000000000000', 'shardId-000000000001']) {
            const one = (await readAll('positions', { shardId, from: { type: 'AT_TIMESTAMP', timestamp: new Date(ms) } })).records;
            assert.deepEqual(one.map((r) => r.sequenceNumber), expected.filter((r) => r.shardId === shardId).map((r) => r.sequenceNumber));
          }
        }
        // The exact millisecond of a stored record includes that record.
        const middle = all[Math.floor(all.length / 2)]!;
        const read = (await t.engine.reader.page('positions', { shardId: middle.shardId, from: { type: 'AT_TIMESTAMP', timestamp: middle.approximateArrivalTimestamp } })).records;
        assert.ok(read.some((r) => r.record.sequenceNumber === middle.sequenceNumber));
        // After the newest record: nothing now, later records after.
        const past = await t.engine.reader.page('positions', { from: { type: 'AT_TIMESTAMP', timestamp: new Date(times.at(-1)! + 1) } });
        assert.deepEqual(past.records, []);
        await nextMillisecond(times.at(-1)!);
        const later = await putMany('positions', 10, 'after-ts');
        written.push(...later);
        const next = (await readAll('positions', { after: past.endCursor })).records;
        assert.deepEqual(next.map((r) => r.sequenceNumber), later.sort(bySeq).map((w) => w.sequenceNumber));
        await rejectsWith(t.engine.reader.page('positions', { from: { type: 'AT_TIMESTAMP' } }), 'INVALID_ARGUMENT', /timestamp/);
        for (const bad of [new Date(Number.NaN), new Date(8.64e15), new Date(-8.64e15)]) {
          await rejectsWith(t.engine.reader.page('positions', { from: { type: 'AT_TIMESTAMP', timestamp: bad } }), 'INVALID_ARGUMENT', /timestamp/);
        }
      });

      it('AT_SEQUENCE_NUMBER includes that record, AFTER_SEQUENCE_NUMBER excludes it', async () => {
        const all = (await readAll('positions')).records;
        for (const shardId of ['shardId-000000000000', 'shardId-000000000001']) {
          const inShard = all.filter((r) => r.shardId === shardId);
          const pick = inShard[7]!;
          const at = (await readAll('positions', { shardId, from: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: pick.sequenceNumber } })).records;
          assert.deepEqual(at.map((r) => r.sequenceNumber), inShard.slice(7).map((r) => r.sequenceNumber));
          const afterPick = (await readAll('positions', { shardId, from: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: pick.sequenceNumber } })).records;
          assert.deepEqual(afterPick.map((r) => r.sequenceNumber), inShard.slice(8).map((r) => r.sequenceNumber));
          // The last record: AT gives it alone, AFTER nothing.
          const last = inShard.at(-1)!;
          const atLast = await t.engine.reader.page('positions', { shardId, from: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber } });
          assert.deepEqual(atLast.records.map((r) => r.record.sequenceNumber), [last.sequenceNumber]);
          const afterLast = await t.engine.reader.page('positions', { shardId, from: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber } });
          assert.deepEqual(afterLast.records, []);
        }
        // Stream-wide, sequence numbers compare across shards.
        const pick = all[30]!;
        const at = (await readAll('positions', { from: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: pick.sequenceNumber } })).records;
        assert.deepEqual(at.map((r) => r.sequenceNumber), all.slice(30).map((r) => r.sequenceNumber));
        const afterPick = (await readAll('positions', { from: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: pick.sequenceNumber } })).records;
        assert.deepEqual(afterPick.map((r) => r.sequenceNumber), all.slice(31).map((r) => r.sequenceNumber));
      });

      it("AT/AFTER_SEQUENCE_NUMBER with the shard's startingSequenceNumber read the whole shard", async () => {
        const shards = await t.engine.catalog.shards(stream);
        const all = (await readAll('positions')).records;
        for (const s of shards) {
          const expected = all.filter((r) => r.shardId === s.shardId).map((r) => r.sequenceNumber);
          for (const type of ['AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'] as const) {
            const read = (await readAll('positions', { shardId: s.shardId, from: { type, sequenceNumber: s.startingSequenceNumber } })).records;
            assert.deepEqual(read.map((r) => r.sequenceNumber), expected, `${type} ${s.shardId}`);
          }
        }
      });

      it('rejects bad sequence numbers and positions with INVALID_ARGUMENT', async () => {
        for (const sequenceNumber of ['abc', '-1', '12', '1'.repeat(130), '']) {
          await rejectsWith(t.engine.reader.page('positions', { from: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber } }), 'INVALID_ARGUMENT', /sequenceNumber/);
          await rejectsWith(t.engine.reader.page('positions', { from: { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber } }), 'INVALID_ARGUMENT', /sequenceNumber/);
        }
        await rejectsWith(t.engine.reader.page('positions', { from: { type: 'AT_SEQUENCE_NUMBER' } }), 'INVALID_ARGUMENT', /sequenceNumber/);
        await rejectsWith(t.engine.reader.page('positions', { from: { type: 'SOMEWHERE' as never } }), 'INVALID_ARGUMENT', /from\.type/);
        await rejectsWith(t.engine.reader.page('positions', { shardId: 'shardId-000000000042' }), 'SHARD_NOT_FOUND', /shardId-000000000042/);
      });
    });

    describe('pages', () => {
      it('pages through thousands of records across 4 shards without gaps or repeats (first = 7 and 1000)', async () => {
        await t.engine.catalog.create({ name: 'paging', shardCount: 4 });
        const written = await putMany('paging', 3000, 'p');
        const expected = [...written].sort(bySeq).map((w) => w.sequenceNumber);
        for (const first of [7, 1000]) {
          const seen: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          for (;;) {
            const page = await t.engine.reader.page('paging', { first, after: cursor });
            pages++;
            assert.ok(page.records.length <= first);
            if (page.hasNextPage) assert.equal(page.records.length, first, 'a page with a next page is full');
            seen.push(...page.records.map((r) => r.record.sequenceNumber));
            // Each record's cursor resumes right after it.
            if (page.records.length > 1) {
              const resumed = await t.engine.reader.page('paging', { first: 1, after: page.records[0]!.cursor });
              assert.equal(resumed.records[0]!.record.sequenceNumber, page.records[1]!.record.sequenceNumber);
            }
            cursor = page.endCursor;
            if (!page.hasNextPage) break;
          }
          assert.equal(pages, Math.ceil(3000 / first));
          assert.deepEqual(seen, expected, `first = ${first}`);
          // The last cursor has nothing more.
          assert.deepEqual((await t.engine.reader.page('paging', { first, after: cursor })).records, []);
        }
        // Per shard with a small page size: the shard's records in order.
        for (const shardId of ['shardId-000000000000', 'shardId-000000000003']) {
          const read = (await readAll('paging', { shardId, first: 13 })).records.map((r) => r.sequenceNumber);
          assert.deepEqual(read, written.filter((w) => w.shardId === shardId).map((w) => w.sequenceNumber));
        }
      });

      it('a stream-wide cursor can continue a one-shard read', async () => {
        // Sequence numbers of one call need not alternate between shards: take a page that surely holds some of shard 2.
        const page = await t.engine.reader.page('paging', { first: 600 });
        const last = page.records.filter((r) => r.record.shardId === 'shardId-000000000002').at(-1)!;
        assert.ok(last);
        const rest = (await readAll('paging', { shardId: 'shardId-000000000002', after: page.endCursor })).records;
        const all = (await readAll('paging', { shardId: 'shardId-000000000002' })).records;
        const index = all.findIndex((r) => r.sequenceNumber === last.record.sequenceNumber);
        assert.deepEqual(rest.map((r) => r.sequenceNumber), all.slice(index + 1).map((r) => r.sequenceNumber));
      });

      it('limits first to 1..1000 (0 → INVALID_ARGUMENT, 1001 → LIMIT_EXCEEDED) and defaults to 100', async () => {
        await rejectsWith(t.engine.reader.page('paging', { first: 0 }), 'INVALID_ARGUMENT', /first/, /1000/);
        await rejectsWith(t.engine.reader.page('paging', { first: -3 }), 'INVALID_ARGUMENT', /first/);
        await rejectsWith(t.engine.reader.page('paging', { first: 2.5 }), 'INVALID_ARGUMENT', /first/);
        await rejectsWith(t.engine.reader.page('paging', { first: 1001 }), 'LIMIT_EXCEEDED', /first/, /1000/);
        assert.equal((await t.engine.reader.page('paging', { first: 1000 })).records.length, 1000);
        assert.equal((await t.engine.reader.page('paging', { first: 1 })).records.length, 1);
        assert.equal((await t.engine.reader.page('paging', {})).records.length, 100);
      });

      it('rejects a garbage or forged `after` cursor with INVALID_ARGUMENT', async () => {
        const forged = [
          'garbage', '', '!!!', cursorOf({ v: 2, p: [] }), cursorOf({ v: 1 }), cursorOf({ v: 1, p: 'x' }), cursorOf([1, 2]),
          cursorOf({ v: 1, p: [[0, 'x', 0]] }), cursorOf({ v: 1, p: [['a', '1', 0]] }), cursorOf({ v: 1, p: [[0, '1', '0']] }),
          cursorOf({ v: 1, p: [5] }), cursorOf({ v: 1, p: [null] }),
          // Out of the range of the stored types.
          cursorOf({ v: 1, p: [[0, '99999999999999999999999', 0]] }),
          cursorOf({ v: 1, p: [[0, '1', 1e300]] }),
          cursorOf({ v: 1, p: [[0, '1', -1e300]] }),
          cursorOf({ v: 1, p: [[0, '-2', 0]] }),
          cursorOf({ v: 1, p: [[0, 1, 0]] }),
        ];
        for (const after of forged) {
          await rejectsWith(t.engine.reader.page('paging', { after }), 'INVALID_ARGUMENT', /after/);
        }
      });
    });

    describe('concurrency', () => {
      it('concurrent writers: unique sequence numbers, nothing lost, per-shard order = sequence order', async () => {
        await t.engine.catalog.create({ name: 'concurrent', shardCount: 2 });
        const clients = 6;
        const calls = 15;
        const results = await Promise.all(Array.from({ length: clients }, async (_, c) => {
          const mine: { partitionKey: string; data: string; shardId: string; sequenceNumber: string; call: number }[] = [];
          for (let call = 0; call < calls; call++) {
            // 25 records per call over 3 partition keys of this client, so calls hit both shards.
            const records = Array.from({ length: 25 }, (_, i) => ({ partitionKey: `c${c}-k${i % 3}`, data: b64(`${c}/${call}/${i}`) }));
            const result = await t.engine.putRecords('concurrent', records);
            assert.equal(result.failedRecordCount, 0);
            result.records.forEach((r, i) => mine.push({ ...records[i]!, shardId: r.shardId!, sequenceNumber: r.sequenceNumber!, call }));
          }
          return mine;
        }));
        const written = results.flat();
        assert.equal(written.length, clients * calls * 25);
        assert.equal(new Set(written.map((w) => w.sequenceNumber)).size, written.length, 'no duplicate sequence numbers');

        const stored = (await readAll('concurrent')).records;
        assert.equal(stored.length, written.length, 'nothing lost, nothing extra');
        const storedBySeq = new Map(stored.map((r) => [r.sequenceNumber, r]));
        for (const w of written) {
          const r = storedBySeq.get(w.sequenceNumber);
          assert.ok(r, `${w.sequenceNumber} read back`);
          assert.equal(r.data, w.data);
          assert.equal(r.partitionKey, w.partitionKey);
          assert.equal(r.shardId, w.shardId);
        }
        for (const shardId of ['shardId-000000000000', 'shardId-000000000001']) {
          const inShard = (await readAll('concurrent', { shardId, first: 97 })).records;
          const expected = written.filter((w) => w.shardId === shardId).sort(bySeq);
          assert.deepEqual(inShard.map((r) => r.sequenceNumber), expected.map((w) => w.sequenceNumber), shardId);
          // Arrival never goes backwards along a shard.
          for (let i = 1; i < inShard.length; i++) {
            assert.ok(inShard[i]!.approximateArrivalTimestamp >= inShard[i - 1]!.approximateArrivalTimestamp);
          }
          // Each client's records of one partition key appear in the order that client wrote them.
          for (let c = 0; c < clients; c++) {
            for (let k = 0; k < 3; k++) {
              const key = `c${c}-k${k}`;
              const data = inShard.filter((r) => r.partitionKey === key).map((r) => r.data);
              assert.deepEqual(data, written.filter((w) => w.partitionKey === key && w.shardId === shardId).map((w) => w.data), key);
            }
          }
        }
      });

      it('a reader paging while writers write never misses or repeats a record', async () => {
        await t.engine.catalog.create({ name: 'tailing', shardCount: 2 });
        const written: string[] = [];
        let writersDone = false;
        const writer = async (c: number) => {
          for (let call = 0; call < 20; call++) {
            const records = Array.from({ length: 10 }, (_, i) => ({ partitionKey: `t${c}-${call}-${i}`, data: b64(`${c}/${call}/${i}`) }));
            const result = await t.engine.putRecords('tailing', records);
            written.push(...result.records.map((r) => r.sequenceNumber!));
            await new Promise((r) => setImmediate(r)); // give the reader turns on PGlite, which runs one statement at a time
          }
        };
        const seen: string[] = [];
        let cursor: string | undefined;
        let pagesWhileWriting = 0;
        // Start at LATEST before anything is written: every record is "later".
        cursor = (await t.engine.reader.page('tailing', { from: { type: 'LATEST' } })).endCursor;
        const reader = async () => {
          while (!writersDone) {
            const page = await t.engine.reader.page('tailing', { first: 17, after: cursor });
            seen.push(...page.records.map((r) => r.record.sequenceNumber));
            cursor = page.endCursor;
            pagesWhileWriting++;
            if (page.records.length === 0) await new Promise((r) => setImmediate(r));
          }
        };
        const reading = reader();
        await Promise.all([0, 1, 2, 3, 4, 5].map(writer));
        writersDone = true;
        await reading;
        const seenWhileWriting = seen.length;
        // Drain what is left after the writers finished.
        for (;;) {
          const page = await t.engine.reader.page('tailing', { first: 17, after: cursor });
          seen.push(...page.records.map((r) => r.record.sequenceNumber));
          cursor = page.endCursor;
          if (!page.hasNextPage) break;
        }
        assert.ok(pagesWhileWriting > 1 && seenWhileWriting > 0, `pages read while writing: ${pagesWhileWriting}, records seen then: ${seenWhileWriting}`);
        assert.equal(new Set(seen).size, seen.length, 'no record read twice');
        const seenSet = new Set(seen);
        const missed = written.filter((w) => !seenSet.has(w));
        assert.deepEqual(missed, [], `missed ${missed.length} of ${written.length}`);
        assert.deepEqual([...seen].sort(), [...written].sort(), 'every written record read');
      });
    });
  });
}
