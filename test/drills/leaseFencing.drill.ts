/**
 * Drill 3: two, then three engine processes share a mapping's leases while a producer writes;
 * one is killed with SIGKILL. Its leases are taken over within the lease expiry, and no lease is
 * ever served by two processes at once: the function's log shows, per shard, no two batches in
 * flight together from different processes (through the start-up spreading, which steals
 * leases from busy processes, and through the takeover). Nothing is lost or reordered per key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { type TestEngine, backends, openTestEngine } from '../harness.ts';
import { type EngineProcess, Judge, Written, engineEnv, report, skipWithoutPostgres, startProducer, startShardline, until } from './support.ts';

const SHARDS = 6;
const CYCLES = 3;
const TIMINGS = { leaseTtlSeconds: 3, heartbeatMs: 300, idlePollMs: 100 };

describe('drill: engine processes sharing leases, one killed', { skip: skipWithoutPostgres }, () => {
  let t: TestEngine;
  const processes: EngineProcess[] = [];
  before(async () => {
    t = await openTestEngine(backends.find((b) => b.name === 'postgres')!, { delivery: false });
    await t.engine.notifier.start();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await t.close();
  });

  /** Live owners and how many leases of the mapping each holds. */
  const owners = async (mappingId: string) => new Map((await t.engine.handle.query<{ owner: string; n: number }>(sql`
    select owner, count(*)::int as n from leases
     where mapping_id = ${mappingId} and owner is not null and expires_at > now() group by owner`)).map((r) => [r.owner, r.n]));
  const pidOf = (owner: string) => Number(owner.split(':').at(-2));

  for (const count of [2, 3]) {
    it(`${count} processes: leases spread, a killed one's leases move within the expiry, never served twice at once`, async () => {
      const started = Date.now();
      const mine: EngineProcess[] = [];
      const judge = new Judge({ delayMs: [5, 40], pids: () => mine.map((p) => p.pid) });
      await judge.start();
      try {
        const stream = `fence${count}`;
        await t.engine.catalog.create({ name: stream, shardCount: SHARDS });
        await t.engine.createFunction({ name: `${stream}-fn`, url: judge.url });
        const mapping = await t.engine.createMapping({ streamName: stream, functionName: `${stream}-fn`, startingPosition: 'TRIM_HORIZON', batchSize: 10 });
        const written = new Written();
        const keys = Array.from({ length: 30 }, (_, i) => `key${i}`);
        const producer = startProducer((records) => t.engine.putRecords(stream, records), keys, written, { perCall: 10, pauseMs: 10 });
        const env = engineEnv(t.databaseUrl!, TIMINGS);
        try {
          // Started one after another while records flow, so the later ones steal from busy ones.
          for (let i = 0; i < count; i++) {
            const p = startShardline('worker', env, `worker${i}`);
            mine.push(p);
            processes.push(p);
            await until(async () => [...(await owners(mapping.id)).keys()].some((o) => pidOf(o) === p.pid), `worker ${i} holds a lease`, 30_000, 50);
          }
          const share = Math.ceil(SHARDS / count);
          await until(async () => {
            const o = await owners(mapping.id);
            return o.size === count && [...o.values()].every((n) => n <= share) && [...o.values()].reduce((a, b) => a + b, 0) === SHARDS;
          }, `${SHARDS} leases spread over ${count} processes`, 30_000, 50);
          await until(() => mine.every((p) => judge.log.some((i) => i.pid === p.pid)), 'every process delivering', 20_000);

          // Kill one, watch its leases move, start a replacement (which steals its share back
          // from busy processes), and again.
          const takeovers: number[] = [];
          for (let cycle = 0; cycle < CYCLES; cycle++) {
            const live = mine.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
            const victim = live[Math.floor(Math.random() * live.length)]!;
            await victim.kill('SIGKILL');
            const killedAt = Date.now();
            await until(async () => {
              const o = await owners(mapping.id);
              return [...o.keys()].every((owner) => pidOf(owner) !== victim.pid) && [...o.values()].reduce((a, b) => a + b, 0) === SHARDS;
            }, 'the killed process\'s leases taken over', 20_000, 20);
            const takeoverMs = Date.now() - killedAt;
            takeovers.push(takeoverMs);
            assert.ok(takeoverMs <= TIMINGS.leaseTtlSeconds * 1000 + 2 * TIMINGS.heartbeatMs + 500,
              `leases moved ${takeoverMs} ms after the kill; the expiry is ${TIMINGS.leaseTtlSeconds} s`);
            await until(async () => {
              const o = await owners(mapping.id);
              return o.size === count - 1 && [...o.values()].every((n) => n <= Math.ceil(SHARDS / (count - 1)));
            }, 'the survivors share the leases evenly', 20_000, 50);
            const replacement = startShardline('worker', env, `worker${mine.length}`);
            mine.push(replacement);
            processes.push(replacement);
            await until(async () => {
              const o = await owners(mapping.id);
              return o.size === count && [...o.values()].every((n) => n <= share) && [...o.keys()].some((owner) => pidOf(owner) === replacement.pid);
            }, 'the replacement took its share', 30_000, 50);
          }
          await new Promise((r) => setTimeout(r, 500));
          await producer.stop();
          assert.equal(producer.stats.failedCalls + producer.stats.failedRecords, 0);

          await until(() => written.all().every((w) => judge.acked.get(w.shardId)?.has(w.seq)), `all ${written.count} records acknowledged`, 60_000, 100);
          judge.assertCheckpointsBehindAcks(await t.engine.lag(mapping.id), written, 'at the end');
          const checked = judge.assertAllDeliveredInOrder(written);
          const compared = judge.assertNoOverlapAcrossProcesses();
          report(`${count} processes, one killed`, {
            'kills survived': CYCLES, 'takeover after kill': `${Math.min(...takeovers)}–${Math.max(...takeovers)} ms (expiry ${TIMINGS.leaseTtlSeconds} s)`, 'records checked': checked,
            'duplicates seen': judge.duplicates(), 'invocations checked for overlap': compared, 'handovers seen': judge.handovers(),
            'run time': `${((Date.now() - started) / 1000).toFixed(1)} s`,
          });
        } finally {
          await producer.stop();
          await Promise.all(mine.map((p) => p.kill('SIGTERM')));
          await t.engine.deleteMapping(mapping.id);
        }
      } finally {
        await judge.stop();
      }
    });
  }
});
