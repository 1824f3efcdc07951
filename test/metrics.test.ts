/**
 * Metrics: the history sampler (metric_samples, EventSourceMapping.metrics), its compaction,
 * the Prometheus endpoint (parsed by a real Prometheus text parser), /healthz and /readyz —
 * on PGlite and on Postgres, after a known workload of module functions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { type App, buildApp } from '../api/app.ts';
import { type DatabaseHandle, openDatabase } from '../engine/db.ts';
import { DEFAULT_ENGINE_OPTIONS, Engine } from '../engine/engine.ts';
import { MetricsSampler } from '../engine/metrics/metricsSampler.ts';
import { watchFailures } from '../engine/observability/failureFeed.ts';
import { watchLag } from '../engine/observability/lagFeed.ts';
import { migrate } from '../engine/migrate.ts';
import WebSocket from 'ws';
import { type Backend, type TestEngine, b64, backends, bounded, freshPostgresDatabase, openTestEngine, waitFor } from './harness.ts';

const N = 60;

function family(parsed: ParsedFamily[], name: string): ParsedFamily {
  const found = parsed.find((f) => f.name === name);
  assert.ok(found, `series ${name} is exposed`);
  return found;
}

/** The samples of a family whose labels include `labels`. */
function samples(parsed: ParsedFamily[], name: string, labels: Record<string, string>) {
  return family(parsed, name).metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

/** The sum over the series matching `labels` (0 when none): counters are per shard. */
function total(parsed: ParsedFamily[], name: string, labels: Record<string, string>): number {
  return samples(parsed, name, labels).reduce((sum, m) => sum + Number(m.value), 0);
}

function value(parsed: ParsedFamily[], name: string, labels: Record<string, string>): number {
  const found = samples(parsed, name, labels);
  assert.equal(found.length, 1, `one ${name} series for ${JSON.stringify(labels)}`);
  return Number(found[0]!.value);
}

/** An engine app on a fresh database, started on a free port; with its handle for closing. */
async function bareApp(backend: Backend): Promise<{ app: App; base: string; handle: DatabaseHandle; engine: Engine; drop: () => Promise<void> }> {
  const fresh = backend.url ? await freshPostgresDatabase(backend.url) : undefined;
  const handle = await openDatabase({ databaseUrl: fresh?.url });
  await migrate(handle);
  const engine = new Engine(handle, { ...DEFAULT_ENGINE_OPTIONS, delivery: false });
  const app = buildApp({ engine, logError: () => {} });
  const base = new URL(await app.start(0, '127.0.0.1')).origin;
  return { app, base, handle, engine, drop: async () => { await fresh?.drop(); } };
}

for (const backend of backends) {
  describe(`metrics (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let base: string;
    let mappingId = '';
    const started = new Date();
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-metrics-'));

    let text = '';
    const scrape = async () => {
      const response = await fetch(`${base}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      text = await response.text();
      return parsePrometheusTextFormat(text);
    };
    const gql = async (query: string, variables?: Record<string, unknown>) =>
      (await (await fetch(`${base}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
      })).json()) as { data?: any; errors?: { message: string; extensions: { code: string } }[] };

    before(async () => {
      writeFileSync(join(functionsDir, 'ok.mjs'), 'export async function handler() { return null; }\n');
      writeFileSync(join(functionsDir, 'fail.mjs'), 'export async function handler() { throw new Error("boom"); }\n');
      t = await openTestEngine(backend, {
        functionsDir,
        delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 },
        metricsStepMs: 200,
      });
      await t.engine.start();
      app = buildApp({ engine: t.engine, logError: () => {} });
      base = new URL(await app.start(0, '127.0.0.1')).origin;
    });
    after(async () => {
      await app.stop();
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('exposes the workload on /metrics in the Prometheus text format', async () => {
      await t.engine.createStream({ name: 'orders', shardCount: 2 });
      await t.engine.createFunction({ name: 'ok', module: 'ok.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'orders', functionName: 'ok', startingPosition: 'TRIM_HORIZON', batchSize: 7 });
      mappingId = mapping.id;
      for (let i = 0; i < N; i += 20) {
        await t.engine.putRecords('orders', Array.from({ length: 20 }, (_, j) => ({ partitionKey: `k${i + j}`, data: b64(`r${i + j}`) })));
      }
      await waitFor(async () => {
        const lag = await t.engine.lag(mapping.id);
        return lag.length === 2 && lag.every((l) => l.recordsBehind === 0);
      }, 'orders caught up', 15_000);
      const invocations = (await t.engine.invocations(mapping.id, { first: 1000 })).items.map((i) => i.node);
      assert.ok(invocations.length >= Math.ceil(N / 7) - 1 && invocations.every((i) => i.outcome === 'OK'));

      const parsed = await scrape();
      const m = { stream: 'orders', mapping: mapping.id, function: 'ok' };
      assert.equal(value(parsed, 'shardline_records_ingested_total', { stream: 'orders' }), N);
      assert.equal(family(parsed, 'shardline_records_ingested_total').type, 'COUNTER');
      const behind = samples(parsed, 'shardline_records_behind', m);
      assert.deepEqual(behind.map((s) => s.labels!.shard).sort(), ['shardId-000000000000', 'shardId-000000000001']);
      assert.ok(behind.every((s) => Number(s.value) === 0 && s.labels!.lane === '0'));
      assert.equal(samples(parsed, 'shardline_iterator_age_ms', m).length, 2);
      assert.ok(samples(parsed, 'shardline_iterator_age_ms', m).every((s) => Number(s.value) === 0), 'caught up: age 0, not the last batch\'s');
      assert.equal(samples(parsed, 'shardline_oldest_unprocessed_age_ms', m).length, 0, 'nothing unprocessed');
      assert.equal(total(parsed, 'shardline_invocations_total', m), invocations.length);
      assert.deepEqual(samples(parsed, 'shardline_invocations_total', m).map((x) => x.labels!.shard).sort(),
        ['shardId-000000000000', 'shardId-000000000001'], 'counters per shard');
      for (const shard of ['shardId-000000000000', 'shardId-000000000001']) {
        assert.equal(value(parsed, 'shardline_invocations_total', { ...m, shard }), invocations.filter((i) => i.shardId === shard).length);
      }
      assert.equal(total(parsed, 'shardline_errors_total', m), 0);
      assert.equal(total(parsed, 'shardline_throttles_total', m), 0);
      assert.equal(total(parsed, 'shardline_discarded_records_total', m), 0);
      const ttl = samples(parsed, 'shardline_time_to_data_loss_seconds', m);
      assert.equal(ttl.length, 2);
      assert.ok(ttl.every((s) => s.value === '+Inf'), 'no data at risk when nothing is behind');

      // parse-prometheus-text-format folds a histogram's series into one (keeping only `le`) and
      // drops labelled _sum/_count lines: the text lines are read here, per shard.
      assert.equal(family(parsed, 'shardline_invocation_duration_seconds').type, 'HISTOGRAM');
      const lines = text.split('\n');
      for (const shard of ['shardId-000000000000', 'shardId-000000000001']) {
        const own = invocations.filter((i) => i.shardId === shard);
        const labels = `stream="orders",mapping="${mapping.id}",function="ok",shard="${shard}"`;
        assert.ok(lines.includes(`shardline_invocation_duration_seconds_count{${labels}} ${own.length}`), 'labelled _count');
        assert.ok(lines.includes(`shardline_invocation_duration_seconds_bucket{${labels},le="+Inf"} ${own.length}`), 'the +Inf bucket');
        const slow = own.filter((i) => i.durationMs > 1000).length;
        assert.ok(lines.includes(`shardline_invocation_duration_seconds_bucket{${labels},le="1"} ${own.length - slow}`), 'the 1 s bucket');
        const sum = lines.find((l) => l.startsWith(`shardline_invocation_duration_seconds_sum{${labels}} `));
        assert.ok(Math.abs(Number(sum?.split(' ')[1]) - own.reduce((s, i) => s + i.durationMs, 0) / 1000) < 1e-6, 'labelled _sum');
      }
    });

    it('counts GetRecords answered from memory, and what memory holds, for this process', async () => {
      const before = await scrape();
      assert.equal(value(before, 'shardline_recent_records_reads_total', {}), t.engine.recentRecords.hits);
      const stream = await t.engine.catalog.create({ name: 'held', shardCount: 1 });
      await t.engine.putRecords('held', [{ partitionKey: 'k', data: b64('held') }], { kinesisReaders: true });
      const [shard] = await t.engine.catalog.shards(stream, 'OPEN');
      await t.engine.readShardKinesisJson(stream, shard!, { after: -1n, lowMs: 0 }, 10, 1 << 20);
      const after = await scrape();
      assert.equal(value(after, 'shardline_recent_records_reads_total', {}), value(before, 'shardline_recent_records_reads_total', {}) + 1);
      assert.ok(value(after, 'shardline_recent_records_held_bytes', {}) >= value(before, 'shardline_recent_records_held_bytes', {}) + 100);
    });

    it('counts this process\'s subscribers per feed, and the events dropped for one that does not read', async () => {
      await t.engine.createStream({ name: 'watched', shardCount: 1 });
      const mapping = await t.engine.createMapping({ streamName: 'watched', functionName: 'ok', startingPosition: 'LATEST', enabled: false });
      const before = await scrape();
      for (const feed of ['lag', 'failures', 'alerts', 'replayProgress', 'records']) {
        assert.equal(value(before, 'shardline_subscribers', { feed }), 0, `no ${feed} subscriber yet`);
      }
      const abort = new AbortController();
      // Two failures subscribers; neither takes anything after its first event is asked for.
      const failures = [watchFailures(t.engine, { mappingId: mapping.id }, abort.signal), watchFailures(t.engine, { mappingId: mapping.id }, abort.signal)];
      const pending = failures.map((f) => f.next());
      const lag = watchLag(t.engine, { mappingId: mapping.id }, abort.signal);
      try {
        await lag.next(); // joined, and its first state read
        await waitFor(() => t.engine.feedCounts.subscribers('failures') === 2, 'both failures subscribers joined');
        const during = await scrape();
        assert.equal(value(during, 'shardline_subscribers', { feed: 'failures' }), 2);
        assert.equal(value(during, 'shardline_subscribers', { feed: 'lag' }), 1);
        // The first event wakes each subscriber's pending next(); the rest wait in its queue,
        // bounded at 10,000: five more than that drop the five oldest for each of the two.
        const [shard] = await t.engine.catalog.shards(await t.engine.catalog.get('watched'), 'OPEN');
        for (let id = 1; id <= 1 + 10_005; id++) {
          const row = { id: 1_000_000 + id, mappingId: mapping.id, kind: 'FUNCTION_ERROR' as const, shardKey: shard!.key, firstSeq: 1n, lastSeq: 1n, recordCount: 1, attempt: 1, message: 'x', at: new Date(), destinationRecord: null, redrivenBy: null, lane: 0, lanes: 1 };
          t.engine.events.emit('failures', { mappingId: mapping.id, ids: [row.id], rows: [row] });
        }
        await Promise.all(pending);
        await waitFor(() => t.engine.feedCounts.dropped('failures') === 10, 'five events dropped for each subscriber');
        const full = await scrape();
        assert.equal(value(full, 'shardline_subscriber_events_dropped_total', { feed: 'failures' }), 10);
      } finally {
        abort.abort();
        await Promise.all([...failures, lag].map((g) => g.return(undefined)));
      }
      const after = await scrape();
      assert.equal(value(after, 'shardline_subscribers', { feed: 'failures' }), 0, 'the subscribers that left are counted out');
      assert.equal(value(after, 'shardline_subscribers', { feed: 'lag' }), 0);
      assert.equal(value(after, 'shardline_subscriber_events_dropped_total', { feed: 'failures' }), 10, 'a counter: it stays');
    });

    it('ends a shard\'s lag series once the shard is read to its end', async () => {
      await t.engine.createStream({ name: 'resharded', shardCount: 1 });
      const mapping = await t.engine.createMapping({ streamName: 'resharded', functionName: 'ok', startingPosition: 'TRIM_HORIZON' });
      await t.engine.putRecords('resharded', [{ partitionKey: 'a', data: b64('a') }]);
      await t.engine.splitShard('resharded', 'shardId-000000000000', (1n << 127n).toString());
      await waitFor(async () => (await t.engine.lag(mapping.id)).some((l) => l.shardId === 'shardId-000000000000' && l.state === 'SHARD_END'),
        'the parent read to its end', 10_000);
      const series = async () => samples(await scrape(), 'shardline_records_behind', { stream: 'resharded', mapping: mapping.id, function: 'ok' })
        .map((x) => x.labels!.shard).sort();
      // The children's leases come with the next heartbeat; the parent's series never comes back.
      const shards = await waitFor(async () => {
        const now = await series();
        assert.ok(!now.includes('shardId-000000000000'), 'the parent\'s series ended');
        return now.length === 2 ? now : undefined;
      }, 'the children\'s series', 10_000);
      assert.deepEqual(shards, ['shardId-000000000001', 'shardId-000000000002'], 'the children only');

      // A mapping that has invoked nothing yet has its counters, at 0, once its lanes exist.
      await t.engine.createStream({ name: 'idle', shardCount: 1 });
      const idle = await t.engine.createMapping({ streamName: 'idle', functionName: 'ok', startingPosition: 'TRIM_HORIZON' });
      await waitFor(async () => (await t.engine.lag(idle.id)).length === 1, 'its lease', 10_000);
      const i = { stream: 'idle', mapping: idle.id, function: 'ok', shard: 'shardId-000000000000' };
      const parsed = await scrape();
      for (const name of ['shardline_invocations_total', 'shardline_errors_total', 'shardline_throttles_total', 'shardline_discarded_records_total']) {
        assert.equal(value(parsed, name, i), 0, name);
      }
    });

    it('exposes errors, discarded records and a finite time to data loss', async () => {
      await t.engine.createFunction({ name: 'fail', module: 'fail.mjs#handler' });
      await t.engine.createStream({ name: 'stuck', shardCount: 1 });
      const stuck = await t.engine.createMapping({
        streamName: 'stuck', functionName: 'fail', startingPosition: 'TRIM_HORIZON', maximumRecordAgeSeconds: 3600,
      });
      await t.engine.createStream({ name: 'poison', shardCount: 1 });
      const poison = await t.engine.createMapping({
        streamName: 'poison', functionName: 'fail', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 0,
      });
      await t.engine.putRecords('stuck', [1, 2, 3].map((i) => ({ partitionKey: `s${i}`, data: b64(`s${i}`) })));
      await t.engine.putRecords('poison', [1, 2, 3].map((i) => ({ partitionKey: `p${i}`, data: b64(`p${i}`) })));
      await waitFor(async () => (await t.engine.invocations(stuck.id, { first: 1 })).items.length > 0, 'stuck invoked', 10_000);
      await waitFor(async () => (await t.engine.lag(poison.id)).every((l) => l.recordsBehind === 0), 'poison discarded', 10_000);

      const parsed = await scrape();
      const s = { stream: 'stuck', mapping: stuck.id, function: 'fail' };
      assert.ok(total(parsed, 'shardline_errors_total', s) >= 1);
      assert.equal(value(parsed, 'shardline_records_behind', s), 3);
      assert.ok(value(parsed, 'shardline_oldest_unprocessed_age_ms', s) >= 0);
      const ttl = value(parsed, 'shardline_time_to_data_loss_seconds', s);
      assert.ok(ttl > 3000 && ttl <= 3600, `maximumRecordAgeSeconds bounds the time to data loss (got ${ttl})`);
      const p = { stream: 'poison', mapping: poison.id, function: 'fail' };
      assert.equal(total(parsed, 'shardline_discarded_records_total', p), 3);
      assert.ok(total(parsed, 'shardline_errors_total', p) >= 1);
      assert.equal(total(parsed, 'shardline_errors_total', p), total(parsed, 'shardline_invocations_total', p));
    });

    it('samples a history whose records processed add up to the workload', async () => {
      const to = () => new Date(Date.now() + 60_000);
      const from = new Date(started.getTime() - 60_000);
      const invocations = (await t.engine.invocations(mappingId, { first: 1000 })).items.length;
      const points = await waitFor(async () => {
        const p = await t.engine.metrics(mappingId, from, to(), 1);
        const processed = p.reduce((sum, x) => sum + x.recordsProcessed, 0);
        return processed === N && p.at(-1)!.recordsBehind === 0 ? p : undefined;
      }, 'history of the workload', 10_000);
      assert.equal(points.reduce((sum, x) => sum + x.invocations, 0), invocations);
      assert.equal(points.reduce((sum, x) => sum + x.errors, 0), 0);
      assert.ok(points.some((x) => x.iteratorAgeMs !== null));
      for (let i = 1; i < points.length; i++) assert.ok(points[i - 1]!.at < points[i]!.at, 'in time order');
      const rows = await t.engine.handle.query<{ n: unknown }>(sql`
        select count(*) as n from metric_samples where mapping_id = ${mappingId} and step_seconds = 1`);
      assert.ok(Number(rows[0]!.n) > 0, 'rows are written at the configured step');

      const query = `query($id: ID!, $from: DateTime!, $to: DateTime!, $step: Int) {
        eventSourceMapping(id: $id) { metrics(from: $from, to: $to, stepSeconds: $step) { at iteratorAgeMs recordsBehind invocations errors recordsProcessed } } }`;
      const ok = await gql(query, { id: mappingId, from: from.toISOString(), to: to().toISOString(), step: 60 });
      assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
      const gqlPoints = ok.data.eventSourceMapping.metrics as { at: string; recordsProcessed: number; invocations: number }[];
      assert.equal(gqlPoints.reduce((sum, x) => sum + x.recordsProcessed, 0), N);
      assert.equal(gqlPoints.reduce((sum, x) => sum + x.invocations, 0), invocations);
      assert.ok(gqlPoints.every((x) => (new Date(x.at).getTime() - from.getTime()) % 60_000 === 0), 'bucketed from `from`');

      const code = async (vars: Record<string, unknown>) => (await gql(query, { id: mappingId, ...vars })).errors?.[0]?.extensions.code;
      const now = Date.now();
      const iso = (ms: number) => new Date(ms).toISOString();
      assert.equal(await code({ from: iso(now), to: iso(now), step: 60 }), 'INVALID_ARGUMENT');
      assert.equal(await code({ from: iso(now), to: iso(now - 1000), step: 60 }), 'INVALID_ARGUMENT');
      assert.equal(await code({ from: iso(now - 60_000), to: iso(now), step: 0 }), 'INVALID_ARGUMENT');
      assert.equal(await code({ from: iso(now - 60_000), to: iso(now), step: 86_401 }), 'INVALID_ARGUMENT');
      assert.equal(await code({ from: iso(now - 2 * 86_400_000), to: iso(now), step: 1 }), 'LIMIT_EXCEEDED');
      assert.equal(await code({ from: iso(now - 10_000_000), to: iso(now), step: 1 }), undefined, 'exactly 10,000 points are served');
    });

    it('samples each step once when several samplers share the database', async () => {
      const other = backend.url ? await openDatabase({ databaseUrl: t.databaseUrl }) : t.engine.handle;
      try {
        const second = new MetricsSampler(other, { stepMs: 200 });
        const future = new Date(Math.ceil((Date.now() + 3_600_000) / 200) * 200);
        const results = await Promise.all([t.engine.metricsSampler.sample(future), second.sample(future)]);
        assert.deepEqual(results.filter(Boolean).length, 1, `one sampler wrote the step (${results})`);
        const [pairs] = await t.engine.handle.query<{ n: unknown }>(sql`
          select count(*) as n from (select distinct mapping_id, shard_key from leases where state <> 'SHARD_END') l`);
        const [rows] = await t.engine.handle.query<{ n: unknown }>(sql`select count(*) as n from metric_samples where at = ${future.toISOString()}::timestamptz`);
        assert.equal(Number(rows!.n), Number(pairs!.n), 'one row per mapping and shard not read to its end');
        assert.equal(await second.sample(future), false, 'a sampled step is not sampled again');
      } finally {
        await t.engine.handle.query(sql`delete from metric_samples where at > now() + interval '30 minutes'`);
        if (other !== t.engine.handle) await other.close();
      }
    });

    it('serves a step whose gauges went unsampled with the figure before it, not a drop to 0', async () => {
      const id = 'gap';
      const T = Math.floor((Date.now() - 120_000) / 10_000) * 10_000;
      // Step 1 sampled (5 behind), step 2 only counters (its gauges missed), step 3 sampled (7).
      await t.engine.handle.query(sql.raw(`insert into metric_samples
        (mapping_id, shard_key, step_seconds, at, iterator_age_ms, records_behind, invocations, errors, records_processed) values
        ('${id}', 1, 10, '${new Date(T).toISOString()}', 100, 5, 1, 0, 10),
        ('${id}', 1, 10, '${new Date(T + 10_000).toISOString()}', null, null, 2, 0, 20),
        ('${id}', 1, 10, '${new Date(T + 20_000).toISOString()}', 300, 7, 1, 0, 10)`));
      try {
        const points = await t.engine.metrics(id, new Date(T), new Date(T + 30_000), 10);
        assert.deepEqual(points.map((p) => [p.recordsBehind, p.invocations]), [[5, 1], [5, 2], [7, 1]]);
      } finally {
        await t.engine.handle.query(sql`delete from metric_samples where mapping_id = ${id}`);
      }
    });

    it('folds old rows into 60 s and 3600 s rows and expires rows older than 7 days', async () => {
      const now = new Date();
      const T = now.getTime();
      const id = 'synthetic';
      const rows: string[] = [];
      const row = (at: number, step: number, inv: number, behind: number, age: number | null) =>
        rows.push(`('${id}', 1, ${step}, '${new Date(at).toISOString()}', ${age ?? 'null'}, ${behind}, ${inv}, ${inv > 1 ? 1 : 0}, ${inv * 5})`);
      const minute = Math.floor((T - 2 * 3_600_000) / 60_000) * 60_000;
      for (let i = 0; i < 12; i++) row(minute + i * 10_000, 10, 1, i % 6, (i % 6) * 100);
      for (let i = 0; i < 3; i++) row(T - 600_000 + i * 10_000, 10, 1, 1, 50);
      const hour = Math.floor((T - 2 * 86_400_000) / 3_600_000) * 3_600_000;
      for (let i = 0; i < 60; i++) row(hour + i * 60_000, 60, 2, i, null);
      for (let i = 0; i < 4; i++) row(T - 8 * 86_400_000 + i * 3_600_000, 3600, 7, 0, null);
      await t.engine.handle.query(sql.raw(`insert into metric_samples
        (mapping_id, shard_key, step_seconds, at, iterator_age_ms, records_behind, invocations, errors, records_processed) values ${rows.join(', ')}`));
      const sums = async () => {
        const points = await t.engine.metrics(id, new Date(T - 3 * 86_400_000), new Date(T + 1000), 3600);
        return ['invocations', 'errors', 'recordsProcessed'].map((k) => points.reduce((s, p) => s + (p as any)[k], 0));
      };
      const before = await sums();
      assert.deepEqual(before, [12 + 3 + 120, 60, 5 * 135]);

      await t.engine.metricsSampler.compact(now);
      const left = await t.engine.handle.query<{ step_seconds: number; at_ms: number; iterator_age_ms: unknown; records_behind: unknown; invocations: number; records_processed: number }>(sql`
        select step_seconds, (extract(epoch from at) * 1000)::float8 as at_ms, iterator_age_ms, records_behind, invocations, records_processed
          from metric_samples where mapping_id = ${id} order by at`);
      assert.deepEqual(left.map((r) => [r.step_seconds, r.at_ms, Number(r.invocations)]), [
        [3600, hour, 120],
        [60, minute, 6],
        [60, minute + 60_000, 6],
        ...[0, 1, 2].map((i) => [10, T - 600_000 + i * 10_000, 1]),
      ]);
      assert.equal(Number(left[0]!.records_behind), 59, 'max of records behind');
      assert.equal(left[0]!.iterator_age_ms, null);
      assert.equal(Number(left[1]!.records_behind), 5);
      assert.equal(Number(left[1]!.iterator_age_ms), 500, 'max of iterator age');
      assert.equal(Number(left[1]!.records_processed), 30, 'sum of records processed');
      assert.deepEqual(await sums(), before, 'folding keeps the totals');
      assert.deepEqual(await t.engine.metricsSampler.compact(now), { toMinutes: 0, toHours: 0, expired: 0 }, 'nothing to fold twice');
      await t.engine.handle.query(sql`delete from metric_samples where mapping_id = ${id}`);
    });

    it('answers /healthz, and /readyz while every migration is applied', async () => {
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ok' });
      assert.equal((await fetch(`${base}/healthz`, { method: 'POST' })).status, 405);
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ready' });

      const [last] = await t.engine.handle.query<{ tag: string }>(sql`select tag from shardline_migrations order by tag desc limit 1`);
      await t.engine.handle.query(sql`delete from shardline_migrations where tag = ${last!.tag}`);
      try {
        const missing = await fetch(`${base}/readyz`);
        assert.equal(missing.status, 503);
        assert.match((await missing.json() as { reason: string }).reason, /migrations/);
      } finally {
        await t.engine.handle.query(sql`insert into shardline_migrations (tag) values (${last!.tag})`);
      }
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      assert.equal((await fetch(`${base}/graphql`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ streams { name } }"}',
      })).status, 200, 'GraphQL is still served beside them');
    });

    it('reports /readyz 503 once the database is closed', async () => {
      const bare = await bareApp(backend);
      try {
        assert.equal((await fetch(`${bare.base}/readyz`)).status, 200);
        await bare.handle.close();
        const closed = await fetch(`${bare.base}/readyz`);
        assert.equal(closed.status, 503);
        const body = await closed.json() as { status: string; reason: string };
        assert.equal(body.status, 'unavailable');
        assert.match(body.reason, /database/);
        assert.equal((await fetch(`${bare.base}/healthz`)).status, 200, 'the process is still up');
      } finally {
        await bare.app.stop();
        await bare.drop();
      }
    });

    it('closes a graphql-ws connection it cannot authenticate for want of the database with 1013, which clients retry', async (c) => {
      if (!backend.url) return c.skip('a closed PGlite fails with no driver code of an outage');
      const bare = await bareApp(backend);
      try {
        await bare.engine.tokens.create({ name: 'ws-reader', scopes: 'read' }, 'test');
        await bare.handle.close();
        const socket = new WebSocket(`${bare.base.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
        const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer sl_unknown' } })));
        const { code, reason } = await bounded(closed, 'the socket closed', 10_000);
        assert.equal(code, 1013, reason);
        assert.match(reason, /UNAVAILABLE/);
      } finally {
        await bare.app.stop();
        await bare.drop();
      }
    });
  });
}
