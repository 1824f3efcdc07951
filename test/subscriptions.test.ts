/**
 * The lag, failures and alerts subscriptions through real graphql-ws clients, on PGlite and
 * Postgres; and that a subscriber who leaves leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

for (const backend of backends) {
  describe(`subscriptions (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let client: Client;
    let url: string;
    let baseline: number[];
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-subs-'));
    const subscribe = (query: string) => {
      const values: any[] = [];
      const errors: unknown[] = [];
      const stop = client.subscribe({ query }, { next: (v: any) => values.push({ ...v.data, receivedAt: Date.now() }), error: (e) => errors.push(e), complete: () => {} });
      return { values, errors, stop };
    };

    before(async () => {
      // gate.mjs: blocks every invocation while `closed`; fails on data "fail".
      writeFileSync(join(functionsDir, 'gate.mjs'), `
        export const gate = { closed: true, waiters: [] };
        export function open() { gate.closed = false; for (const w of gate.waiters.splice(0)) w(); }
        export async function handler(event) {
          if (event.Records.some((r) => Buffer.from(r.kinesis.data, 'base64').toString() === 'fail')) throw new Error('failing on purpose');
          if (gate.closed) await new Promise((resolve) => gate.waiters.push(resolve));
          return null;
        }`);
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 }, alertIntervalMs: 100 });
      await t.engine.start();
      app = buildApp({ engine: t.engine });
      url = await app.start(0, '127.0.0.1');
      baseline = ['failures', 'leases', 'alerts', 'records'].map((e) => t.engine.events.listenerCount(e as 'failures'));
    });
    // A client per test: a lazy client that closes after one test's last subscription and
    // reconnects for the next would race its own close.
    beforeEach(() => {
      client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    });
    afterEach(async () => {
      await client.dispose();
    });
    after(async () => {
      await app.stop();
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('pushes lag at once, while behind, and when it settles at zero; alerts fire and resolve once each', async () => {
      await t.engine.createStream({ name: 'lagging', shardCount: 2 });
      await t.engine.createFunction({ name: 'gate', module: 'gate.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'lagging', functionName: 'gate', startingPosition: 'TRIM_HORIZON', batchSize: 5 });
      await t.engine.alerts.create({ name: 'behind', mappingId: mapping.id, metric: 'RECORDS_BEHIND', threshold: 0, forSeconds: 1 });
      const lag = subscribe(`subscription { lag(mappingId: "${mapping.id}") { mappingId streamName recordsBehind maxIteratorAgeMs at shards { shardId lane state recordsBehind } } }`);
      const alerts = subscribe('subscription { alerts { id state value rule { name metric } startedAt resolvedAt } }');
      await waitFor(() => lag.values.length >= 1, 'the current state at once');
      assert.equal(lag.values[0].lag.mappingId, mapping.id);
      assert.equal(lag.values[0].lag.streamName, 'lagging');
      await t.engine.putRecords('lagging', Array.from({ length: 30 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`r${i}`) })));
      await waitFor(() => lag.values.some((v) => v.lag.recordsBehind > 0), 'an update while behind');
      // Lineage-aware lag: split a shard while its lane is blocked; its children wait on it.
      await t.engine.splitShard('lagging', 'shardId-000000000000', (1n << 126n).toString());
      const waiting = await waitFor(async () => {
        const rows = await t.engine.lag(mapping.id);
        const children = rows.filter((r) => r.state === 'WAITING_FOR_PARENT');
        return children.length === 2 ? rows : undefined;
      }, 'children waiting for their parent');
      for (const child of waiting.filter((r) => r.state === 'WAITING_FOR_PARENT')) assert.deepEqual(child.waitingOnShardIds, ['shardId-000000000000']);
      const stuck = waiting.find((r) => r.shardId === 'shardId-000000000000')!;
      assert.ok(stuck.recordsBehind > 0);
      assert.ok(stuck.timeToDataLossSeconds! > 23 * 3600 && stuck.timeToDataLossSeconds! <= 24 * 3600, 'retention of 24 h bounds the time to data loss');
      const firing = await waitFor(() => alerts.values.find((v) => v.alerts.state === 'FIRING'), 'alert FIRING', 10_000);
      assert.equal(firing.alerts.rule.name, 'behind');
      assert.ok(firing.alerts.value > 0);
      const module = await import(join(functionsDir, 'gate.mjs'));
      module.open();
      await waitFor(() => lag.values.at(-1)?.lag.recordsBehind === 0, 'settles at zero', 10_000);
      const resolved = await waitFor(() => alerts.values.find((v) => v.alerts.state === 'RESOLVED'), 'alert RESOLVED', 10_000);
      assert.equal(resolved.alerts.id, firing.alerts.id);
      assert.ok(resolved.alerts.resolvedAt);
      assert.equal(alerts.values.filter((v) => v.alerts.state === 'FIRING').length, 1, 'FIRING pushed once');
      assert.equal(alerts.values.filter((v) => v.alerts.state === 'RESOLVED').length, 1, 'RESOLVED pushed once');
      const stored = await t.engine.alerts.alerts('RESOLVED');
      assert.equal(String(stored[0]!.id), firing.alerts.id);
      lag.stop();
      alerts.stop();
      assert.deepEqual(lag.errors, []);
    });

    it('pushes each failure within 100 ms of it being recorded', async () => {
      await t.engine.createStream({ name: 'failing', shardCount: 1 });
      const mapping = await t.engine.createMapping({ streamName: 'failing', functionName: 'gate', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 1 });
      const listening = t.engine.events.listenerCount('failures');
      const feed = subscribe('subscription { failures(streamName: "failing") { streamName functionName failure { id kind mappingId shardId recordCount attempt message at } } }');
      // The feed hears failures from the moment the server has set the subscription up.
      await waitFor(() => t.engine.events.listenerCount('failures') > listening, 'the subscription is listening');
      await waitFor(async () => (await t.engine.lag(mapping.id)).length === 1, 'lease created');
      await t.engine.putRecords('failing', [{ partitionKey: 'k', data: b64('fail') }]);
      await waitFor(() => feed.values.some((v) => v.failures.failure.kind === 'RETRIES_EXHAUSTED'), 'the discard pushed', 10_000);
      const kinds = feed.values.map((v) => v.failures.failure.kind);
      assert.deepEqual(kinds, ['FUNCTION_ERROR', 'FUNCTION_ERROR', 'RETRIES_EXHAUSTED']);
      for (const v of feed.values) {
        assert.equal(v.failures.functionName, 'gate');
        assert.equal(v.failures.failure.mappingId, mapping.id);
        assert.ok(v.receivedAt - Date.parse(v.failures.failure.at) <= 100 + 50, `pushed within 100 ms (${v.receivedAt - Date.parse(v.failures.failure.at)} ms)`);
      }
      feed.stop();
    });

    it('leaves no listener behind when subscribers go away mid-stream', async () => {
      const count = () => ['failures', 'leases', 'alerts', 'records'].map((e) => t.engine.events.listenerCount(e as 'failures'));
      // Every earlier subscription has ended: back to what the engine itself listens to.
      const before = await waitFor(() => (count().every((n, i) => n === baseline[i]) ? count() : undefined), `earlier subscriptions gone ${count()} vs ${baseline}`);
      const subs = [
        subscribe('subscription { failures { failure { id } } }'),
        subscribe('subscription { alerts { id } }'),
        subscribe('subscription { lag(streamName: "lagging") { recordsBehind } }'),
        subscribe('subscription { records(streamName: "lagging") { sequenceNumber } }'),
      ];
      await waitFor(() => count()[0]! > before[0]! && count()[2]! > before[2]! && count()[1]! > before[1]! && count()[3]! > before[3]!, 'subscribed');
      for (const s of subs) s.stop();
      await waitFor(() => count().every((n, i) => n === before[i]), 'listeners removed');
    });
  });
}
