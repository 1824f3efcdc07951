/**
 * Resharding of KINESIS streams: splitShard, mergeShards, updateShardCount, shard lineage and
 * listings, and writers racing a reshard.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { StoredRecord } from '../engine/records/readRecords.ts';
import { MAX_HASH_KEY, evenRanges, hashKeyOf } from '../engine/streams/hashKeys.ts';
import type { ShardInfo, StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine, rejectsWith } from './harness.ts';


const start = (s: ShardInfo) => BigInt(s.hashKeyRange.startingHashKey);
const end = (s: ShardInfo) => BigInt(s.hashKeyRange.endingHashKey);
const byId = (shards: ShardInfo[], id: string) => {
  const shard = shards.find((s) => s.shardId === id);
  assert.ok(shard, `shard ${id} is listed`);
  return shard;
};

/**
 * The invariants of a stream's shard map after any reshard:
 * - shard ids are `shardId-` + 0..n−1, each once;
 * - the open shards cover 0..2^128−1 without gaps or overlaps;
 * - every shard has at most two parents, an adjacent parent only with a parent, both listed;
 * - every closed shard has an endingSequenceNumber and its children are listed: two split
 *   children splitting its range, or one merge child whose range is the union of its parents;
 * - a child starts after its parents ended.
 */
function checkShardMap(shards: ShardInfo[]): void {
  const indexes = shards.map((s) => s.shardIndex).sort((a, b) => a - b);
  assert.deepEqual(indexes, indexes.map((_, i) => i), 'shard indexes are 0..n-1, each once');
  for (const s of shards) assert.equal(s.shardId, `shardId-${String(s.shardIndex).padStart(12, '0')}`);

  const open = shards.filter((s) => s.endingSequenceNumber === null).sort((a, b) => (start(a) < start(b) ? -1 : 1));
  assert.ok(open.length > 0);
  assert.equal(start(open[0]!), 0n, 'open shards start at 0');
  assert.equal(end(open.at(-1)!), MAX_HASH_KEY, 'open shards end at 2^128-1');
  for (let i = 1; i < open.length; i++) {
    assert.equal(start(open[i]!), end(open[i - 1]!) + 1n, `no gap or overlap between ${open[i - 1]!.shardId} and ${open[i]!.shardId}`);
  }
  for (const s of shards) {
    assert.ok(start(s) <= end(s), `${s.shardId} has a non-empty range`);
    assert.equal(s.closedAt === null, s.endingSequenceNumber === null, `${s.shardId}: closedAt and endingSequenceNumber agree`);
    if (s.adjacentParentShardId !== null) assert.notEqual(s.parentShardId, null, `${s.shardId}: adjacent parent only with a parent`);
    for (const parentId of [s.parentShardId, s.adjacentParentShardId]) {
      if (parentId === null) continue;
      const parent = byId(shards, parentId);
      assert.notEqual(parent.endingSequenceNumber, null, `parent ${parentId} of ${s.shardId} is closed`);
      assert.ok(BigInt(s.startingSequenceNumber) > BigInt(parent.endingSequenceNumber!), `${s.shardId} starts after ${parentId} ended`);
      assert.ok(parent.shardIndex < s.shardIndex);
    }
  }
  for (const closed of shards.filter((s) => s.endingSequenceNumber !== null)) {
    const children = shards.filter((s) => s.parentShardId === closed.shardId || s.adjacentParentShardId === closed.shardId);
    assert.ok(children.length > 0, `closed shard ${closed.shardId} has its children listed`);
    if (children.length === 2) {
      // A split: both children name it as their only parent and split its range.
      const [low, high] = children.sort((a, b) => (start(a) < start(b) ? -1 : 1)) as [ShardInfo, ShardInfo];
      for (const c of [low, high]) {
        assert.equal(c.parentShardId, closed.shardId);
        assert.equal(c.adjacentParentShardId, null);
      }
      assert.equal(start(low), start(closed));
      assert.equal(end(low) + 1n, start(high));
      assert.equal(end(high), end(closed));
    } else {
      assert.equal(children.length, 1, `closed shard ${closed.shardId} has one merge child or two split children`);
      const child = children[0]!;
      assert.notEqual(child.adjacentParentShardId, null, `${child.shardId} is a merge child`);
      const parents = [byId(shards, child.parentShardId!), byId(shards, child.adjacentParentShardId!)];
      const [low, high] = parents.sort((a, b) => (start(a) < start(b) ? -1 : 1)) as [ShardInfo, ShardInfo];
      assert.equal(end(low) + 1n, start(high), `parents of ${child.shardId} are adjacent`);
      assert.equal(start(child), start(low));
      assert.equal(end(child), end(high));
    }
  }
}

