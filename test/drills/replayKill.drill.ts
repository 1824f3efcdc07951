/**
 * Drill 6: the process running a replay is killed with SIGKILL mid-way, several times, and
 * another process resumes the job from its cursors each time. The function's log is the judge:
 * every record of the window reaches it at least once, in order per key, none is skipped, and
 * nothing outside the window is delivered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Written, drillStage, engineEnv, report, skipWithoutPostgres, startShardline, until } from './support.ts';

const KILLS = 4;
const TIMINGS = { leaseTtlSeconds: 1, heartbeatMs: 200, idlePollMs: 100 };

describe('drill: a replay whose process is killed mid-way', { skip: skipWithoutPostgres }, () => {
  const stage = drillStage({ judge: { delayMs: [0, 10] } });
  const { judge, processes } = stage;

  it('is resumed by another process and delivers the whole window, in order per key', async () => {
    const { t } = stage;
    const started = Date.now();
    await t.engine.catalog.create({ name: 'rk', shardCount: 3 });
    await t.engine.createFunction({ name: 'rk-fn', url: judge.url });
    const window = new Written();
    const keys = Array.from({ length: 20 }, (_, i) => `key${i}`);
    for (let call = 0; call < 40; call++) {
      const batch = keys.map((key) => ({ key, n: call }));
      const result = await t.engine.putRecords('rk', batch.map((r) => ({ partitionKey: r.key, data: Buffer.from(`${r.key}:${r.n}`).toString('base64') })));
      result.records.forEach((e, i) => window.add({ ...batch[i]!, shardId: e.shardId!, seq: e.sequenceNumber! }));
    }
    const job = await t.engine.startReplay({ streamName: 'rk', from: { type: 'TRIM_HORIZON' }, functionName: 'rk-fn', ratePerSecond: 150, batchSize: 10 });
    // Written after the job started: outside its window.
    await t.engine.putRecords('rk', keys.map((key) => ({ partitionKey: key, data: Buffer.from(`${key}:outside`).toString('base64') })));
    const env = engineEnv(t.databaseUrl!, TIMINGS);

    let kills = 0;
    for (let round = 0; round < KILLS; round++) {
      const worker = startShardline('worker', env, `worker#${round}`);
      processes.push(worker);
      await until(() => judge.log.some((i) => i.pid === worker.pid), `worker #${round} running the replay`, 30_000);
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
      const progress = await t.engine.replays.get(job.id);
      assert.notEqual(progress.state, 'SUCCEEDED', 'the replay is still mid-way when its process is killed');
      await worker.kill('SIGKILL');
      kills++;
    }
    const last = startShardline('worker', env, 'worker#final');
    processes.push(last);
    const done = await until(async () => {
      const j = await t.engine.replays.get(job.id);
      return j.state === 'SUCCEEDED' ? j : undefined;
    }, 'the replay finished', 60_000, 100);
    assert.equal(done.totalRecords, window.count);
    assert.equal(done.failedRecords, 0);
    const checked = judge.assertAllDeliveredInOrder(window);
    const outside = judge.log.flatMap((i) => i.records).filter((r) => Number.isNaN(r.n));
    assert.equal(outside.length, 0, 'nothing outside the window was delivered');
    assert.equal(judge.uniqueRecords(), window.count, 'exactly the window, each record at least once');
    assert.equal(await last.kill('SIGTERM'), 0);
    report('replay killed mid-way', {
      'kills survived': kills, 'records checked': checked, 'duplicates seen': judge.duplicates(),
      invocations: judge.log.length, 'run time': `${((Date.now() - started) / 1000).toFixed(1)} s`,
    });
  });
});
