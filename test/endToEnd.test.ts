/**
 * The foundation's acceptance script, through GraphQL over HTTP: a 4-shard stream, 10,000
 * records, a split, and everything read back in order (per shard, by sequence number).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine } from './harness.ts';

for (const backend of backends) {
  describe(`end to end through GraphQL (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    const gql = async (query: string, variables?: Record<string, unknown>) => {
      const body = (await (await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
      })).json()) as { data: any; errors?: unknown[] };
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data;
    };
    before(async () => {
      t = await openTestEngine(backend);
      app = buildApp({ engine: t.engine });
      url = await app.start(0, '127.0.0.1');
    });
    after(async () => {
      await app.stop();
      await t.close();
    });

    it('creates a 4-shard stream, puts 10,000 records, splits a shard and reads everything back in order', async () => {
      await gql('mutation { createStream(input: {name: "e2e", shardCount: 4}) { name } }');
      const written = new Map<string, { shardId: string; data: string }>();
      const put = async (from: number, to: number) => {
        for (let start = from; start < to; start += 500) {
          const records = Array.from({ length: Math.min(500, to - start) }, (_, i) => ({
            partitionKey: `customer-${(start + i) % 97}`, data: b64(JSON.stringify({ n: start + i })),
          }));
          const result = await gql(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "e2e", records: $r) {
            failedRecordCount records { shardId sequenceNumber } } }`, { r: records });
          assert.equal(result.putRecords.failedRecordCount, 0);
          result.putRecords.records.forEach((entry: any, i: number) =>
            written.set(entry.sequenceNumber, { shardId: entry.shardId, data: records[i]!.data }));
        }
      };
      await put(0, 8000);
      const { stream } = await gql('{ stream(name: "e2e") { shards { shardId hashKeyRange { startingHashKey endingHashKey } } } }');
      const target = stream.shards[2];
      const mid = (BigInt(target.hashKeyRange.startingHashKey) + BigInt(target.hashKeyRange.endingHashKey)) / 2n;
      const split = await gql(`mutation { splitShard(streamName: "e2e", shardId: "${target.shardId}", newStartingHashKey: "${mid}") {
        shards(filter: ALL) { shardId parentShardId endingSequenceNumber } } }`);
      const children = split.splitShard.shards.filter((s: any) => s.parentShardId === target.shardId);
      assert.equal(children.length, 2);
      await put(8000, 10_000);
      const childIds = new Set(children.map((c: any) => c.shardId));
      const lateIntoParentRange = [...written.values()].slice(8000).filter((w) => w.shardId === target.shardId);
      assert.equal(lateIntoParentRange.length, 0, 'no record lands in the closed parent');
      assert.ok([...written.values()].slice(8000).some((w) => childIds.has(w.shardId)), 'records land in the children');

      const read: { sequenceNumber: string; shardId: string; data: string }[] = [];
      let after: string | null = null;
      for (;;) {
        const page: any = await gql(`query($after: String) { stream(name: "e2e") { records(first: 1000, after: $after) {
          edges { node { sequenceNumber shardId data } } pageInfo { hasNextPage endCursor } } } }`, { after });
        read.push(...page.stream.records.edges.map((e: any) => e.node));
        after = page.stream.records.pageInfo.endCursor;
        if (!page.stream.records.pageInfo.hasNextPage) break;
      }
      assert.equal(read.length, 10_000);
      assert.deepEqual(read.map((r) => r.sequenceNumber), [...read.map((r) => r.sequenceNumber)].sort(), 'in order');
      for (const r of read) {
        const w = written.get(r.sequenceNumber);
        assert.ok(w, `record ${r.sequenceNumber} was written`);
        assert.equal(r.shardId, w.shardId);
        assert.equal(r.data, w.data);
      }
    });
  });
}