const openRanges = (shards: ShardInfo[]) =>
  shards.filter((s) => s.endingSequenceNumber === null)
    .map((s) => ({ start: start(s), end: end(s) }))
    .sort((a, b) => (a.start < b.start ? -1 : 1));

for (const backend of backends) {
  describe(`resharding (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    const shardsOf = async (name: string, filter: 'OPEN' | 'CLOSED' | 'ALL' = 'ALL') =>
      t.engine.catalog.shards(await t.engine.catalog.get(name), filter);

    async function readShard(streamName: string, shardId?: string): Promise<StoredRecord[]> {
      const out: StoredRecord[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await t.engine.reader.page(streamName, { shardId, first: 1000, after: cursor });
        out.push(...page.records.map((r) => r.record));
        cursor = page.endCursor;
        if (!page.hasNextPage) return out;
      }
    }

    /** Every listed shard's records, by shard id. */
    async function snapshot(streamName: string): Promise<Map<string, string[]>> {
      const result = new Map<string, string[]>();
      for (const s of await shardsOf(streamName)) {
        result.set(s.shardId, (await readShard(streamName, s.shardId)).map((r) => `${r.sequenceNumber}/${r.partitionKey}/${r.data}`));
      }
      return result;
    }

    async function put(streamName: string, count: number, prefix: string) {
      const records = Array.from({ length: count }, (_, i) => ({ partitionKey: `${prefix}-${i}`, data: b64(`${prefix}-${i}`) }));
      return (await t.engine.putRecords(streamName, records)).records;
    }

    async function createWithRecords(name: string, shardCount: number, count = 60): Promise<StreamInfo> {
      const stream = await t.engine.catalog.create({ name, shardCount });
      await put(name, count, `${name}-before`);
      return stream;
    }

    describe('splitShard', () => {
      it('closes the parent above its records and opens two children splitting its range', async () => {
        await createWithRecords('split', 2);
        const before = await shardsOf('split');
        const parent = before[0]!;
        const parentRecords = await readShard('split', parent.shardId);
        assert.ok(parentRecords.length > 0);
        const key = (start(parent) + end(parent) + 1n) / 2n;
        const beforeSnapshot = await snapshot('split');

        const stream = await t.engine.resharding.splitShard('split', parent.shardId, key.toString());
        assert.equal(stream.name, 'split');

        const shards = await shardsOf('split');
        checkShardMap(shards);
        assert.deepEqual(shards.map((s) => s.shardId), ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002', 'shardId-000000000003']);
        const closed = byId(shards, parent.shardId);
        assert.notEqual(closed.endingSequenceNumber, null);
        assert.notEqual(closed.closedAt, null);
        assert.equal(closed.startingSequenceNumber, parent.startingSequenceNumber);
        assert.deepEqual(closed.hashKeyRange, parent.hashKeyRange);
        for (const r of parentRecords) assert.ok(BigInt(r.sequenceNumber) < BigInt(closed.endingSequenceNumber!), 'ending above every record');

        const low = byId(shards, 'shardId-000000000002');
        const high = byId(shards, 'shardId-000000000003');
        assert.equal(low.parentShardId, parent.shardId);
        assert.equal(high.parentShardId, parent.shardId);
        assert.equal(low.adjacentParentShardId, null);
        assert.equal(high.adjacentParentShardId, null);
        assert.deepEqual(low.hashKeyRange, { startingHashKey: parent.hashKeyRange.startingHashKey, endingHashKey: (key - 1n).toString() });
        assert.deepEqual(high.hashKeyRange, { startingHashKey: key.toString(), endingHashKey: parent.hashKeyRange.endingHashKey });
        // The untouched shard stays open.
        assert.equal(byId(shards, 'shardId-000000000001').endingSequenceNumber, null);

        // Nothing stored moved: every shard id reads back what it held before; the children are empty.
        const afterSnapshot = await snapshot('split');
        for (const [id, records] of beforeSnapshot) assert.deepEqual(afterSnapshot.get(id), records, id);
        assert.deepEqual(afterSnapshot.get(low.shardId), []);
        assert.deepEqual(afterSnapshot.get(high.shardId), []);

        // New records go to the children at once.
        const written = await put('split', 80, 'after-split');
        let toChildren = 0;
        written.forEach((r, i) => {
          const hash = hashKeyOf(`after-split-${i}`);
          assert.notEqual(r.shardId, parent.shardId, 'nothing lands in the closed parent');
          const expected = hash < key ? (hash >= start(parent) ? low : undefined) : hash <= end(parent) ? high : undefined;
          if (expected) {
            assert.equal(r.shardId, expected.shardId, `after-split-${i}`);
            assert.ok(BigInt(r.sequenceNumber!) > BigInt(closed.endingSequenceNumber!));
            toChildren++;
          } else {
            assert.equal(r.shardId, 'shardId-000000000001');
          }
        });
        assert.ok(toChildren > 0);
        assert.deepEqual((await readShard('split', parent.shardId)).map((r) => r.sequenceNumber), parentRecords.map((r) => r.sequenceNumber));
      });

      it('accepts keys start+2 and end-1, rejects start+1, start, end, outside the shard and non-keys', async () => {
        await t.engine.catalog.create({ name: 'split-keys', shardCount: 2 });
        const [s0, s1] = (await shardsOf('split-keys')) as [ShardInfo, ShardInfo];
        const bad: [ShardInfo, bigint][] = [
          [s0, start(s0)], [s0, start(s0) + 1n], [s0, end(s0)], [s0, end(s0) + 1n], [s0, MAX_HASH_KEY],
          [s1, start(s1)], [s1, start(s1) + 1n], [s1, end(s1)], [s1, start(s1) - 5n], [s1, 2n],
        ];
        for (const [shard, key] of bad) {
          await rejectsWith(
            t.engine.resharding.splitShard('split-keys', shard.shardId, key.toString()),
            'INVALID_ARGUMENT', /newStartingHashKey/, new RegExp(key.toString()), new RegExp(shard.shardId),
          );
        }
        for (const key of ['-1', (1n << 128n).toString(), 'abc', '1e3', '0x10', '']) {
          await rejectsWith(t.engine.resharding.splitShard('split-keys', s0.shardId, key), 'INVALID_ARGUMENT', /newStartingHashKey/);
        }
        assert.equal((await shardsOf('split-keys')).length, 2, 'no rejected split changed anything');

        await t.engine.resharding.splitShard('split-keys', s0.shardId, (start(s0) + 2n).toString());
        await t.engine.resharding.splitShard('split-keys', s1.shardId, (end(s1) - 1n).toString());
        const shards = await shardsOf('split-keys');
        checkShardMap(shards);
        assert.deepEqual(byId(shards, 'shardId-000000000002').hashKeyRange, { startingHashKey: '0', endingHashKey: '1' });
        assert.deepEqual(byId(shards, 'shardId-000000000005').hashKeyRange, { startingHashKey: (end(s1) - 1n).toString(), endingHashKey: end(s1).toString() });
        // Records route to the tiny shards by explicit hash key.
        const routed = await t.engine.putRecords('split-keys', [
          { partitionKey: 'x', data: '', explicitHashKey: '0' },
          { partitionKey: 'x', data: '', explicitHashKey: '1' },
          { partitionKey: 'x', data: '', explicitHashKey: '2' },
          { partitionKey: 'x', data: '', explicitHashKey: MAX_HASH_KEY.toString() },
          { partitionKey: 'x', data: '', explicitHashKey: (MAX_HASH_KEY - 1n).toString() },
          { partitionKey: 'x', data: '', explicitHashKey: (MAX_HASH_KEY - 2n).toString() },
        ]);
        assert.deepEqual(routed.records.map((r) => r.shardId), [
          'shardId-000000000002', 'shardId-000000000002', 'shardId-000000000003',
          'shardId-000000000005', 'shardId-000000000005', 'shardId-000000000004',
        ]);
      });

      it('refuses to split or merge a closed shard (SHARD_CLOSED) and unknown shards (SHARD_NOT_FOUND)', async () => {
        await t.engine.catalog.create({ name: 'split-closed', shardCount: 2 });
        const [s0, s1] = (await shardsOf('split-closed')) as [ShardInfo, ShardInfo];
        await t.engine.resharding.splitShard('split-closed', s0.shardId, ((start(s0) + end(s0)) / 2n).toString());
        const mid = ((start(s0) + end(s0)) / 2n + 10n).toString();
        await rejectsWith(t.engine.resharding.splitShard('split-closed', s0.shardId, mid), 'SHARD_CLOSED', /shardId-000000000000/, /already been merged or split/);
        // shardId-000000000003 (the high child) is adjacent to the closed parent's neighbour s1; merging with the closed parent fails either way round.
        await rejectsWith(t.engine.resharding.mergeShards('split-closed', s0.shardId, 'shardId-000000000002'), 'SHARD_CLOSED', /shardId-000000000000/);
        await rejectsWith(t.engine.resharding.mergeShards('split-closed', 'shardId-000000000002', s0.shardId), 'SHARD_CLOSED', /shardId-000000000000/);
        await rejectsWith(t.engine.resharding.mergeShards('split-closed', s1.shardId, s0.shardId), 'SHARD_CLOSED', /shardId-000000000000/);

        for (const id of ['shardId-000000000099', 'shardId-4', 'garbage', '']) {
          await rejectsWith(t.engine.resharding.splitShard('split-closed', id, mid), 'SHARD_NOT_FOUND');
          await rejectsWith(t.engine.resharding.mergeShards('split-closed', id, s1.shardId), 'SHARD_NOT_FOUND');
          await rejectsWith(t.engine.resharding.mergeShards('split-closed', s1.shardId, id), 'SHARD_NOT_FOUND');
        }
        await rejectsWith(t.engine.resharding.splitShard('no-such-stream', s0.shardId, mid), 'STREAM_NOT_FOUND');
        await rejectsWith(t.engine.resharding.mergeShards('no-such-stream', s0.shardId, s1.shardId), 'STREAM_NOT_FOUND');
        await rejectsWith(t.engine.resharding.updateShardCount('no-such-stream', 2), 'STREAM_NOT_FOUND');
        // A shard id of another stream is not a shard of this one.
        await t.engine.catalog.create({ name: 'split-closed-other', shardCount: 1 });
        await rejectsWith(t.engine.resharding.mergeShards('split-closed-other', 'shardId-000000000000', 'shardId-000000000003'), 'SHARD_NOT_FOUND');
        const shards = await shardsOf('split-closed');
        assert.equal(shards.length, 4);
        checkShardMap(shards);
      });

      it('refuses to reshard a DYNAMODB stream', async () => {
        await t.engine.catalog.create({ name: 'split-ddb', kind: 'DYNAMODB', shardCount: 2 });
        const [s0, s1] = (await shardsOf('split-ddb')) as [ShardInfo, ShardInfo];
        await rejectsWith(t.engine.resharding.splitShard('split-ddb', s0.shardId, ((start(s0) + end(s0)) / 2n).toString()), 'INVALID_ARGUMENT', /KINESIS/);
        await rejectsWith(t.engine.resharding.mergeShards('split-ddb', s0.shardId, s1.shardId), 'INVALID_ARGUMENT', /KINESIS/);
        await rejectsWith(t.engine.resharding.updateShardCount('split-ddb', 4), 'INVALID_ARGUMENT', /KINESIS/);
        assert.equal((await shardsOf('split-ddb')).length, 2);
      });
    });

    describe('mergeShards', () => {
      it('merges adjacent shards given in either order: parent = shardId, adjacent parent = adjacentShardId, range = union', async () => {
        await createWithRecords('merge', 4, 100);
        const before = await shardsOf('merge');
        const beforeSnapshot = await snapshot('merge');
        const [s0, s1, s2, s3] = before as [ShardInfo, ShardInfo, ShardInfo, ShardInfo];

        // Lower shard first.
        await t.engine.resharding.mergeShards('merge', s0.shardId, s1.shardId);
        // Higher shard first.
        await t.engine.resharding.mergeShards('merge', s3.shardId, s2.shardId);
        let shards = await shardsOf('merge');
        checkShardMap(shards);
        const low = byId(shards, 'shardId-000000000004');
        const high = byId(shards, 'shardId-000000000005');
        assert.equal(low.parentShardId, s0.shardId);
        assert.equal(low.adjacentParentShardId, s1.shardId);
        assert.deepEqual(low.hashKeyRange, { startingHashKey: s0.hashKeyRange.startingHashKey, endingHashKey: s1.hashKeyRange.endingHashKey });
        assert.equal(high.parentShardId, s3.shardId);
        assert.equal(high.adjacentParentShardId, s2.shardId);
        assert.deepEqual(high.hashKeyRange, { startingHashKey: s2.hashKeyRange.startingHashKey, endingHashKey: s3.hashKeyRange.endingHashKey });
        for (const parent of [s0, s1, s2, s3]) {
          const closed = byId(shards, parent.shardId);
          assert.notEqual(closed.endingSequenceNumber, null);
          for (const r of beforeSnapshot.get(parent.shardId)!) {
            assert.ok(BigInt(r.split('/')[0]!) < BigInt(closed.endingSequenceNumber!));
          }
        }
        const afterSnapshot = await snapshot('merge');
        for (const [id, records] of beforeSnapshot) assert.deepEqual(afterSnapshot.get(id), records, id);

        // Merge the two children back into one shard covering everything.
        await t.engine.resharding.mergeShards('merge', high.shardId, low.shardId);
        shards = await shardsOf('merge');
        checkShardMap(shards);
        const all = byId(shards, 'shardId-000000000006');
        assert.deepEqual(all.hashKeyRange, { startingHashKey: '0', endingHashKey: MAX_HASH_KEY.toString() });
        const written = await put('merge', 20, 'after-merge');
        for (const r of written) assert.equal(r.shardId, all.shardId);
        assert.deepEqual((await t.engine.catalog.shards(await t.engine.catalog.get('merge'), 'OPEN')).map((s) => s.shardId), [all.shardId]);
      });

      it('rejects non-adjacent shards and a shard merged with itself', async () => {
        await t.engine.catalog.create({ name: 'merge-bad', shardCount: 4 });
        const [s0, s1, s2, s3] = (await shardsOf('merge-bad')) as [ShardInfo, ShardInfo, ShardInfo, ShardInfo];
        for (const [a, b] of [[s0, s2], [s2, s0], [s0, s3], [s1, s3], [s3, s0]] as [ShardInfo, ShardInfo][]) {
          await rejectsWith(t.engine.resharding.mergeShards('merge-bad', a.shardId, b.shardId), 'INVALID_ARGUMENT', new RegExp(a.shardId), new RegExp(b.shardId), /adjacent/);
        }
        await rejectsWith(t.engine.resharding.mergeShards('merge-bad', s1.shardId, s1.shardId), 'INVALID_ARGUMENT', /different/);
        const shards = await shardsOf('merge-bad');
        assert.equal(shards.length, 4);
        assert.ok(shards.every((s) => s.endingSequenceNumber === null));
      });
    });

    describe('updateShardCount', () => {
      for (const [from, to] of [[2, 4], [4, 2], [5, 3], [3, 5], [1, 2], [2, 1], [7, 4], [4, 7]] as [number, number][]) {
        it(`scales ${from} → ${to} into ${to} even ranges, keeping every stored record where it was`, async () => {
          const name = `scale-${from}-${to}`;
          await createWithRecords(name, from, 80);
          const beforeSnapshot = await snapshot(name);
          const stream = await t.engine.resharding.updateShardCount(name, to);
          assert.equal(stream.name, name);

          const shards = await shardsOf(name);
          checkShardMap(shards);
          assert.deepEqual(openRanges(shards), evenRanges(to));
          assert.equal((await shardsOf(name, 'OPEN')).length, to);
          for (const s of shards) {
            const parents = [s.parentShardId, s.adjacentParentShardId].filter((p) => p !== null);
            assert.ok(parents.length <= 2);
          }
          // Nothing stored moved, and the old shards that were replaced are closed with every record below their end.
          const afterSnapshot = await snapshot(name);
          for (const [id, records] of beforeSnapshot) {
            assert.deepEqual(afterSnapshot.get(id), records, id);
            const shard = byId(shards, id);
            if (shard.endingSequenceNumber !== null) {
              for (const r of records) assert.ok(BigInt(r.split('/')[0]!) < BigInt(shard.endingSequenceNumber));
            }
          }
          // Shards created by the scaling hold nothing yet; new records land in open shards by hash key.
          const created = shards.filter((s) => !beforeSnapshot.has(s.shardId));
          for (const s of created) assert.deepEqual(afterSnapshot.get(s.shardId), []);
          const open = shards.filter((s) => s.endingSequenceNumber === null);
          const written = await put(name, 60, `${name}-after`);
          written.forEach((r, i) => {
            const hash = hashKeyOf(`${name}-after-${i}`);
            const target = open.find((s) => start(s) <= hash && hash <= end(s))!;
            assert.equal(r.shardId, target.shardId);
          });
        });
      }

      it('rejects more than double / less than half (LIMIT_EXCEEDED) and non-counts (INVALID_ARGUMENT)', async () => {
        await t.engine.catalog.create({ name: 'scale-limits', shardCount: 4 });
        await rejectsWith(t.engine.resharding.updateShardCount('scale-limits', 9), 'LIMIT_EXCEEDED', /targetShardCount/, /double/, /8/);
        await rejectsWith(t.engine.resharding.updateShardCount('scale-limits', 1), 'LIMIT_EXCEEDED', /targetShardCount/, /half/, /2/);
        for (const bad of [0, -1, 2.5, 10_001]) {
          await rejectsWith(t.engine.resharding.updateShardCount('scale-limits', bad), 'INVALID_ARGUMENT', /targetShardCount/);
        }
        assert.equal((await shardsOf('scale-limits')).length, 4, 'nothing changed');
        await t.engine.catalog.create({ name: 'scale-limits-odd', shardCount: 5 });
        await rejectsWith(t.engine.resharding.updateShardCount('scale-limits-odd', 2), 'LIMIT_EXCEEDED', /at least 3/);
        await rejectsWith(t.engine.resharding.updateShardCount('scale-limits-odd', 11), 'LIMIT_EXCEEDED', /at most 10/);
        // Exactly double and exactly half are fine.
        await t.engine.resharding.updateShardCount('scale-limits', 8);
        await t.engine.resharding.updateShardCount('scale-limits', 4);
        const shards = await shardsOf('scale-limits');
        checkShardMap(shards);
        assert.deepEqual(openRanges(shards), evenRanges(4));
      });

      it('allows 10 scalings per rolling 24 hours; the 11th is LIMIT_EXCEEDED (rejected attempts do not count)', async () => {
        await t.engine.catalog.create({ name: 'scale-rate', shardCount: 1 });
        for (let i = 0; i < 10; i++) {
          if (i === 3) await rejectsWith(t.engine.resharding.updateShardCount('scale-rate', 5), 'LIMIT_EXCEEDED');
          await t.engine.resharding.updateShardCount('scale-rate', i % 2 === 0 ? 2 : 1);
        }
        const before = await shardsOf('scale-rate');
        await rejectsWith(t.engine.resharding.updateShardCount('scale-rate', 2), 'LIMIT_EXCEEDED', /10/, /24 hours/);
        const after = await shardsOf('scale-rate');
        assert.deepEqual(after.map((s) => s.shardId), before.map((s) => s.shardId));
        assert.equal(after.filter((s) => s.endingSequenceNumber === null).length, 1);
        // Split and merge are not scalings.
        const [open] = await shardsOf('scale-rate', 'OPEN');
        await t.engine.resharding.splitShard('scale-rate', open!.shardId, (1n << 127n).toString());
        checkShardMap(await shardsOf('scale-rate'));
        // Another stream has its own budget.
        await t.engine.catalog.create({ name: 'scale-rate-other', shardCount: 1 });
        await t.engine.resharding.updateShardCount('scale-rate-other', 2);
      });
    });

    describe('shard ids and listings', () => {
      it('never reuses shard ids and filters listings by OPEN / CLOSED / ALL', async () => {
        await t.engine.catalog.create({ name: 'lineage', shardCount: 2 });
        const seen = new Set((await shardsOf('lineage')).map((s) => s.shardId));
        let highest = 1;
        const step = async (op: () => Promise<unknown>) => {
          await op();
          const shards = await shardsOf('lineage');
          checkShardMap(shards);
          const fresh = shards.filter((s) => !seen.has(s.shardId));
          assert.ok(fresh.length > 0, 'each reshard creates shards');
          for (const s of fresh) {
            assert.ok(s.shardIndex > highest, `${s.shardId} is above every earlier id`);
            seen.add(s.shardId);
          }
          highest = Math.max(...shards.map((s) => s.shardIndex));
          const open = await shardsOf('lineage', 'OPEN');
          const closed = await shardsOf('lineage', 'CLOSED');
          assert.ok(open.every((s) => s.endingSequenceNumber === null && s.closedAt === null));
          assert.ok(closed.every((s) => s.endingSequenceNumber !== null && s.closedAt !== null));
          assert.deepEqual([...open, ...closed].map((s) => s.shardId).sort(), shards.map((s) => s.shardId));
          return shards;
        };
        const mid = (s: ShardInfo) => ((start(s) + end(s) + 1n) / 2n).toString();
        await step(async () => t.engine.resharding.splitShard('lineage', 'shardId-000000000000', mid(byId(await shardsOf('lineage'), 'shardId-000000000000'))));
        await step(() => t.engine.resharding.mergeShards('lineage', 'shardId-000000000003', 'shardId-000000000001'));
        await step(() => t.engine.resharding.updateShardCount('lineage', 3));
        await step(() => t.engine.resharding.updateShardCount('lineage', 6));
        await step(async () => {
          const [first] = await shardsOf('lineage', 'OPEN');
          await t.engine.resharding.splitShard('lineage', first!.shardId, mid(first!));
        });
        const shards = await step(() => t.engine.resharding.updateShardCount('lineage', 4));
        assert.deepEqual(openRanges(shards), evenRanges(4));
        assert.equal(seen.size, shards.length);

        // A deleted stream's name starts again at shardId-000000000000 (ids are per stream).
        await t.engine.catalog.delete('lineage');
        await t.engine.catalog.create({ name: 'lineage', shardCount: 1 });
        assert.deepEqual((await shardsOf('lineage')).map((s) => s.shardId), ['shardId-000000000000']);
      });
    });

    describe('writers racing reshards', () => {
      it('never loses a record or lands one in a closed shard or outside its range', async () => {
        await t.engine.catalog.create({ name: 'race', shardCount: 2 });
        let stop = false;
        const written: { partitionKey: string; shardId: string; sequenceNumber: string }[] = [];
        // Writers run all the time; between two reshards each writer completes at least one call
        // that started after the previous reshard (progress, awaited without polling), so every
        // call races at most a reshard or two, as it would in life.
        let epoch = 0;
        const progress = [-1, -1, -1, -1];
        let wake: () => void = () => {};
        const everyWriterCaughtUp = () => new Promise<void>((resolve) => {
          const check = () => (stop || progress.every((p) => p >= epoch) ? resolve() : (wake = check));
          check();
        });
        const writer = async (w: number) => {
          try {
            for (let call = 0; !stop || call < 3; call++) {
              const startedIn = epoch;
              const records = Array.from({ length: 20 }, (_, i) => ({ partitionKey: `w${w}-c${call}-${i}`, data: b64(`${w}/${call}/${i}`) }));
              const result = await t.engine.putRecords('race', records);
              const failed = result.records.filter((r) => r.errorCode !== null);
              assert.deepEqual(failed.slice(0, 1), [], `${failed.length} records failed`);
              result.records.forEach((r, i) => written.push({ partitionKey: records[i]!.partitionKey, shardId: r.shardId!, sequenceNumber: r.sequenceNumber! }));
              progress[w] = startedIn;
              wake();
            }
          } catch (error) {
            stop = true;
            throw error;
          }
        };
        const reshard = async () => {
          const step = async (op: () => Promise<unknown>) => {
            await everyWriterCaughtUp();
            await op();
            epoch++;
          };
          try {
            const mid = (s: ShardInfo) => ((start(s) + end(s) + 1n) / 2n).toString();
            for (let round = 0; round < 2; round++) {
              await step(async () => {
                const [first] = await shardsOf('race', 'OPEN');
                await t.engine.resharding.splitShard('race', first!.shardId, mid(first!));
              });
              await step(async () => {
                const sorted = (await shardsOf('race', 'OPEN')).sort((a, b) => (start(a) < start(b) ? -1 : 1));
                await t.engine.resharding.mergeShards('race', sorted[1]!.shardId, sorted[0]!.shardId);
              });
              await step(() => t.engine.resharding.updateShardCount('race', 4));
              await step(() => t.engine.resharding.updateShardCount('race', 3));
              await step(async () => {
                const [first] = await shardsOf('race', 'OPEN');
                await t.engine.resharding.splitShard('race', first!.shardId, mid(first!));
              });
              await step(() => t.engine.resharding.updateShardCount('race', 2));
            }
          } finally {
            stop = true;
            wake();
          }
        };
        await Promise.all([reshard(), ...[0, 1, 2, 3].map(writer)]);

        const shards = await shardsOf('race');
        checkShardMap(shards);
        assert.deepEqual(openRanges(shards), evenRanges(2));
        const stored = await readShard('race');
        assert.equal(stored.length, written.length, 'every written record is stored once');
        const bySeq = new Map(stored.map((r) => [r.sequenceNumber, r]));
        assert.equal(bySeq.size, stored.length, 'sequence numbers are unique');
        for (const w of written) {
          const r = bySeq.get(w.sequenceNumber);
          assert.ok(r, `record ${w.sequenceNumber} is readable`);
          assert.equal(r.shardId, w.shardId);
          assert.equal(r.partitionKey, w.partitionKey);
        }
        for (const r of stored) {
          const shard = byId(shards, r.shardId);
          const hash = hashKeyOf(r.partitionKey);
          assert.ok(start(shard) <= hash && hash <= end(shard), `${r.partitionKey} is in the range of ${r.shardId}`);
          assert.ok(BigInt(r.sequenceNumber) > BigInt(shard.startingSequenceNumber));
          if (shard.endingSequenceNumber !== null) assert.ok(BigInt(r.sequenceNumber) < BigInt(shard.endingSequenceNumber), `${r.sequenceNumber} below the end of ${r.shardId}`);
        }
        // Per shard, reading one shard gives its records in sequence order.
        for (const s of shards) {
          const seqs = (await readShard('race', s.shardId)).map((r) => BigInt(r.sequenceNumber));
          assert.deepEqual(seqs, [...seqs].sort((a, b) => (a < b ? -1 : 1)));
          assert.equal(seqs.length, stored.filter((r) => r.shardId === s.shardId).length);
        }
      });
    });
  });
}
