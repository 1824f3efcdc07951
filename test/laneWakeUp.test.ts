/**
 * A lane is woken by new records whatever it is doing when they arrive: a wake-up that lands
 * while the lane reads (and finds nothing yet) must not leave the records to the idle poll.
 * A child shard's lanes go on as soon as the parent's lane reaches its end. And a stopping
 * engine does not wait out a lane's retry back-off.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestEngine, b64, backends, openTestEngine, sinkFunction, waitFor } from './harness.ts';

const IDLE_POLL_MS = 30_000;

for (const backend of backends) {
  describe(`lane wake-ups (${backend.name})`, () => {
    let t: TestEngine;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-wake-'));
    let sink: { seen: string[] };

    before(async () => {
      sink = await sinkFunction(functionsDir);
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: IDLE_POLL_MS, leaseTtlMs: 5000 } });
      await t.engine.start();
    });
    after(async () => {
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('delivers a record put just as the lane finished a batch, well before the idle poll', async () => {
      await t.engine.createStream({ name: 'wake', shardCount: 1 });
      await t.engine.createFunction({ name: 'wake-sink', module: 'sink.mjs#handler' });
      await t.engine.createMapping({ streamName: 'wake', functionName: 'wake-sink', startingPosition: 'TRIM_HORIZON' });
      // Each record is put the moment the function has the one before: the lane is then
      // committing that batch and reading again, the moment a wake-up used to be lost.
      let slowest = 0;
      for (let i = 0; i < 40; i++) {
        const at = Date.now();
        await t.engine.putRecords('wake', [{ partitionKey: 'k', data: b64(`w${i}`) }]);
        await waitFor(() => sink.seen.includes(`w${i}`), `record ${i} delivered (the idle poll is ${IDLE_POLL_MS} ms)`, 10_000);
        slowest = Math.max(slowest, Date.now() - at);
      }
      assert.ok(slowest < 5000, `every record was delivered by a wake-up, not the idle poll (slowest ${slowest} ms)`);
      assert.deepEqual(sink.seen, Array.from({ length: 40 }, (_, i) => `w${i}`));
    });

    it('starts a child shard\'s lane the moment its parent is read to its end, not at the idle poll', async () => {
      await t.engine.createStream({ name: 'lineage', shardCount: 1 });
      await t.engine.createFunction({ name: 'lineage-sink', module: 'sink.mjs#handler' });
      await t.engine.createMapping({ streamName: 'lineage', functionName: 'lineage-sink', startingPosition: 'TRIM_HORIZON' });
      await t.engine.putRecords('lineage', [{ partitionKey: 'k', data: b64('parent') }]);
      await waitFor(() => sink.seen.includes('parent'), 'the parent\'s record delivered', 10_000);
      const lanes = t.engine.poller!.laneCount; // the parent's among them
      const [parent] = await t.engine.catalog.shards(await t.engine.catalog.get('lineage'), 'OPEN');
      await t.engine.splitShard('lineage', parent!.shardId, (2n ** 127n).toString());
      await waitFor(() => t.engine.poller!.laneCount === lanes + 2, 'the children\'s lanes run (waiting for the parent)', 10_000);
      // The put wakes every lane of the stream: the parent's finds its shard closed and read,
      // and ends; the children, woken at the same moment, may look before it has.
      const at = Date.now();
      await t.engine.putRecords('lineage', Array.from({ length: 8 }, (_, i) => ({ partitionKey: `c${i}`, data: b64(`child${i}`) })));
      await waitFor(() => Array.from({ length: 8 }, (_, i) => `child${i}`).every((d) => sink.seen.includes(d)),
        `the children's records delivered (the idle poll is ${IDLE_POLL_MS} ms)`, 10_000);
      assert.ok(Date.now() - at < 5000, `delivered in ${Date.now() - at} ms`);
    });

    it('stops without waiting out a retry back-off', async () => {
      writeFileSync(join(functionsDir, 'failing.mjs'), `
        export const calls = { count: 0 };
        export async function handler() { calls.count++; throw new Error('failing on purpose'); }`);
      const failing: { calls: { count: number } } = await import(join(functionsDir, 'failing.mjs'));
      const other = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 100, leaseTtlMs: 5000 } });
      let closed = false;
      try {
        await other.engine.start();
        await other.engine.createStream({ name: 'backoff', shardCount: 1 });
        await other.engine.createFunction({ name: 'failing', module: 'failing.mjs#handler' });
        await other.engine.createMapping({ streamName: 'backoff', functionName: 'failing', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 10_000 });
        await other.engine.putRecords('backoff', [{ partitionKey: 'k', data: b64('x') }]);
        // From the eighth attempt on, each back-off is 2.5 s or more.
        await waitFor(() => failing.calls.count >= 8, 'eight attempts', 20_000);
        const at = Date.now();
        await other.engine.stop();
        const took = Date.now() - at;
        await other.close();
        closed = true;
        // The back-off after the eighth attempt is 2.5 s at least: stopping ends it.
        assert.ok(took < 2400, `stopped in ${took} ms, not after the back-off`);
      } finally {
        if (!closed) await other.close();
      }
    });
  });
}
