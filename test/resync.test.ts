/**
 * After the notifier's connection to Postgres was lost, events other processes raised meanwhile
 * were never heard. The notifier says so with a `resync` event once its LISTEN is back, and the
 * feeds read again what they keep: failures and alert transitions recorded meanwhile reach the
 * subscribers (once each), and the lag feed follows mappings created meanwhile.
 * "Another process" here is SQL written with no notification, as when the NOTIFY was lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { watchAlerts } from '../engine/alerts/alertFeed.ts';
import { openDatabase } from '../engine/db.ts';
import { DEFAULT_ENGINE_OPTIONS, Engine } from '../engine/engine.ts';
import { type FailureEvent, watchFailures } from '../engine/observability/failureFeed.ts';
import { type TestEngine, backends, bounded, openTestEngine, waitFor } from './harness.ts';

const postgresBackend = backends.find((b) => b.name === 'postgres');

for (const backend of backends) {
  describe(`resync after missed events (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend, { delivery: false });
      await t.engine.start();
    });
    after(() => t.close());

    /** A failure row recorded without an event, as another process's whose NOTIFY was lost. */
    const unheardFailure = async (mappingId: string, shardKey: number, message: string) => {
      const [row] = await t.engine.handle.query<{ id: string | number }>(sql`
        insert into failures (mapping_id, kind, shard_key, first_seq, last_seq, record_count, attempt, message)
        values (${mappingId}, 'FUNCTION_ERROR', ${shardKey}, 1, 1, 1, 1, ${message}) returning id`);
      return Number(row!.id);
    };

    it('pushes the failures recorded while events were missed, once each', async () => {
      await t.engine.createStream({ name: 'missed', shardCount: 1 });
      await t.engine.createFunction({ name: 'missed-fn', url: 'http://127.0.0.1:9/' });
      const mapping = await t.engine.createMapping({ streamName: 'missed', functionName: 'missed-fn', startingPosition: 'TRIM_HORIZON' });
      const [shard] = await t.engine.catalog.shards(await t.engine.catalog.get('missed'), 'OPEN');
      const abort = new AbortController();
      const listening = t.engine.events.listenerCount('failures');
      const feed = watchFailures(t.engine, { streamName: 'missed' }, abort.signal);
      const got: FailureEvent[] = [];
      const reading = (async () => { for await (const event of feed) got.push(event); })();
      try {
        await waitFor(() => t.engine.events.listenerCount('failures') > listening, 'the feed is listening');
        // A heard failure first: the feed is listening, and knows where it stands.
        const heard = await unheardFailure(mapping.id, shard!.key, 'heard');
        t.engine.events.emit('failures', { mappingId: mapping.id, ids: [heard], remote: true });
        await waitFor(() => got.length === 1, 'the heard failure');
        const missed = [await unheardFailure(mapping.id, shard!.key, 'missed 1'), await unheardFailure(mapping.id, shard!.key, 'missed 2')];
        // This process records one too, meanwhile: its higher id must not hide the missed ones.
        const local = await unheardFailure(mapping.id, shard!.key, 'local');
        t.engine.events.emit('failures', { mappingId: mapping.id, ids: [local] });
        await waitFor(() => got.length === 2, 'the local failure');
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(got.length, 2, 'unheard: the missed ones not pushed yet');
        t.engine.events.emit('resync', { at: Date.now() });
        await waitFor(() => got.length === 4, 'the missed failures after the resync');
        assert.deepEqual(got.map((e) => [Number(e.failure.id), e.failure.message]),
          [[heard, 'heard'], [local, 'local'], [missed[0], 'missed 1'], [missed[1], 'missed 2']]);
        // Their events arriving late, and another resync, push nothing twice.
        t.engine.events.emit('failures', { mappingId: mapping.id, ids: missed, remote: true });
        t.engine.events.emit('resync', { at: Date.now() });
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(got.length, 4, 'each failure once');
      } finally {
        abort.abort();
        await bounded(reading, 'the feed ends');
      }
    });

    it('pushes alert transitions made while events were missed, once each', async () => {
      await t.engine.createStream({ name: 'alerting', shardCount: 1 });
      await t.engine.createFunction({ name: 'alerting-fn', url: 'http://127.0.0.1:9/' });
      const mapping = await t.engine.createMapping({ streamName: 'alerting', functionName: 'alerting-fn', startingPosition: 'TRIM_HORIZON' });
      const rule = await t.engine.alerts.create({ name: 'missed-rule', mappingId: mapping.id, metric: 'RECORDS_BEHIND', threshold: 1_000_000, forSeconds: 1 });
      const abort = new AbortController();
      const listening = t.engine.events.listenerCount('resync');
      const feed = watchAlerts(t.engine, abort.signal);
      const got: { id: number; state: string }[] = [];
      const reading = (async () => { for await (const alert of feed) got.push({ id: alert.id, state: alert.state }); })();
      try {
        await waitFor(() => t.engine.events.listenerCount('resync') > listening, 'the feed is listening');
        const [fired] = await t.engine.handle.query<{ id: string | number }>(sql`
          insert into alerts (rule_id, state, value, started_at) values (${rule.id}, 'FIRING', 5, now()) returning id`);
        const id = Number(fired!.id);
        t.engine.events.emit('resync', { at: Date.now() });
        await waitFor(() => got.length === 1, 'the missed FIRING after the resync');
        await t.engine.handle.query(sql`update alerts set state = 'RESOLVED', resolved_at = now() where id = ${id}`);
        t.engine.events.emit('resync', { at: Date.now() });
        await waitFor(() => got.length === 2, 'the missed RESOLVED after the next resync');
        t.engine.events.emit('alerts', { alertId: id });
        t.engine.events.emit('resync', { at: Date.now() });
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(got, [{ id, state: 'FIRING' }, { id, state: 'RESOLVED' }], 'each transition once');
      } finally {
        abort.abort();
        await bounded(reading, 'the feed ends');
      }
    });
  });
}

