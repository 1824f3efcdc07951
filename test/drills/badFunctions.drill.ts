/**
 * Drill 4: functions that misbehave — one hangs past its timeout, one answers garbage (not
 * JSON), one answers the wrong shape, one answers 500 forever, one drops the connection — each
 * becomes the documented failure (README "Delivering to functions", NOTES.md: a failure row of
 * kind TIMEOUT or FUNCTION_ERROR per failed invocation, then a RETRIES_EXHAUSTED discard carrying
 * the on-failure record), and meanwhile a healthy mapping of the same stream, served by the same
 * engine process, keeps delivering. A garbage answer without ReportBatchItemFailures is a
 * success, as in AWS (the response body is not read then).
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TestEngine, backends, openTestEngine } from '../harness.ts';
import { type EngineProcess, Judge, Written, engineEnv, report, skipWithoutPostgres, startProducer, startShardline, until } from './support.ts';

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

/** A function server that answers every invocation the same way, counting them and those still open. */
async function badFunction(behave: Behaviour) {
  const stats = { requests: 0, open: 0 };
  const server: Server = createServer(async (req, res) => {
    stats.requests++;
    stats.open++;
    res.once('close', () => stats.open--);
    for await (const _ of req);
    behave(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    stats,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const BEHAVIOURS: Record<string, { behave: Behaviour; timeoutSeconds?: number; reportBatchItemFailures?: boolean; kind: 'TIMEOUT' | 'FUNCTION_ERROR' | 'NONE'; message?: RegExp }> = {
  hangs: { behave: () => {}, timeoutSeconds: 2, kind: 'TIMEOUT', message: /^Task timed out after 2\.00 seconds$/ },
  garbage: {
    behave: (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('<<\u0000 not json at all'); },
    reportBatchItemFailures: true, kind: 'FUNCTION_ERROR', message: /^Invalid function response: the response is not JSON\.$/,
  },
  wrongShape: {
    behave: (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"batchItemFailures":"everything"}'); },
    reportBatchItemFailures: true, kind: 'FUNCTION_ERROR', message: /^Invalid function response: batchItemFailures must be a list\.$/,
  },
  answers500: {
    behave: (_req, res) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('boom'); },
    kind: 'FUNCTION_ERROR', message: /^HTTP 500: boom$/,
  },
  closesConnection: {
    behave: (req) => { req.socket.destroy(); },
    kind: 'FUNCTION_ERROR', message: /^Connection to 127\.0\.0\.1:\d+ was reset before a complete response|^Request to 127\.0\.0\.1:\d+ failed/,
  },
  garbageLenient: {
    behave: (_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('<<\u0000 not json at all'); },
    kind: 'NONE',
  },
};

describe('drill: functions that hang, answer garbage, fail forever or drop the connection', { skip: skipWithoutPostgres }, () => {
  let t: TestEngine;
  let worker: EngineProcess | undefined;
  const judge = new Judge({ delayMs: [0, 5], pids: () => (worker ? [worker.pid] : []) });
  before(async () => {
    t = await openTestEngine(backends.find((b) => b.name === 'postgres')!, { delivery: false });
    await t.engine.notifier.start();
    await judge.start();
  });
  after(async () => {
    await worker?.kill();
    await judge.stop();
    await t.close();
  });

  it('each becomes its documented failure, and a healthy mapping keeps delivering meanwhile', async () => {
    const started = Date.now();
    await t.engine.catalog.create({ name: 'bad', shardCount: 2 });
    let producer: ReturnType<typeof startProducer> | undefined;
    const servers = Object.fromEntries(await Promise.all(Object.entries(BEHAVIOURS).map(async ([name, b]) => [name, await badFunction(b.behave)] as const)));
    try {
      const mappings: Record<string, string> = {};
      for (const [name, b] of Object.entries(BEHAVIOURS)) {
        await t.engine.createFunction({ name, url: servers[name]!.url, timeoutSeconds: b.timeoutSeconds ?? 3 });
        mappings[name] = (await t.engine.createMapping({
          streamName: 'bad', functionName: name, startingPosition: 'TRIM_HORIZON', batchSize: 50, maximumRetryAttempts: 1,
          ...(b.reportBatchItemFailures ? { functionResponseTypes: ['ReportBatchItemFailures'] } : {}),
        })).id;
      }
      await t.engine.createFunction({ name: 'healthy', url: judge.url });
      const healthy = await t.engine.createMapping({ streamName: 'bad', functionName: 'healthy', startingPosition: 'TRIM_HORIZON', batchSize: 50 });
      const written = new Written();
      const keys = Array.from({ length: 10 }, (_, i) => `key${i}`);
      producer = startProducer((records) => t.engine.putRecords('bad', records), keys, written, { perCall: 5, pauseMs: 100 });
      worker = startShardline('worker', engineEnv(t.databaseUrl!, { leaseTtlSeconds: 10, heartbeatMs: 500 }));

      // While the hanging function holds its invocations open, the healthy mapping acknowledges
      // records written after the hang began.
      await until(() => servers.hangs!.stats.open > 0, 'the hanging function invoked', 30_000);
      const hangBegan = written.count;
      await until(() => written.all().slice(hangBegan, hangBegan + 5).length === 5
        && written.all().slice(hangBegan, hangBegan + 5).every((w) => judge.acked.get(w.shardId)?.has(w.seq)), 'healthy deliveries during the hang', 10_000);
      assert.ok(servers.hangs!.stats.open > 0, 'the healthy mapping delivered while the hanging function was still holding an invocation');
      await producer.stop();

      // Every misbehaving mapping works through its records by the documented failures.
      const lastSeq = new Map<string, string>();
      for (const w of written.all()) if ((lastSeq.get(w.shardId) ?? '') < w.seq) lastSeq.set(w.shardId, w.seq);
      const figures: Record<string, string | number> = {};
      for (const [name, b] of Object.entries(BEHAVIOURS)) {
        await until(async () => (await t.engine.lag(mappings[name]!)).every((l) => l.checkpointSequenceNumber === (lastSeq.get(l.shardId) ?? null)),
          `${name}: the mapping moved past every record`, 90_000, 200);
        const rows = (await t.engine.failures(mappings[name]!, { first: 1000 })).items.map((i) => i.node);
        if (b.kind === 'NONE') {
          assert.equal(rows.length, 0, `${name}: a garbage answer without ReportBatchItemFailures is a success`);
          figures[name] = 'success (as AWS)';
          continue;
        }
        const invocationFailures = rows.filter((r) => r.kind !== 'RETRIES_EXHAUSTED');
        const discards = rows.filter((r) => r.kind === 'RETRIES_EXHAUSTED');
        assert.ok(invocationFailures.length > 0 && discards.length > 0, `${name}: failure rows and discards`);
        for (const r of invocationFailures) {
          assert.equal(r.kind, b.kind, `${name}: failure kind`);
          assert.match(r.message ?? '', b.message!, `${name}: failure message`);
          assert.equal(r.destinationRecord, null);
        }
        for (const r of discards) assert.equal((r.destinationRecord as { requestContext?: { condition?: string } }).requestContext?.condition, 'RetryAttemptsExhausted');
        const discarded = discards.reduce((sum, r) => sum + r.recordCount, 0);
        assert.equal(discarded, written.count, `${name}: every record discarded once, none skipped`);
        figures[name] = `${invocationFailures.length} ${b.kind}, ${discards.length} discards`;
      }
      const checked = judge.assertAllDeliveredInOrder(written);
      assert.equal(servers.hangs!.stats.open, 0, 'no invocation of the hanging function is left open');
      report('misbehaving functions', { ...figures, 'healthy records checked': checked, 'run time': `${((Date.now() - started) / 1000).toFixed(1)} s` });
    } finally {
      await producer?.stop();
      await Promise.all(Object.values(servers).map((s) => s.stop()));
    }
  });
});
