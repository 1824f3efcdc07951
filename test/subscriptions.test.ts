/**
 * The lag, failures and alerts subscriptions through real graphql-ws clients, on PGlite and
 * Postgres; and that a subscriber who leaves leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type GraphQLFieldResolver, type GraphQLObjectType, defaultFieldResolver } from 'graphql';
import { type App, buildApp } from '../api/app.ts';
import { schema } from '../api/schema.ts';
import { type LagUpdate, watchLag } from '../engine/observability/lagFeed.ts';
import { type TestEngine, b64, backends, bounded, openTestEngine, waitFor } from './harness.ts';

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
      writeFileSync(join(functionsDir, 'plain.mjs'), `
        export async function handler(event) {
          if (event.Records.some((r) => Buffer.from(r.kinesis.data, 'base64').toString() === 'fail')) throw new Error('failing on purpose');
          return null;
        }`);
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 }, alertIntervalMs: 100 });
      await t.engine.start();
      app = buildApp({ engine: t.engine });
      url = await app.start(0, '127.0.0.1');
      baseline = ['failures', 'leases', 'alerts', 'records', 'resync'].map((e) => t.engine.events.listenerCount(e as 'failures'));
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

    it('resolves an iterator-age alert once caught up, and resolves a FIRING alert whose rule is deleted', async () => {
      writeFileSync(join(functionsDir, 'slow.mjs'), `
        export async function handler() { await new Promise((r) => setTimeout(r, 300)); return null; }`);
      await t.engine.createStream({ name: 'aging', shardCount: 1 });
      await t.engine.createFunction({ name: 'slow', module: 'slow.mjs#handler' });
      const alerts = subscribe('subscription { alerts { id state value rule { id name } startedAt resolvedAt } }');
      await waitFor(() => t.engine.feedCounts.subscribers('alerts') > 0, 'the alerts subscriber joined');
      const aging = await t.engine.createAlertRule({ name: 'aging', metric: 'ITERATOR_AGE_MS', threshold: 100, forSeconds: 0 });
      await t.engine.putRecords('aging', Array.from({ length: 6 }, (_, i) => ({ partitionKey: 'k', data: b64(`a${i}`) })));
      await t.engine.createMapping({ streamName: 'aging', functionName: 'slow', startingPosition: 'TRIM_HORIZON', batchSize: 1 });
      const of = (rule: string, state: string) => alerts.values.find((v) => v.alerts.rule.id === rule && v.alerts.state === state);
      await waitFor(() => of(aging.id, 'FIRING'), 'iterator age FIRING while behind', 10_000);
      // Caught up, the lane keeps its last batch's age; nothing is behind, so the alert clears.
      await waitFor(() => of(aging.id, 'RESOLVED'), 'iterator age RESOLVED once caught up', 10_000);

      // Behind for a while again (50 records at 300 ms each): a rule on it fires, then is deleted.
      await t.engine.putRecords('aging', Array.from({ length: 50 }, (_, i) => ({ partitionKey: 'k', data: b64(`b${i}`) })));
      const always = await t.engine.createAlertRule({ name: 'always', metric: 'RECORDS_BEHIND', threshold: 0, forSeconds: 0 });
      const firing = await waitFor(() => of(always.id, 'FIRING'), 'FIRING', 10_000);
      await t.engine.deleteAlertRule(always.id);
      const resolved = await waitFor(() => of(always.id, 'RESOLVED'), 'RESOLVED on deleting its rule', 10_000);
      assert.equal(resolved.alerts.id, firing.alerts.id);
      assert.equal((await t.engine.alerts.list()).some((r) => r.id === always.id), false, 'the rule is no longer listed');
      const stored = (await t.engine.alerts.alerts('RESOLVED')).find((a) => String(a.id) === firing.alerts.id);
      assert.equal(stored?.rule.name, 'always', 'its alert still names it');
      await t.engine.deleteAlertRule(aging.id);
      // The slow deliveries left would run into the next tests' counts.
      const [agingMapping] = (await t.engine.mappings.list()).filter((m) => m.functionName === 'slow');
      if (agingMapping) await t.engine.deleteMapping(agingMapping.id);
      alerts.stop();
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

    it('serves many subscribers with one read and one execution per event', async () => {
      await t.engine.createStream({ name: 'shared', shardCount: 1 });
      await t.engine.createFunction({ name: 'plain', module: 'plain.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'shared', functionName: 'plain', startingPosition: 'TRIM_HORIZON', batchSize: 10, maximumRetryAttempts: 0,
      });
      // The lease is running before anyone subscribes: its state then changes no first state.
      await waitFor(async () => (await t.engine.lag(mapping.id)).every((l) => l.owner) || undefined, 'the lease is running');
      // Counts how often the served schema executes a field of the events (restored afterwards).
      const executions = { lag: 0, failures: 0 };
      const count = (type: string, field: string, key: keyof typeof executions) => {
        const def = (schema.getType(type) as GraphQLObjectType).getFields()[field]!;
        const original = def.resolve;
        const resolve = (original ?? defaultFieldResolver) as GraphQLFieldResolver<unknown, unknown>;
        def.resolve = (...args) => {
          executions[key]++;
          return resolve(...args);
        };
        return () => { def.resolve = original; };
      };
      const restores = [count('LagUpdate', 'recordsBehind', 'lag'), count('FailureEvent', 'functionName', 'failures')];
      const lag = t.engine.lag;
      let lagReads = 0;
      t.engine.lag = (id: string) => {
        lagReads++;
        return lag.call(t.engine, id);
      };
      const SUBSCRIBERS = 20;
      const clients = Array.from({ length: SUBSCRIBERS }, () => createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false }));
      try {
        const received = clients.map((c) => {
          const got = { lag: [] as { recordsBehind: number }[], failures: [] as string[] };
          c.subscribe({ query: `subscription { lag(mappingId: "${mapping.id}") { recordsBehind at } }` }, {
            next: (v: any) => got.lag.push(v.data.lag), error: () => {}, complete: () => {},
          });
          c.subscribe({ query: 'subscription { failures(streamName: "shared") { functionName failure { id kind } } }' }, {
            next: (v: any) => got.failures.push(`${v.data.failures.failure.id}:${v.data.failures.failure.kind}`), error: () => {}, complete: () => {},
          });
          return got;
        });
        await waitFor(() => received.every((r) => r.lag.length >= 1), 'every subscriber has its first lag update');
        // The failures subscriptions are set up once the server listens for failures.
        await waitFor(() => t.engine.feedCounts.subscribers('failures') === SUBSCRIBERS, 'every failures subscription has joined the feed');
        const firstStates = executions.lag;
        const before = { lag: executions.lag, lagReads, at: Date.now() };
        const data = Array.from({ length: 40 }, (_, i) => (i === 5 || i === 25 ? 'fail' : `r${i}`));
        await t.engine.putRecords('shared', data.map((d, i) => ({ partitionKey: `k${i}`, data: b64(d) })));
        // Two failing batches of 10, each a FUNCTION_ERROR and a RETRIES_EXHAUSTED row.
        await waitFor(() => received.every((r) => r.failures.length >= 4 && r.lag.at(-1)?.recordsBehind === 0), 'every subscriber has every failure and zero lag', 10_000);
        const elapsed = Date.now() - before.at;
        const rows = [...new Set(received.flatMap((r) => r.failures))];
        assert.equal(rows.length, 4);
        for (const r of received) assert.deepEqual(r.failures, received[0]!.failures, 'the same failures, in the same order, to each subscriber');
        assert.equal(firstStates, SUBSCRIBERS, 'a first state is executed for each subscriber');
        assert.equal(executions.failures, 4, 'each failure executed once for all subscribers');
        const lagMessages = received.reduce((n, r) => n + r.lag.length, 0) - SUBSCRIBERS;
        const lagExecutions = executions.lag - before.lag;
        assert.ok(lagExecutions <= Math.max(...received.map((r) => r.lag.length)) + 2,
          `lag updates executed once for all subscribers (${lagExecutions} executions for ${lagMessages} messages)`);
        // At most one read per 500 ms (the coalescing period), plus the checks every 2 s: not one per subscriber.
        const reads = lagReads - before.lagReads;
        assert.ok(reads <= elapsed / 500 + 3, `${reads} lag reads in ${elapsed} ms for ${SUBSCRIBERS} subscribers`);
      } finally {
        t.engine.lag = lag;
        for (const restore of restores) restore();
        await Promise.all(clients.map((c) => c.dispose()));
      }
    });

    it('writes shared results to each socket as graphql-ws would, stops at complete, and masks errors as before', async () => {
      await t.engine.createStream({ name: 'direct', shardCount: 1 });
      await t.engine.createFunction({ name: 'plain-direct', module: 'plain.mjs#handler' });
      await t.engine.createMapping({ streamName: 'direct', functionName: 'plain-direct', startingPosition: 'TRIM_HORIZON', batchSize: 1, maximumRetryAttempts: 0 });
      // A raw graphql-transport-ws client: the frames as they arrive, by subscription id.
      const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
      const frames = new Map<string, string[]>();
      socket.on('message', (data) => {
        const text = String(data);
        const { id } = JSON.parse(text) as { id?: string };
        if (id) frames.set(id, [...(frames.get(id) ?? []), text]);
      });
      await bounded(once(socket, 'open'), 'the socket opens');
      const acked = once(socket, 'message');
      socket.send(JSON.stringify({ type: 'connection_init' }));
      await bounded(acked, 'connection_ack');
      const query = 'subscription { failures(streamName: "direct") { failure { kind recordCount } } }';
      // "c" reads a field made to throw below: its results carry an error, which must stay masked.
      const failing = 'subscription { failures(streamName: "direct") { functionName failure { kind } } }';
      const def = (schema.getType('FailureEvent') as GraphQLObjectType).getFields().functionName!;
      const original = def.resolve;
      def.resolve = () => { throw new Error('a secret detail'); };
      try {
        for (const [id, q] of [['a', query], ['b', query], ['c', failing]] as const) socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: q } }));
        await waitFor(() => t.engine.feedCounts.subscribers('failures') === 3, 'every subscription has joined the feed');
        await t.engine.putRecords('direct', [{ partitionKey: 'k', data: b64('fail') }]);
        // One failing batch of 1: a FUNCTION_ERROR row and a RETRIES_EXHAUSTED row.
        await waitFor(() => ['a', 'b', 'c'].every((id) => (frames.get(id)?.length ?? 0) >= 2), 'each subscription has both rows', 10_000);
        const expected = (id: string) => ['FUNCTION_ERROR', 'RETRIES_EXHAUSTED'].map((kind) =>
          JSON.stringify({ id, type: 'next', payload: { data: { failures: { failure: { kind, recordCount: 1 } } } } }));
        assert.deepEqual(frames.get('a'), expected('a'), 'byte for byte the message graphql-ws sends');
        assert.deepEqual(frames.get('b'), expected('b'));
        for (const text of frames.get('c')!) {
          const message = JSON.parse(text);
          assert.equal(message.type, 'next');
          assert.equal(message.payload.data?.failures ?? null, null);
          assert.equal(message.payload.errors[0].extensions.code, 'INTERNAL');
          assert.doesNotMatch(text, /secret detail|at /, 'no detail or stack trace');
        }
        // After "a" completes it gets nothing more, while "b" on the same socket still does.
        socket.send(JSON.stringify({ id: 'a', type: 'complete' }));
        await new Promise((resolve) => setTimeout(resolve, 100));
        await t.engine.putRecords('direct', [{ partitionKey: 'k', data: b64('fail') }]);
        await waitFor(() => (frames.get('b')?.length ?? 0) >= 4 && (frames.get('c')?.length ?? 0) >= 4, 'b and c have the next two rows', 10_000);
        assert.equal(frames.get('a')!.length, 2, 'nothing after complete');
      } finally {
        def.resolve = original;
        socket.close();
      }
    });

    it('keeps every failure, in order, for a socket that stops reading and then catches up', async () => {
      await t.engine.createStream({ name: 'paused', shardCount: 1 });
      await t.engine.createFunction({ name: 'plain-paused', module: 'plain.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'paused', functionName: 'plain-paused', startingPosition: 'TRIM_HORIZON', enabled: false });
      const [shard] = await t.engine.catalog.shards(await t.engine.catalog.get('paused'), 'OPEN');
      const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
      const ids: number[] = [];
      socket.on('message', (data) => {
        const message = JSON.parse(String(data));
        if (message.type === 'next') ids.push(Number(message.payload.data.failures.failure.id));
      });
      await bounded(once(socket, 'open'), 'the socket opens');
      const acked = once(socket, 'message');
      socket.send(JSON.stringify({ type: 'connection_init' }));
      await bounded(acked, 'connection_ack');
      socket.send(JSON.stringify({ id: 'p', type: 'subscribe', payload: { query: 'subscription { failures(streamName: "paused") { failure { id message } } }' } }));
      await waitFor(() => t.engine.feedCounts.subscribers('failures') === 1, 'the subscription has joined the feed');
      // Synthetic failure rows of 8 KiB messages, raised as the engine raises them: enough that the
      // server's socket buffer passes its high-water mark while the client does not read, so
      // events move from the direct path to the subscriber's queue and back.
      const EVENTS = 1500;
      const text = 'x'.repeat(8192);
      const raise = (from: number, to: number) => {
        for (let id = from; id < to; id++) {
          const row = { id, mappingId: mapping.id, kind: 'FUNCTION_ERROR' as const, shardKey: shard!.key, firstSeq: 1n, lastSeq: 1n, recordCount: 1, attempt: 1, message: text, at: new Date(), destinationRecord: null, redrivenBy: null, lane: 0, lanes: 1 };
          t.engine.events.emit('failures', { mappingId: mapping.id, ids: [id], rows: [row] });
        }
      };
      try {
        raise(1, 11);
        await waitFor(() => ids.length === 10, 'the first events while reading');
        socket.pause();
        raise(11, EVENTS + 1);
        await new Promise((resolve) => setTimeout(resolve, 300));
        socket.resume();
        await waitFor(() => ids.length >= EVENTS, `all ${EVENTS} events after resuming`, 20_000);
        assert.deepEqual(ids, Array.from({ length: EVENTS }, (_, i) => i + 1), 'each once, in order');
      } finally {
        socket.close();
      }
    });

    it('keeps only the latest lag update per mapping for a subscriber that does not keep up', async () => {
      await t.engine.createStream({ name: 'slow', shardCount: 1 });
      await t.engine.createFunction({ name: 'plain-slow', module: 'plain.mjs#handler' });
      const mapping = await t.engine.createMapping({ streamName: 'slow', functionName: 'plain-slow', startingPosition: 'TRIM_HORIZON' });
      const abort = new AbortController();
      const slow = watchLag(t.engine, { mappingId: mapping.id }, abort.signal);
      const fast = watchLag(t.engine, { mappingId: mapping.id }, abort.signal);
      try {
        await bounded(slow.next(), 'the slow subscriber\'s first state'); // then it reads nothing for a while
        await bounded(fast.next(), 'the fast subscriber\'s first state');
        const seen: LagUpdate[] = [];
        void (async () => {
          for await (const update of fast) seen.push(update);
        })();
        let last: string | null = null;
        for (let i = 0; seen.length < 3 && i < 50; i++) {
          last = (await t.engine.putRecords('slow', [{ partitionKey: `k${i}`, data: b64(`r${i}`) }])).records[0]!.sequenceNumber;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        // Settled: the checkpoint at the last record put, the state that stays.
        await waitFor(() => seen.at(-1)?.shards[0]?.checkpointSequenceNumber === last && seen.at(-1)!.recordsBehind === 0, 'the fast subscriber sees the lag settle at the last record', 10_000);
        // Several updates went out meanwhile; the slow subscriber is handed the latest only.
        const next = await bounded(slow.next(), 'the slow subscriber\'s next update');
        assert.equal(next.value, seen.at(-1), 'the latest update, the very object the others were sent');
        const more = await Promise.race([slow.next(), new Promise((resolve) => setTimeout(() => resolve('nothing'), 300))]);
        assert.equal(more, 'nothing', 'no backlog of older updates behind it');
      } finally {
        abort.abort();
        await Promise.all([slow.return(undefined), fast.return(undefined)]);
      }
    });

    for (const variant of ['the subscriber stays', 'every subscriber leaves and one joins'] as const) {
      it(`follows a mapping created while the feed was reading the list of mappings (${variant})`, async () => {
        const name = variant === 'the subscriber stays' ? 'late' : 'late-rejoined';
        await t.engine.createStream({ name, shardCount: 1 });
        await t.engine.createFunction({ name: `plain-${name}`, module: 'plain.mjs#handler' });
        // Holds the feed's own read of every mapping (list(null)) until the mapping exists.
        const catalog = t.engine.mappings;
        let reached!: () => void;
        let release!: () => void;
        const reading = new Promise<void>((resolve) => { reached = resolve; });
        const released = new Promise<void>((resolve) => { release = resolve; });
        let held = false;
        const list = catalog.list;
        catalog.list = async (streamName?: string | null) => {
          const out = await list.call(catalog, streamName);
          if (streamName == null && !held) {
            held = true;
            reached();
            await released;
          }
          return out;
        };
        let abort = new AbortController();
        let watcher = watchLag(t.engine, { streamName: name }, abort.signal);
        try {
          let next = watcher.next(); // nothing on the stream yet: waits for an update
          await bounded(reading, 'the feed reads the mappings');
          if (variant === 'the subscriber stays') {
            const mapping = await t.engine.createMapping({ streamName: name, functionName: `plain-${name}`, startingPosition: 'TRIM_HORIZON' });
            release();
            await t.engine.putRecords(name, [{ partitionKey: 'k', data: b64('r') }]);
            const update = (await bounded(next, 'an update for the mapping created meanwhile')).value as LagUpdate;
            assert.equal(update.mappingId, mapping.id);
          } else {
            // The only subscriber leaves: the change below is heard by no one; then one joins.
            abort.abort();
            await bounded(next, 'the subscriber leaves');
            const mapping = await t.engine.createMapping({ streamName: name, functionName: `plain-${name}`, startingPosition: 'TRIM_HORIZON' });
            abort = new AbortController();
            watcher = watchLag(t.engine, { streamName: name }, abort.signal);
            const first = (await bounded(watcher.next(), 'the first state')).value as LagUpdate;
            assert.equal(first.mappingId, mapping.id);
            next = watcher.next();
            release();
            await t.engine.putRecords(name, [{ partitionKey: 'k', data: b64('r') }]);
            const update = (await bounded(next, 'an update from the feed for the mapping created meanwhile')).value as LagUpdate;
            assert.equal(update.mappingId, mapping.id);
          }
        } finally {
          release();
          delete (catalog as { list?: unknown }).list;
          abort.abort();
          await watcher.return(undefined);
        }
      });
    }

    it('leaves no listener behind when subscribers go away mid-stream', async () => {
      const count = () => ['failures', 'leases', 'alerts', 'records', 'resync'].map((e) => t.engine.events.listenerCount(e as 'failures'));
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
