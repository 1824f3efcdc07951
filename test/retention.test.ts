/**
 * Retention of KINESIS records: the trimmer's bounded deletes and whole-partition drops,
 * deleteStream purges, and retention changes taking effect on reads at once.
 *
 * Trimming takes a fake `now` some hours or days ahead; records are moved back in time with a
 * direct UPDATE where a test needs old records (Postgres moves the rows across partitions).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../engine/db.ts';
import { ensurePartitions, listPartitions, partitionName } from '../engine/records/partitions.ts';
import { RetentionTrimmer } from '../engine/records/retentionTrimmer.ts';
import type { Position, StoredRecord } from '../engine/records/readRecords.ts';
import type { StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine, rejectsWith } from './harness.ts';

const HOUR = 3600_000;
const DAY = 24 * HOUR;


for (const backend of backends) {
  describe(`retention (${backend.name})`, () => {
    /** Helpers bound to one test engine. */
    const helpers = (t: () => TestEngine) => ({
      async put(streamName: string, count: number, prefix = streamName) {
        const records = Array.from({ length: count }, (_, i) => ({ partitionKey: `${prefix}-${i}`, data: b64(`${prefix}-${i}`) }));
        const result = await t().engine.putRecords(streamName, records);
        assert.equal(result.failedRecordCount, 0);
        return result.records.map((r) => r.sequenceNumber!);
      },
      /** Rows in the records table for a stream (by id, so also after deleteStream). */
      async stored(stream: StreamInfo): Promise<number> {
        const [row] = await t().engine.handle.query<{ n: number }>(sql`
          select count(*)::int as n from records where shard_key in (select key from shards where stream_id = ${stream.id})`);
        return row!.n;
      },
      async storedByShardKeys(keys: number[]): Promise<number> {
        const [row] = await t().engine.handle.query<{ n: number }>(sql`
          select count(*)::int as n from records where shard_key = any(${sql.param(keys)}::bigint[])`);
        return row!.n;
      },
      async readAll(streamName: string, from?: Position): Promise<StoredRecord[]> {
        const out: StoredRecord[] = [];
        let page = await t().engine.reader.page(streamName, { first: 1000, from });
        for (;;) {
          out.push(...page.records.map((r) => r.record));
          if (!page.hasNextPage) return out;
          page = await t().engine.reader.page(streamName, { first: 1000, after: page.endCursor });
        }
      },
      /** Moves a stream's records back in time (across partitions). */
      async age(stream: StreamInfo, hours: number) {
        // A trim may have dropped the past days' (empty) partitions: make sure the target days exist.
        await ensurePartitions(t().engine.handle, new Date(Date.now() - (hours + 24) * HOUR), Math.ceil(hours / 24) + 2);
        await t().engine.handle.query(sql`
          update records set arrived_at = arrived_at - make_interval(hours => ${hours}::int)
           where shard_key in (select key from shards where stream_id = ${stream.id})`);
      },
      async partitions() {
        return (await listPartitions(t().engine.handle)).map((p) => p.name);
      },
    });

    describe('trimming', () => {
      let t: TestEngine;
      const h = helpers(() => t);
      const now = Date.now();
      const today = partitionName(new Date(now));
      let short: StreamInfo; // 24 h
      let long: StreamInfo; // 48 h
      let old: StreamInfo; // 24 h, records moved 3 days back
      const batch = 7;

      before(async () => {
        t = await openTestEngine(backend, { trimBatchSize: batch });
        await ensurePartitions(t.engine.handle, new Date(now - 4 * DAY), 4);
        short = await t.engine.catalog.create({ name: 'short', shardCount: 2, retentionHours: 24 });
        long = await t.engine.catalog.create({ name: 'long', shardCount: 2, retentionHours: 48 });
        old = await t.engine.catalog.create({ name: 'old', shardCount: 1, retentionHours: 24 });
        await h.put('short', 70);
        await h.put('long', 30);
        await h.put('old', 12);
        await h.age(old, 72);
      });
      after(async () => { await t.close(); });

      it('drops a whole past partition once no live record remains in it, keeping today', async () => {
        const oldPartition = partitionName(new Date(now - 72 * HOUR));
        const before = await h.partitions();
        assert.ok(before.includes(oldPartition) && before.includes(today));
        assert.equal(await h.stored(old), 12);
        // Already unreadable (older than 24 h), before any trim.
        assert.deepEqual(await h.readAll('old'), []);

        const report = await t.engine.housekeeper.trimmer.trim(new Date(now));
        const after = await h.partitions();
        assert.ok(report.droppedPartitions.includes(oldPartition), `dropped ${report.droppedPartitions.join(', ')}`);
        assert.ok(!after.includes(oldPartition));
        // Yesterday's partition stays until an hour past midnight (the drop's grace for late rows).
        const earliest = now % DAY < HOUR ? partitionName(new Date(now - DAY)) : today;
        for (const p of after) assert.ok(p >= earliest, `only today's and later partitions remain, found ${p}`);
        assert.ok(after.includes(today), "today's partition holds live records");
        assert.ok(!report.droppedPartitions.includes(today));
        assert.equal(await h.stored(old), 0);
        // The live records of today are untouched.
        assert.equal(await h.stored(short), 70);
        assert.equal(await h.stored(long), 30);
        assert.equal((await h.readAll('short')).length, 70);
        assert.equal(report.deletedRecords, 0, 'the expired records went with their partition');
      });

      it('deletes expired records in bounded batches where the partition must stay (24 h gone, 48 h kept at now + 30 h)', async () => {
        const longBefore = (await h.readAll('long')).map((r) => r.sequenceNumber);
        const report = await t.engine.housekeeper.trimmer.trim(new Date(now + 30 * HOUR));
        assert.equal(report.deletedRecords, 70, 'all 70 records of the 24 h stream, in batches of 7');
        assert.ok(!report.droppedPartitions.includes(today), 'the 48 h stream still has records in today');
        assert.ok((await h.partitions()).includes(today));
        assert.equal(await h.stored(short), 0);
        assert.equal(await h.stored(long), 30);
        assert.deepEqual((await h.readAll('long')).map((r) => r.sequenceNumber), longBefore);
        assert.equal(report.purgedStreams, 0);
        // Trimming again finds nothing more.
        const again = await t.engine.housekeeper.trimmer.trim(new Date(now + 30 * HOUR));
        assert.equal(again.deletedRecords, 0);
        assert.deepEqual(again.droppedPartitions.filter((p) => p <= today), []);
      });

      it('drops the partition when the last stream with records in it expires (now + 4 days), and writes carry on', async () => {
        const report = await t.engine.housekeeper.trimmer.trim(new Date(now + 4 * DAY));
        assert.ok(report.droppedPartitions.includes(today), `dropped ${report.droppedPartitions.join(', ')}`);
        assert.ok(!(await h.partitions()).includes(today));
        assert.equal(await h.stored(long), 0);
        assert.deepEqual(await h.readAll('long'), []);
        // A writer that finds no partition for now creates it.
        const seqs = await h.put('long', 5, 'again');
        assert.ok((await h.partitions()).includes(today));
        assert.deepEqual((await h.readAll('long')).map((r) => r.sequenceNumber).sort(), seqs.sort());
        // The streams themselves live on.
        assert.deepEqual((await t.engine.catalog.list()).map((s) => s.name), ['long', 'old', 'short']);
      });
    });

    describe('streams and retention changes', () => {
      let t: TestEngine;
      const h = helpers(() => t);
      before(async () => {
        t = await openTestEngine(backend);
        await ensurePartitions(t.engine.handle, new Date(Date.now() - 4 * DAY), 4);
      });
      after(async () => { await t.close(); });

      it('counts records behind from the oldest record still kept: expired ones are not behind', async () => {
        const stream = await t.engine.catalog.create({ name: 'lagging', shardCount: 1 });
        await h.put('lagging', 10, 'old');
        await h.age(stream, 25); // past the 24 h retention, not yet trimmed
        await h.put('lagging', 5, 'new');
        await t.engine.createFunction({ name: 'lagging-fn', url: 'http://127.0.0.1:9/' });
        const mapping = await t.engine.createMapping({ streamName: 'lagging', functionName: 'lagging-fn', startingPosition: 'TRIM_HORIZON', enabled: false });
        await t.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' }); // makes its lease, checkpoint before the first record
        const [row] = await t.engine.lag(mapping.id);
        assert.equal(row!.checkpointSequenceNumber, null);
        assert.equal(row!.recordsBehind, 5, 'the 5 kept records, not the 10 expired ones');
        assert.ok(row!.oldestUnprocessedAgeMs! < 3_600_000, `the oldest kept one is recent (${row!.oldestUnprocessedAgeMs} ms)`);
        // Trimmed here, so the other tests' trims count only their own records.
        await t.engine.deleteMapping(mapping.id);
        await t.engine.handle.query(sql`
          delete from records where shard_key in (select key from shards where stream_id = ${stream.id}) and arrived_at < now() - interval '24 hours'`);
      });

      it("deleteStream: the name is reusable at once and the old stream's records are purged", async () => {
        const first = await t.engine.catalog.create({ name: 'reused', shardCount: 2 });
        const keeper = await t.engine.catalog.create({ name: 'keeper', shardCount: 1 });
        await h.put('reused', 40, 'first');
        await h.put('keeper', 10);
        const firstKeys = (await t.engine.catalog.shards(first)).map((s) => s.key);
        assert.equal(await t.engine.catalog.delete('reused'), true);
        await rejectsWith(t.engine.putRecords('reused', [{ partitionKey: 'a', data: '' }]), 'STREAM_NOT_FOUND');
        await rejectsWith(t.engine.reader.page('reused', {}), 'STREAM_NOT_FOUND');

        const second = await t.engine.catalog.create({ name: 'reused', shardCount: 1, retentionHours: 48 });
        assert.notEqual(second.id, first.id);
        assert.equal(second.retentionHours, 48);
        assert.deepEqual(await h.readAll('reused'), [], "the new stream does not see the old one's records");
        const seqs = await h.put('reused', 6, 'second');

        const report = await t.engine.housekeeper.trimmer.trim(new Date());
        assert.equal(report.purgedStreams, 1);
        assert.equal(report.deletedRecords, 40);
        assert.equal(await h.storedByShardKeys(firstKeys), 0);
        const [rows] = await t.engine.handle.query<{ streams: number; shards: number }>(sql`
          select (select count(*)::int from streams where id = ${first.id}) as streams,
                 (select count(*)::int from shards where stream_id = ${first.id}) as shards`);
        assert.deepEqual(rows, { streams: 0, shards: 0 });
        // The new stream of that name and the other stream keep their records.
        assert.deepEqual((await h.readAll('reused')).map((r) => r.sequenceNumber), seqs);
        assert.equal(await h.stored(keeper), 10);
        // Deleting again (twice) is STREAM_NOT_FOUND the second time.
        await t.engine.catalog.delete('reused');
        await rejectsWith(t.engine.catalog.delete('reused'), 'STREAM_NOT_FOUND');
        assert.equal((await t.engine.housekeeper.trimmer.trim(new Date())).purgedStreams, 1);
        assert.equal(await h.stored(second), 0);
      });

      it('decreasing retention makes older records unreadable at once; newer ones stay', async () => {
        const stream = await t.engine.catalog.create({ name: 'shrink', shardCount: 2, retentionHours: 48 });
        const oldSeqs = await h.put('shrink', 20, 'old');
        await h.age(stream, 30);
        const newSeqs = await h.put('shrink', 8, 'new');
        const all = await h.readAll('shrink');
        assert.deepEqual(all.map((r) => r.sequenceNumber).sort(), [...oldSeqs, ...newSeqs].sort(), '30 h old records are within 48 h');
        const cursor = (await t.engine.reader.page('shrink', { first: 1 })).endCursor;

        await t.engine.catalog.updateRetention('shrink', 24);
        const sorted = (seqs: string[]) => [...seqs].sort();
        assert.deepEqual(sorted((await h.readAll('shrink')).map((r) => r.sequenceNumber)), sorted(newSeqs));
        // Every way in skips them: positions, sequence numbers, timestamps, and an earlier cursor.
        assert.deepEqual(sorted((await h.readAll('shrink', { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: oldSeqs[0]! })).map((r) => r.sequenceNumber)), sorted(newSeqs));
        assert.deepEqual(sorted((await h.readAll('shrink', { type: 'AT_TIMESTAMP', timestamp: new Date(Date.now() - 40 * HOUR) })).map((r) => r.sequenceNumber)), sorted(newSeqs));
        const fromCursor = await t.engine.reader.page('shrink', { first: 1000, after: cursor });
        assert.deepEqual(sorted(fromCursor.records.map((r) => r.record.sequenceNumber)), sorted(newSeqs));
        for (const s of await t.engine.catalog.shards(stream)) {
          const page = await t.engine.reader.page('shrink', { shardId: s.shardId, first: 1000 });
          for (const r of page.records) assert.ok(newSeqs.includes(r.record.sequenceNumber));
        }
      });

      it('increasing retention again does not bring back records that expired under the shorter one', async () => {
        const stream = await t.engine.catalog.create({ name: 'regrow', shardCount: 1, retentionHours: 48 });
        await h.put('regrow', 10, 'old');
        await h.age(stream, 30);
        const newSeqs = await h.put('regrow', 3, 'new');
        await t.engine.catalog.updateRetention('regrow', 24);
        assert.deepEqual((await h.readAll('regrow')).map((r) => r.sequenceNumber), newSeqs);
        await t.engine.catalog.updateRetention('regrow', 72);
        assert.deepEqual((await h.readAll('regrow')).map((r) => r.sequenceNumber), newSeqs);
      });

      it('closed shards drop out of listings once their data has aged past retention', async () => {
        const stream = await t.engine.catalog.create({ name: 'expiring-shards', shardCount: 2 });
        const [s0] = await t.engine.catalog.shards(stream);
        await t.engine.resharding.splitShard('expiring-shards', s0!.shardId, (BigInt(s0!.hashKeyRange.endingHashKey) / 2n).toString());
        assert.deepEqual((await t.engine.catalog.shards(stream, 'CLOSED')).map((s) => s.shardId), [s0!.shardId]);
        await t.engine.handle.query(sql`update shards set closed_at = closed_at - interval '25 hours' where stream_id = ${stream.id} and closed_at is not null`);
        assert.deepEqual(await t.engine.catalog.shards(stream, 'CLOSED'), []);
        assert.deepEqual((await t.engine.catalog.shards(stream, 'ALL')).map((s) => s.shardId), ['shardId-000000000001', 'shardId-000000000002', 'shardId-000000000003']);
        await rejectsWith(t.engine.reader.page('expiring-shards', { shardId: s0!.shardId }), 'SHARD_NOT_FOUND');
      });
    });
  });
}

