/**
 * Lease stealing never takes a lease with a batch in flight: a process below its fair share
 * takes only leases between batches, and the old owner's fenced PROCESSING write (what a lane
 * does before it invokes) fails once a lease was taken. (The fault drill in
 * test/drills/leaseFencing.drill.ts found two processes serving one shard at once before this.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LeaseTable } from '../engine/delivery/leaseTable.ts';
import { type TestEngine, backends, openTestEngine } from './harness.ts';

for (const backend of backends) {
  describe(`lease stealing (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend, { delivery: false });
    });
    after(() => t.close());

    it('takes only leases between batches, and the old owner cannot start another', async () => {
      await t.engine.catalog.create({ name: 'steal', shardCount: 2 });
      await t.engine.createFunction({ name: 'steal-fn', url: 'http://127.0.0.1:9/' });
      await t.engine.createMapping({ streamName: 'steal', functionName: 'steal-fn', startingPosition: 'TRIM_HORIZON' });
      const a = new LeaseTable(t.engine.handle, 'process-a', 60_000);
      const b = new LeaseTable(t.engine.handle, 'process-b', 60_000);
      await a.sync();
      const held = await a.claim();
      assert.equal(held.length, 2, 'alone, the first process claims both leases');
      const processing = (lease: (typeof held)[number], table = a) =>
        table.save(lease, { state: 'PROCESSING', durable: false });
      const idle = (lease: (typeof held)[number]) => a.save(lease, { state: 'IDLE' });

      for (const lease of held) assert.equal(await processing(lease), true);
      assert.deepEqual(await b.steal(), [], 'nothing is taken while both leases have a batch in flight');

      assert.equal(await idle(held[1]!), true);
      const taken = await b.steal();
      assert.equal(taken.length, 1, 'the lease between batches is taken');
      assert.equal(taken[0]!.shardKey, held[1]!.shardKey);
      assert.equal(taken[0]!.epoch, held[1]!.epoch + 1);
      assert.equal(await processing(held[1]!), false, 'the old owner can no longer start a batch on it');
      assert.equal(await processing(held[0]!), true, 'the lease it kept is still its own');
      assert.equal(await processing(taken[0]!, b), true, 'the new owner can');
    });
  });
}
