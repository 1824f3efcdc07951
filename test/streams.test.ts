import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type TestEngine, b64, backends, openTestEngine } from './harness.ts';

for (const backend of backends) {
  describe(`kinesis stream model (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    it('splits the hash key space evenly and routes by MD5 of the partition key', async () => {
      const stream = await t.engine.catalog.create({ name: 'routing', shardCount: 4 });
      const shards = await t.engine.catalog.shards(stream);
      assert.deepEqual(shards.map((s) => s.hashKeyRange.startingHashKey), [
        '0', '85070591730234615865843651857942052864', '170141183460469231731687303715884105728', '255211775190703847597530955573826158592',
      ]);
      assert.equal(shards[3]!.hashKeyRange.endingHashKey, '340282366920938463463374607431768211455');
      const keys = Array.from({ length: 50 }, (_, i) => `key-${i}`);
      const result = await t.engine.putRecords('routing', keys.map((k) => ({ partitionKey: k, data: b64(k) })));
      assert.equal(result.failedRecordCount, 0);
      keys.forEach((key, i) => {
        const hash = BigInt(`0x${createHash('md5').update(key).digest('hex')}`);
        const shard = shards.find((s) => BigInt(s.hashKeyRange.startingHashKey) <= hash && hash <= BigInt(s.hashKeyRange.endingHashKey));
        assert.equal(result.records[i]!.shardId, shard!.shardId, `routing of ${key}`);
      });
    });
  });
}