const postgresBackend = backends.find((b) => b.name === 'postgres');
describe('retention: processes trimming at once (postgres)', { skip: !postgresBackend }, () => {
  it('two processes dropping the same empty past partition both finish, and it is gone; a detached leftover goes too', async () => {
    const t = await openTestEngine(postgresBackend!);
    const second = await openDatabase({ databaseUrl: t.databaseUrl });
    try {
      const past = new Date(Date.now() - 3 * DAY);
      await ensurePartitions(t.engine.handle, past, 1);
      const name = partitionName(past);
      assert.ok((await listPartitions(t.engine.handle)).some((p) => p.name === name));
      const trimmers = [t.engine.housekeeper.trimmer, new RetentionTrimmer(second, 5000)];
      // Several rounds: the race (both detaching at once) does not come every time.
      for (let round = 0; round < 3; round++) {
        await ensurePartitions(t.engine.handle, past, 1);
        const outcomes = await Promise.allSettled(trimmers.map((trimmer) => trimmer.trim(new Date())));
        assert.deepEqual(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'ok')), ['ok', 'ok']);
        assert.ok(!(await listPartitions(t.engine.handle)).some((p) => p.name === name), `round ${round}: dropped`);
      }
      // A partition some process detached and never dropped (it stopped in between) goes too.
      await ensurePartitions(t.engine.handle, past, 1);
      await t.engine.handle.query(sql.raw(`alter table records detach partition ${name}`));
      assert.ok((await t.engine.housekeeper.trimmer.trim(new Date())).droppedPartitions.includes(name));
      const [left] = await t.engine.handle.query<{ n: number }>(sql`select count(*)::int as n from pg_class where relname = ${name}`);
      assert.equal(left!.n, 0, 'the detached table is dropped');
    } finally {
      await second.close();
      await t.close();
    }
  });
});
