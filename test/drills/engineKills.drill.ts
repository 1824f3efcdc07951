/**
 * Drill 1: an engine process is killed with SIGKILL at a random point during delivery, twenty
 * times in a row, and restarted each time, while a producer keeps writing. The function's own
 * log is the judge: after every kill no persisted checkpoint is ahead of what it acknowledged,
 * and at the end every record reached it at least once, in order per partition key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Written, drillStage, engineEnv, report, skipWithoutPostgres, startProducer, startShardline, until } from './support.ts';

const KILLS = 20;
const TIMINGS = { leaseTtlSeconds: 1, heartbeatMs: 200, idlePollMs: 100 };

describe('drill: SIGKILL an engine process during delivery, twenty times', { skip: skipWithoutPostgres }, () => {
  const stage = drillStage({ judge: { delayMs: [0, 20] } });
  const { judge, processes } = stage;

  it('loses nothing, reorders nothing per key, never checkpoints ahead of an acknowledgement', async () => {
    const { t } = stage;
    const started = Date.now();
    await t.engine.catalog.create({ name: 'kills', shardCount: 4 });
    await t.engine.createFunction({ name: 'kills-fn', url: judge.url });
    const mapping = await t.engine.createMapping({ streamName: 'kills', functionName: 'kills-fn', startingPosition: 'TRIM_HORIZON', batchSize: 20 });
    const written = new Written();
    const keys = Array.from({ length: 24 }, (_, i) => `key${i}`);
    const producer = startProducer((records) => t.engine.putRecords('kills', records), keys, written, { perCall: 12, pauseMs: 15 });
    const env = engineEnv(t.databaseUrl!, TIMINGS);

    let kills = 0;
    try {
      for (let round = 0; round < KILLS; round++) {
        const worker = startShardline('worker', env, `worker#${round}`);
        processes.push(worker);
        // Delivery by this very process under way, then a random point within the next second.
        await until(() => judge.log.some((i) => i.pid === worker.pid), `worker #${round} delivering`, 30_000);
        await new Promise((r) => setTimeout(r, Math.random() * 1000));
        await worker.kill('SIGKILL');
        kills++;
        judge.assertCheckpointsBehindAcks(await t.engine.lag(mapping.id), written, `after kill ${kills}`);
      }
    } finally {
      await producer.stop();
    }
    assert.equal(producer.stats.failedCalls + producer.stats.failedRecords, 0, 'the producer was never refused');

    const last = startShardline('worker', env, 'worker#final');
    processes.push(last);
    await until(() => written.all().every((w) => judge.acked.get(w.shardId)?.has(w.seq)), `all ${written.count} records acknowledged`, 60_000, 100);
    await until(async () => (await t.engine.lag(mapping.id)).every((l) => l.recordsBehind === 0), 'every lane caught up', 30_000, 100);
    judge.assertCheckpointsBehindAcks(await t.engine.lag(mapping.id), written, 'at the end');
    const checked = judge.assertAllDeliveredInOrder(written);
    assert.equal(await last.kill('SIGTERM'), 0, 'the last worker stops cleanly');
    report('engine kills', {
      'kills survived': kills, 'records checked': checked, 'duplicates seen': judge.duplicates(),
      invocations: judge.log.length, 'run time': `${((Date.now() - started) / 1000).toFixed(1)} s`,
    });
  });
});
