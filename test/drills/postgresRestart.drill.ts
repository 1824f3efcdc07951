/**
 * Drill 2: Postgres restarts (pg_ctl restart -m fast, then -m immediate: a crash with recovery)
 * while producers write through the GraphQL API of a `shardline serve` process and a
 * `shardline worker` delivers beside it. The cluster is the drill's own (initdb into a temporary
 * folder, its own port), so the restarts disturb nothing else. Producers get clear errors (a
 * code, no stack trace) and retry; both engine processes reconnect and resume by themselves;
 * every record a producer was told was written reaches the function, in order per key. A refused
 * call says UNAVAILABLE (retry; HTTP 503 when it was refused before GraphQL ran) and a refused
 * record InternalFailure (as Kinesis), never INTERNAL.
 *
 * What it found: postgres.js 3.4.9 threw from a deferred socket write once its connection had
 * closed, which ended `shardline serve` (patched in patches/postgres+3.4.9.patch, upstream
 * porsager/postgres#1154); and a lease whose lane had ended on a database error stayed renewed
 * by its process but served by nobody (poller.ts now gives such a lease back to be claimed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EngineProcess, Judge, type PutOutcome, ThrowawayPostgres, Written, engineEnv, graphql, report, skipWithoutPostgres, startProducer, startServe, startShardline, until } from './support.ts';

// A slow idle poll, so that a lane woken within a fraction of it was woken by a notification.
const TIMINGS = { leaseTtlSeconds: 3, heartbeatMs: 300, idlePollMs: 2500 };
const RESTARTS = ['fast', 'immediate', 'fast'] as const;
const PUT = `mutation($s: String!, $r: [PutRecordInput!]!) {
  putRecords(streamName: $s, records: $r) { failedRecordCount records { shardId sequenceNumber errorCode errorMessage } } }`;

describe('drill: Postgres restarts under producers and delivery', { skip: skipWithoutPostgres }, () => {
  const cluster = new ThrowawayPostgres();
  const processes: EngineProcess[] = [];
  const judge = new Judge({ delayMs: [0, 10], pids: () => processes.map((p) => p.pid) });
  before(async () => {
    await cluster.start();
    await judge.start();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await judge.stop();
    await cluster.stop();
  });

  it('producers see clear errors, the engine reconnects, nothing acknowledged is lost', async () => {
    const started = Date.now();
    const env = engineEnv(cluster.url, TIMINGS);
    const serve = await startServe(env);
    processes.push(serve);
    const worker = startShardline('worker', env);
    processes.push(worker);
    // Started (migrations checked, delivering) before the first restart: a process that cannot
    // reach the database at start-up exits, for its supervisor to start it again.
    await until(() => /shardline worker .* delivering/.test(worker.output()) || worker.child.exitCode !== null, 'the worker started', 60_000, 50);
    assert.equal(worker.child.exitCode, null, worker.output());
    const ok = async (query: string, variables: Record<string, unknown> = {}) => {
      const r = await graphql(serve.url, query, variables);
      assert.equal(r.body?.errors, undefined, r.text);
      return r.body.data;
    };
    await ok('mutation { createStream(input: {name: "pg", shardCount: 4}) { name } }');
    await ok('mutation($u: String!) { createFunction(input: {name: "pg-fn", url: $u}) { name } }', { u: judge.url });
    const { createEventSourceMapping: { id: mappingId } } = await ok(
      'mutation { createEventSourceMapping(input: {streamName: "pg", functionName: "pg-fn", startingPosition: TRIM_HORIZON, batchSize: 20}) { id } }');

    // Producers: every refusal must be a clear one; its records are simply not acknowledged.
    const refusals = new Map<string, number>();
    const unclear: string[] = [];
    const put = async (records: { partitionKey: string; data: string }[]): Promise<PutOutcome> => {
      const r = await graphql(serve.url, PUT, { s: 'pg', r: records });
      if (r.body?.data?.putRecords) {
        for (const entry of r.body.data.putRecords.records) if (entry.errorCode) refusals.set(`record ${entry.errorCode}`, (refusals.get(`record ${entry.errorCode}`) ?? 0) + 1);
        return r.body.data.putRecords;
      }
      const codes = (r.body?.errors ?? []).map((e: { extensions?: { code?: string } }) => e.extensions?.code);
      // Clear: a code that says what happened (UNAVAILABLE while the database restarts), never INTERNAL, no stack trace.
      const unavailable = r.status === 503 && codes.every((c: unknown) => c === 'UNAVAILABLE');
      if ((r.status >= 500 && !unavailable) || codes.length === 0 || codes.some((c: unknown) => typeof c !== 'string' || c === 'INTERNAL') || /\n\s+at /.test(r.text)) unclear.push(`${r.status} ${r.text.slice(0, 300)}`);
      for (const code of codes) refusals.set(String(code), (refusals.get(String(code)) ?? 0) + 1);
      throw new Error(`putRecords refused: ${codes.join(', ')}`);
    };
    const written = new Written();
    const producers = [0, 1].map((p) => startProducer(put, Array.from({ length: 10 }, (_, i) => `p${p}key${i}`), written, { perCall: 10, pauseMs: 20 }));
    const resumeMs: number[] = [];
    const restartMs: number[] = [];
    const ticker = process.env.SHARDLINE_DRILL_VERBOSE ? setInterval(() => console.error(`written ${written.count}, invocations ${judge.log.length}, acked ${[...judge.acked.values()].reduce((s, a) => s + a.size, 0)}, calls ${producers.map((p) => `${p.stats.calls}/${p.stats.failedCalls}`)}, refusals ${JSON.stringify([...refusals])}`), 2000) : undefined;
    try {
      await until(() => judge.log.length > 20, 'delivery under way', 60_000);
      for (const mode of RESTARTS) {
        const before = written.count;
        const at = Date.now();
        await cluster.restart(mode);
        const back = Date.now();
        restartMs.push(back - at);
        // Resumed: records written after the restart reach the function.
        await until(() => written.count >= before + 50
          && written.all().slice(before + 40, before + 50).every((w) => judge.acked.get(w.shardId)?.has(w.seq)), `delivery resumed after the ${mode} restart`, 60_000, 50);
        resumeMs.push(Date.now() - back);
      }
    } finally {
      clearInterval(ticker);
      await Promise.all(producers.map((p) => p.stop()));
    }
    assert.deepEqual(unclear, [], 'every refusal a producer saw carried a code and no stack trace');

    await until(() => written.all().every((w) => judge.acked.get(w.shardId)?.has(w.seq)), `all ${written.count} acknowledged writes delivered`, 60_000, 100);
    const lag = (await ok(`{ eventSourceMapping(id: "${mappingId}") { lag { shardId checkpointSequenceNumber } } }`)).eventSourceMapping.lag;
    judge.assertCheckpointsBehindAcks(lag, written, 'at the end');
    const checked = judge.assertAllDeliveredInOrder(written);
    for (const p of [serve, worker]) assert.equal(p.child.exitCode, null, `process ${p.pid} is still running: ${p.output().slice(-500)}`);

    // LISTEN/NOTIFY is back in both processes: a record written through serve wakes the lane
    // that holds its shard, in whichever process, well before the idle poll would.
    let slowest = 0;
    for (let round = 0; round < 3; round++) {
      const fresh = new Written();
      const p = startProducer(put, Array.from({ length: 8 }, (_, i) => `wake${round}key${i}`), fresh, { perCall: 8, pauseMs: 0 });
      await until(() => fresh.count >= 8, 'the wake-up records written', 10_000, 5);
      await p.stop();
      const at = Date.now();
      await until(() => fresh.all().every((w) => judge.acked.get(w.shardId)?.has(w.seq)), 'the wake-up records delivered', 10_000, 5);
      slowest = Math.max(slowest, Date.now() - at);
    }
    assert.ok(slowest < TIMINGS.idlePollMs / 2, `a record took ${slowest} ms to be delivered: a lane was not woken by the notification (idle poll ${TIMINGS.idlePollMs} ms)`);
    report('Postgres restarts', {
      restarts: RESTARTS.join(', '), 'pg_ctl restart took': restartMs.map((ms) => `${ms} ms`).join(', '),
      'delivery resumed after Postgres was back': resumeMs.map((ms) => `${ms} ms`).join(', '),
      'producer calls': producers.reduce((s, p) => s + p.stats.calls, 0),
      refusals: [...refusals].map(([code, n]) => `${n} ${code}`).join(', ') || 'none',
      'records checked': checked, 'duplicates seen': judge.duplicates(), 'wake-up after the restarts': `≤ ${slowest} ms`,
      'run time': `${((Date.now() - started) / 1000).toFixed(1)} s`,
    });
  });
});