describe('the notifier after its connection was lost (postgres)', { skip: postgresBackend ? false : 'needs DATABASE_URL' }, () => {
  it('carries a lease\'s shard end to the other processes', async () => {
    const t = await openTestEngine(postgresBackend!, { delivery: false });
    const handle = await openDatabase({ databaseUrl: t.databaseUrl });
    const other = new Engine(handle, { ...DEFAULT_ENGINE_OPTIONS, delivery: false });
    try {
      await t.engine.start();
      await other.start();
      const heard: { mappingId: string; shardEnded?: boolean; remote?: boolean }[] = [];
      const off = t.engine.events.on('leases', (e) => { if (e.remote) heard.push(e); });
      try {
        other.events.emit('leases', { mappingId: 'm-step' });
        other.events.emit('leases', { mappingId: 'm-end', shardEnded: true });
        await waitFor(() => heard.length === 2, 'both heard in the other process', 10_000);
        // Each NOTIFY goes through the pool: they may arrive in either order.
        assert.deepEqual(heard.sort((a, b) => a.mappingId.localeCompare(b.mappingId)),
          [{ mappingId: 'm-end', shardEnded: true, remote: true }, { mappingId: 'm-step', remote: true }]);
      } finally {
        off();
      }
    } finally {
      await other.stop();
      await handle.close();
      await t.close();
    }
  });

  it('listens again and raises resync', async () => {
    const t = await openTestEngine(postgresBackend!, { delivery: false });
    try {
      await t.engine.start();
      let resyncs = 0;
      const off = t.engine.events.on('resync', () => { resyncs++; });
      try {
        // Ends the notifier's own connection, as a Postgres restart or a network cut would.
        const killed = await t.engine.handle.query<{ pid: number }>(sql`
          select pid from pg_stat_activity where pid <> pg_backend_pid() and datname = current_database() and query ilike 'listen%'`);
        assert.equal(killed.length, 1, 'one LISTEN connection');
        await t.engine.handle.query(sql`select pg_terminate_backend(${killed[0]!.pid}::int)`);
        await waitFor(() => resyncs === 1, 'resync once the LISTEN is back', 15_000);
        // And it hears again: a notification from another process arrives.
        let heard = false;
        const offMappings = t.engine.events.on('mappings', (e) => { if (e.remote && e.mappingId === 'from-elsewhere') heard = true; });
        try {
          await waitFor(async () => {
            await t.engine.handle.query(sql`select pg_notify('shardline_events', ${JSON.stringify({ o: 'elsewhere', k: 'mappings', m: 'from-elsewhere' })})`);
            return heard;
          }, 'a notification heard after the reconnect', 15_000);
        } finally {
          offMappings();
        }
      } finally {
        off();
      }
    } finally {
      await t.close();
    }
  });
});
