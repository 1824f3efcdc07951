/**
 * Replay jobs, dry runs, pause/resume/cancel, seek, redrive and the audit log, on a real engine
 * with module and HTTP functions, on PGlite and Postgres.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type App, buildApp } from '../api/app.ts';
import { type FailureEvent, watchFailures } from '../engine/observability/failureFeed.ts';
import { type TestEngine, b64, backends, bounded, openTestEngine, rejectsWith, waitFor } from './harness.ts';

const text = (r: any) => Buffer.from(r.kinesis.data, 'base64').toString();

for (const backend of backends) {
  describe(`replay, seek and redrive (${backend.name})`, () => {
    let t: TestEngine;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-replay-'));
    let n = 0;
    /** A module function that logs what it receives; `fail` names data it throws on. */
    const moduleFunction = async (name: string, fail = '') => {
      const file = `${name}-${n++}.mjs`;
      writeFileSync(join(functionsDir, file), `
        export const seen = [];
        export async function handler(event) {
          for (const r of event.Records) {
            const data = Buffer.from(r.kinesis.data, 'base64').toString();
            if (${JSON.stringify(fail)} && data === ${JSON.stringify(fail)}) throw new Error('poison ' + data);
          }
          for (const r of event.Records) seen.push(r);
          return null;
        }`);
      await t.engine.createFunction({ name, module: `${file}#handler` });
      return (await import(join(functionsDir, file))) as { seen: any[] };
    };

    before(async () => {
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 } });
      await t.engine.start();
    });
    after(async () => {
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('replays exactly a time window, in order per shard, beside an unaffected live mapping', async () => {
      await t.engine.createStream({ name: 'win', shardCount: 2 });
      const live = await moduleFunction('live');
      const mapping = await t.engine.createMapping({ streamName: 'win', functionName: 'live', startingPosition: 'TRIM_HORIZON' });
      const put = async (tag: string) => {
        const r = await t.engine.putRecords('win', Array.from({ length: 20 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`${tag}${i}`) })));
        return r.records.map((e) => e.sequenceNumber!);
      };
      await put('before');
      const page = async () => (await t.engine.reader.page('win', { first: 1000 })).records.map((r) => r.record);
      await waitFor(async () => (await page()).length === 20, 'first records stored');
      const inside1 = await put('in');
      const inside2 = await put('in2');
      await put('after');
      await waitFor(() => live.seen.length >= 80, 'live mapping delivered everything');
      const stored = await page();
      const windowRecords = stored.filter((r) => inside1.includes(r.sequenceNumber) || inside2.includes(r.sequenceNumber));
      const from = new Date(Math.min(...windowRecords.map((r) => r.approximateArrivalTimestamp.getTime())));
      const to = new Date(Math.max(...windowRecords.map((r) => r.approximateArrivalTimestamp.getTime())));
      const expected = stored.filter((r) => r.approximateArrivalTimestamp >= from && r.approximateArrivalTimestamp <= to);
      const lagBefore = await t.engine.lag(mapping.id);

      const target = await moduleFunction('target');
      const dry = await t.engine.startReplay({ streamName: 'win', from: { type: 'AT_TIMESTAMP', timestamp: from }, to: { type: 'AT_TIMESTAMP', timestamp: to }, functionName: 'target', dryRun: true });
      assert.equal(dry.state, 'SUCCEEDED');
      assert.equal(dry.totalRecords, expected.length);
      assert.equal(dry.deliveredRecords, 0);
      const job = await t.engine.startReplay({ streamName: 'win', from: { type: 'AT_TIMESTAMP', timestamp: from }, to: { type: 'AT_TIMESTAMP', timestamp: to }, functionName: 'target' });
      const finished = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return j.state === 'SUCCEEDED' ? j : undefined;
      }, 'replay finished', 15_000);
      assert.equal(finished.deliveredRecords, expected.length);
      assert.equal(finished.totalRecords, expected.length);
      assert.equal(target.seen.length, expected.length, 'nothing outside the window, nothing twice');
      assert.deepEqual(target.seen.map((r) => r.kinesis.sequenceNumber).sort(), expected.map((r) => r.sequenceNumber).sort());
      for (const shard of ['shardId-000000000000', 'shardId-000000000001']) {
        const seqs = target.seen.filter((r) => r.eventID.startsWith(shard)).map((r) => r.kinesis.sequenceNumber);
        assert.deepEqual(seqs, [...seqs].sort(), 'in order per shard');
      }
      assert.deepEqual(await t.engine.lag(mapping.id), lagBefore, 'the live mapping\'s checkpoints did not move');
      const invocations = await t.engine.invocations(mapping.id, { first: 1000 });
      assert.ok(invocations.items.every((i) => i.node.replayId === null), 'the live mapping logged no replay invocation');
      assert.equal(live.seen.length, 80, 'the live function got nothing from the replay');
    });

    it('counts a dry run after filters and invokes nothing; rejects bad windows', async () => {
      await t.engine.createStream({ name: 'dry', shardCount: 1 });
      const fn = await moduleFunction('dryfn');
      await t.engine.putRecords('dry', Array.from({ length: 10 }, (_, i) => ({ partitionKey: 'k', data: b64(JSON.stringify({ even: i % 2 === 0 })) })));
      const dry = await t.engine.startReplay({ streamName: 'dry', from: { type: 'TRIM_HORIZON' }, functionName: 'dryfn', filterPatterns: ['{"data":{"even":[true]}}'], dryRun: true, ratePerSecond: 2 });
      assert.equal(dry.totalRecords, 5);
      assert.equal(dry.state, 'SUCCEEDED');
      assert.equal(dry.from, 'TRIM_HORIZON');
      assert.equal(fn.seen.length, 0);
      await assert.rejects(t.engine.startReplay({ streamName: 'dry', from: { type: 'LATEST' }, functionName: 'dryfn' }), { code: 'INVALID_ARGUMENT' });
      await assert.rejects(t.engine.startReplay({ streamName: 'dry', from: { type: 'TRIM_HORIZON' }, to: { type: 'TRIM_HORIZON' }, functionName: 'dryfn' }), { code: 'INVALID_ARGUMENT' });
      await assert.rejects(t.engine.startReplay({ streamName: 'dry', from: { type: 'TRIM_HORIZON' } }), { code: 'INVALID_ARGUMENT' });
      await assert.rejects(t.engine.startReplay({
        streamName: 'dry', functionName: 'dryfn',
        from: { type: 'AT_TIMESTAMP', timestamp: new Date('2026-01-02T00:00:00Z') }, to: { type: 'AT_TIMESTAMP', timestamp: new Date('2026-01-01T00:00:00Z') },
      }), { code: 'INVALID_ARGUMENT', message: /to\.timestamp .* is before from\.timestamp/ });
      await assert.rejects(t.engine.startReplay({
        streamName: 'dry', functionName: 'dryfn',
        from: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: '100000000000000000900' }, to: { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: '100000000000000000100' },
      }), { code: 'INVALID_ARGUMENT', message: /to\.sequenceNumber .* is before from\.sequenceNumber/ });
      await assert.rejects(t.engine.startReplay({ streamName: 'dry', from: { type: 'TRIM_HORIZON' }, functionName: 'nope' }), { code: 'FUNCTION_NOT_FOUND' });
      await assert.rejects(t.engine.startReplay({ streamName: 'dry', from: { type: 'TRIM_HORIZON' }, functionName: 'dryfn', shardIds: ['shardId-000000000009'] }), { code: 'SHARD_NOT_FOUND' });
      await assert.rejects(t.engine.replays.pause(dry.id, 'local'), { code: 'CONFLICT' });
      await assert.rejects(t.engine.replays.get('nope'), { code: 'REPLAY_NOT_FOUND' });
    });

    it('pauses, resumes and cancels a running replay', async () => {
      await t.engine.createStream({ name: 'slow', shardCount: 1 });
      const fn = await moduleFunction('slowfn');
      await t.engine.putRecords('slow', Array.from({ length: 60 }, (_, i) => ({ partitionKey: 'k', data: b64(`s${i}`) })));
      const job = await t.engine.startReplay({ streamName: 'slow', from: { type: 'TRIM_HORIZON' }, functionName: 'slowfn', ratePerSecond: 40, batchSize: 5 });
      await waitFor(() => fn.seen.length >= 5, 'replay under way');
      const paused = await t.engine.replays.pause(job.id, 'local');
      assert.equal(paused.state, 'PAUSED');
      const atPause = (await t.engine.replays.get(job.id)).deliveredRecords;
      assert.ok(atPause < 60);
      const resumed = await t.engine.replays.resume(job.id, 'local');
      assert.ok(['PENDING', 'RUNNING'].includes(resumed.state));
      const done = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return j.state === 'SUCCEEDED' ? j : undefined;
      }, 'resumed replay finished', 15_000);
      assert.equal(done.deliveredRecords, 60);
      assert.deepEqual([...new Set(fn.seen.map(text))].sort(), Array.from({ length: 60 }, (_, i) => `s${i}`).sort(), 'nothing lost across the pause');

      const other = await t.engine.startReplay({ streamName: 'slow', from: { type: 'TRIM_HORIZON' }, functionName: 'slowfn', ratePerSecond: 10, batchSize: 1 });
      const cancelled = await t.engine.replays.cancel(other.id, 'local');
      assert.equal(cancelled.state, 'CANCELLED');
      assert.ok(cancelled.finishedAt);
      await assert.rejects(t.engine.replays.resume(other.id, 'local'), { code: 'CONFLICT' });
    });

    it('resumes a replay whose connection was lost mid-step, even when handing it back failed too', async () => {
      await t.engine.createStream({ name: 'outage', shardCount: 1 });
      const fn = await moduleFunction('outagefn');
      await t.engine.putRecords('outage', Array.from({ length: 30 }, (_, i) => ({ partitionKey: 'k', data: b64(`o${i}`) })));
      const handle = t.engine.handle as any;
      const { prepared, query } = handle;
      const lost = () => Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
      const textOf = (statement: any) => (statement?.queryChunks ?? []).filter((c: any) => Array.isArray(c?.value)).map((c: any) => c.value.join('')).join('');
      let steps = 0;
      let handedBack = 0;
      handle.prepared = function (statement: unknown, executor?: unknown) {
        // The third step of the replay fails as a Postgres restart would fail it.
        if (new Error().stack?.includes('ReplayRunner') && ++steps === 3) return Promise.reject(lost());
        return prepared.call(handle, statement, executor);
      };
      handle.query = function (statement: unknown, executor?: unknown) {
        // And handing the job back fails too: the database is still away.
        if (textOf(statement).includes('set owner = null, expires_at = null') && textOf(statement).includes('epoch =') && handedBack++ === 0) {
          return Promise.reject(lost());
        }
        return query.call(handle, statement, executor);
      };
      try {
        const job = await t.engine.startReplay({ streamName: 'outage', from: { type: 'TRIM_HORIZON' }, functionName: 'outagefn', batchSize: 5 });
        const done = await waitFor(async () => {
          const j = await t.engine.replays.get(job.id);
          assert.notEqual(j.state, 'FAILED', `the replay failed: ${j.error}`);
          return j.state === 'SUCCEEDED' ? j : undefined;
        }, 'the replay finished after the lost connection', 20_000);
        assert.equal(steps >= 3 && handedBack, 1, 'the step and the hand-back both failed once');
        assert.equal(done.error, null);
        assert.deepEqual([...new Set(fn.seen.map(text))].sort(), Array.from({ length: 30 }, (_, i) => `o${i}`).sort(), 'nothing lost');
        assert.ok(fn.seen.length <= 35, `at most the failed step's batch again (${fn.seen.length} deliveries)`);
      } finally {
        handle.prepared = prepared;
        handle.query = query;
      }
    });

    it('replays through a tumbling-window mapping with its windows: state within each, one final invocation at each end', async () => {
      await t.engine.createStream({ name: 'windowed', shardCount: 1 });
      await moduleFunction('windowed-live');
      const mapping = await t.engine.createMapping({
        streamName: 'windowed', functionName: 'windowed-live', startingPosition: 'TRIM_HORIZON', tumblingWindowSeconds: 1, batchSize: 3,
      });
      // Two windows' worth: 7 records, then 5 in the next window.
      await t.engine.putRecords('windowed', Array.from({ length: 7 }, (_, i) => ({ partitionKey: 'k', data: b64(`a${i}`) })));
      const firstAt = Date.now();
      await waitFor(() => Date.now() >= Math.floor(firstAt / 1000) * 1000 + 1000, 'the next window', 2000);
      await t.engine.putRecords('windowed', Array.from({ length: 5 }, (_, i) => ({ partitionKey: 'k', data: b64(`b${i}`) })));
      const file = `windowed-target-${n++}.mjs`;
      writeFileSync(join(functionsDir, file), `
        export const calls = [];
        export async function handler(event) {
          calls.push({ window: event.window, stateIn: event.state, final: event.isFinalInvokeForWindow, shardId: event.shardId,
            data: event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString()) });
          return { state: { count: (event.state?.count ?? 0) + event.Records.length } };
        }`);
      await t.engine.createFunction({ name: 'windowed-target', module: `${file}#handler` });
      const target = await import(join(functionsDir, file));
      const job = await t.engine.startReplay({ streamName: 'windowed', from: { type: 'TRIM_HORIZON' }, mappingId: mapping.id, functionName: 'windowed-target' });
      await waitFor(async () => (await t.engine.replays.get(job.id)).state === 'SUCCEEDED', 'the replay finished', 15_000);
      const calls = target.calls as { window: { start: string; end: string }; stateIn: any; final: boolean; shardId: string; data: string[] }[];
      assert.ok(calls.every((c) => c.window && c.shardId === 'shardId-000000000000'), 'every event carries its window, as live ones do');
      const windows = [...new Set(calls.map((c) => c.window.start))];
      assert.equal(windows.length, 2, JSON.stringify(calls));
      const counts: number[] = [];
      for (const w of windows) {
        const of = calls.filter((c) => c.window.start === w);
        assert.equal(of.filter((c) => c.final).length, 1, 'one final invocation per window');
        assert.equal(of.at(-1)!.final, true, 'and it is the window\'s last');
        let count = 0;
        for (const c of of) {
          assert.deepEqual(c.stateIn, count === 0 ? {} : { count }, 'the state passed on within the window');
          count += c.data.length;
        }
        counts.push(count);
      }
      assert.deepEqual(counts, [7, 5], 'each record once, in its own window');
      assert.deepEqual(calls.flatMap((c) => c.data), [...Array.from({ length: 7 }, (_, i) => `a${i}`), ...Array.from({ length: 5 }, (_, i) => `b${i}`)]);
    });

    it('seeks a running mapping back to TRIM_HORIZON and to a timestamp, recording the moves', async () => {
      await t.engine.createStream({ name: 'seek', shardCount: 1 });
      const fn = await moduleFunction('seekfn');
      const mapping = await t.engine.createMapping({ streamName: 'seek', functionName: 'seekfn', startingPosition: 'TRIM_HORIZON' });
      await t.engine.putRecords('seek', Array.from({ length: 10 }, (_, i) => ({ partitionKey: 'k', data: b64(`a${i}`) })));
      await waitFor(() => fn.seen.length >= 10, 'first delivery');
      await t.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' });
      await waitFor(() => fn.seen.length >= 20, 'redelivered from the start after the seek');
      assert.deepEqual(fn.seen.slice(10).map(text), Array.from({ length: 10 }, (_, i) => `a${i}`));
      const records = (await t.engine.reader.page('seek', { first: 100 })).records.map((r) => r.record);
      await t.engine.seekMapping(mapping.id, { type: 'AT_TIMESTAMP', timestamp: records[6]!.approximateArrivalTimestamp });
      await waitFor(() => fn.seen.length >= 20 + records.filter((r) => r.approximateArrivalTimestamp >= records[6]!.approximateArrivalTimestamp).length, 'redelivered from the timestamp');
      assert.equal(text(fn.seen[20]), text({ kinesis: { data: records.find((r) => r.approximateArrivalTimestamp >= records[6]!.approximateArrivalTimestamp)!.data } }));
      const audit = await t.engine.audit.list(100);
      assert.ok(audit.some((a) => a.action === 'mapping.seek' && a.target === `mapping:${mapping.id}`));
      const moves = await t.engine.checkpointMoves(mapping.id);
      assert.equal(moves.length, 2, 'both seeks in the ledger');
      assert.equal(moves[1]!.reason, 'seek TRIM_HORIZON');
      assert.equal(moves[1]!.toSequenceNumber, null);
      assert.ok(moves[1]!.fromSequenceNumber, 'from the checkpoint it had');
      await assert.rejects(t.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' }, ['shardId-000000000007']), { code: 'SHARD_NOT_FOUND' });
      await rejectsWith(t.engine.seekMapping(mapping.id, { type: 'AT_TIMESTAMP', timestamp: new Date(Date.now() + 60_000) }), 'INVALID_ARGUMENT', /position\.timestamp must not be in the future/);
      assert.equal((await t.engine.checkpointMoves(mapping.id)).length, 2, 'the refused seek moved nothing');
      // Undo: back to where the checkpoint stood before the first seek.
      const caughtUp = await waitFor(async () => {
        const rows = await t.engine.lag(mapping.id);
        return rows[0]!.recordsBehind === 0 ? rows[0]! : undefined;
      }, 'caught up after the seeks');
      const beforeSeeks = new Date(moves[1]!.at.getTime() - 1);
      const delivered = fn.seen.length;
      await t.engine.seekMapping(mapping.id, { type: 'LATEST' });
      await t.engine.restoreCheckpoints(mapping.id, beforeSeeks);
      const restored = await waitFor(async () => (await t.engine.lag(mapping.id))[0], 'lease row');
      assert.equal(restored.checkpointSequenceNumber, moves[1]!.fromSequenceNumber, 'back where it stood before the first seek');
      assert.ok(caughtUp && delivered >= 20);
      const ledger = await t.engine.checkpointMoves(mapping.id);
      assert.match(ledger[0]!.reason, /^restore to /);

      // Not back across a parallelizationFactor change: those checkpoints were other lanes'.
      const beforeChange = new Date();
      await waitFor(() => Date.now() > beforeChange.getTime() + 5, 'a moment after', 1000);
      await t.engine.updateMapping(mapping.id, { parallelizationFactor: 2 });
      const movesBefore = (await t.engine.checkpointMoves(mapping.id)).length;
      await assert.rejects(t.engine.restoreCheckpoints(mapping.id, beforeChange),
        { code: 'CONFLICT', message: /cannot go back across the parallelizationFactor change at .*restore to a time after it/ });
      assert.equal((await t.engine.checkpointMoves(mapping.id)).length, movesBefore, 'nothing restored');
      // Nor across a change that moved no checkpoint (every lane already at the same one).
      const beforeBack = new Date();
      await waitFor(() => Date.now() > beforeBack.getTime() + 5, 'a moment after', 1000);
      await t.engine.updateMapping(mapping.id, { parallelizationFactor: 1 });
      await assert.rejects(t.engine.restoreCheckpoints(mapping.id, beforeBack), { code: 'CONFLICT' });
    });

    it('seeks a mapping created a moment ago, before any process made its leases', async () => {
      const api = await openTestEngine(backend, { delivery: false }); // as a process that only serves the API
      try {
        await api.engine.createStream({ name: 'fresh', shardCount: 2 });
        await api.engine.createFunction({ name: 'fresh-fn', url: 'http://127.0.0.1:9/' });
        await api.engine.putRecords('fresh', Array.from({ length: 6 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`f${i}`) })));
        const mapping = await api.engine.createMapping({ streamName: 'fresh', functionName: 'fresh-fn', startingPosition: 'LATEST' });
        // A read of the figures just before (shared with callers for a moment) …
        assert.equal((await api.engine.recentLag(mapping.id)).length, 0);
        await api.engine.seekMapping(mapping.id, { type: 'TRIM_HORIZON' });
        // … is not what the figures right after the seek show.
        const lag = await api.engine.recentLag(mapping.id);
        assert.equal(lag.length, 2, 'a lease per shard, made by the seek');
        assert.ok(lag.every((r) => r.checkpointSequenceNumber === null), 'at TRIM_HORIZON, not LATEST');
        assert.equal(lag.reduce((n, r) => n + r.recordsBehind, 0), 6);
      } finally {
        await api.close();
      }
    });

    it('redrives a discarded poison record to a fixed function and marks the failure', async () => {
      await t.engine.createStream({ name: 'redrive', shardCount: 1 });
      await moduleFunction('broken', 'poison');
      const fixed = await moduleFunction('fixed');
      const mapping = await t.engine.createMapping({
        streamName: 'redrive', functionName: 'broken', startingPosition: 'TRIM_HORIZON', batchSize: 1, maximumRetryAttempts: 0,
      });
      await t.engine.putRecords('redrive', ['ok1', 'poison', 'ok2'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
      const discarded = await waitFor(async () => {
        const f = await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED' });
        return f.items.length === 1 ? f.items[0]!.node : undefined;
      }, 'poison discarded');
      const moves = await t.engine.checkpointMoves(mapping.id);
      assert.ok(moves.some((m) => m.reason.startsWith('discard RETRIES_EXHAUSTED') && m.toSequenceNumber === discarded.lastSequenceNumber && m.actor === 'engine'),
        'the discard is in the checkpoint ledger');
      const job = await t.engine.redriveFailures(mapping.id, null, 'fixed');
      assert.equal(job.totalRecords, 1);
      await waitFor(async () => (await t.engine.replays.get(job.id)).state === 'SUCCEEDED', 'redrive finished');
      assert.deepEqual(fixed.seen.map(text), ['poison']);
      const after = await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED' });
      assert.equal(after.items[0]!.node.redrivenBy, job.id);
      assert.equal(after.items[0]!.node.id, discarded.id);
      const again = await t.engine.redriveFailures(mapping.id, null, 'fixed');
      assert.equal(again.totalRecords, 0, 'a redriven failure is not redriven twice by default');
      await assert.rejects(t.engine.redriveFailures(mapping.id, ['999999'], 'fixed'), { code: 'FAILURE_NOT_FOUND' });
      await assert.rejects(t.engine.redriveFailures(mapping.id, Array.from({ length: 10_001 }, (_, i) => String(i + 1)), 'fixed'),
        { code: 'LIMIT_EXCEEDED', message: /failureIds holds 10001 ids; a redrive takes at most 10000/ });
      // As many ids as allowed go to Postgres as one parameter (65,535 parameters would not do).
      await assert.rejects(t.engine.redriveFailures(mapping.id, Array.from({ length: 10_000 }, (_, i) => String(i + 1_000_000)), 'fixed'),
        { code: 'FAILURE_NOT_FOUND' });
      const actions = (await t.engine.audit.list(200)).map((a) => a.action);
      for (const action of ['stream.create', 'function.create', 'mapping.create', 'replay.start', 'replay.pause', 'replay.resume', 'replay.cancel', 'failures.redrive', 'mapping.seek']) {
        assert.ok(actions.includes(action), `audit has ${action}`);
      }
    });

    it('gives each discard to exactly one of several concurrent redrives, so each record is delivered once', async () => {
      await t.engine.createStream({ name: 'redrive-race', shardCount: 2 });
      const file = `race-broken-${n++}.mjs`;
      writeFileSync(join(functionsDir, file), `export async function handler() { throw new Error('failing on purpose'); }`);
      await t.engine.createFunction({ name: 'race-broken', module: `${file}#handler` });
      const fixed = await moduleFunction('race-fixed');
      const mapping = await t.engine.createMapping({
        streamName: 'redrive-race', functionName: 'race-broken', startingPosition: 'TRIM_HORIZON', batchSize: 1, maximumRetryAttempts: 0,
      });
      const data = Array.from({ length: 12 }, (_, i) => `r${i}`);
      await t.engine.putRecords('redrive-race', data.map((d, i) => ({ partitionKey: `k${i}`, data: b64(d) })));
      const discards = await waitFor(async () => {
        const f = await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED', first: 100 });
        return f.items.length === data.length ? f.items.map((e) => e.node) : undefined;
      }, 'every record discarded', 15_000);
      const jobs = await Promise.all(Array.from({ length: 4 }, () => t.engine.redriveFailures(mapping.id, null, 'race-fixed')));
      const taken = jobs.flatMap((j) => (j.from === 'REDRIVE none' ? [] : j.from.replace(/^REDRIVE /, '').split(',').map(Number)));
      assert.deepEqual([...taken].sort((a, b) => a - b), discards.map((d) => d.id).sort((a, b) => a - b), `each discard in exactly one job: ${jobs.map((j) => j.from).join(' | ')}`);
      assert.equal(jobs.reduce((sum, j) => sum + (j.totalRecords ?? 0), 0), data.length);
      await waitFor(async () => {
        const states = await Promise.all(jobs.map(async (j) => (await t.engine.replays.get(j.id)).state));
        return states.every((state) => state === 'SUCCEEDED');
      }, 'every redrive finished', 15_000);
      assert.deepEqual(fixed.seen.map(text).sort(), [...data].sort(), 'every record delivered once');
      const marked = (await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED', first: 100 })).items.map((e) => e.node);
      for (const f of marked) {
        const owner = jobs.find((j) => j.from.replace(/^REDRIVE /, '').split(',').map(Number).includes(f.id));
        assert.equal(f.redrivenBy, owner?.id, `failure ${f.id} is marked by the job that took it`);
      }
      const nothing = await t.engine.redriveFailures(mapping.id, null, 'race-fixed');
      assert.equal(nothing.totalRecords, 0);
      assert.equal(nothing.from, 'REDRIVE none', 'no trailing space, no ids');
    });

    it('redrives only the records the mapping\'s filter let into the discarded batch', async () => {
      await t.engine.createStream({ name: 'redrive-filtered', shardCount: 1 });
      const a1 = JSON.stringify({ k: 'a', n: 1 });
      const a2 = JSON.stringify({ k: 'a', n: 2 });
      await moduleFunction('broken-filtered', a1);
      const fixed = await moduleFunction('fixed-filtered');
      const mapping = await t.engine.createMapping({
        streamName: 'redrive-filtered', functionName: 'broken-filtered', startingPosition: 'TRIM_HORIZON', batchSize: 10,
        maximumRetryAttempts: 0, filterPatterns: ['{"data":{"k":["a"]}}'],
      });
      await t.engine.putRecords('redrive-filtered', [a1, JSON.stringify({ k: 'b' }), a2].map((d) => ({ partitionKey: 'k', data: b64(d) })));
      const discarded = await waitFor(async () => {
        const f = await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED' });
        return f.items.length === 1 ? f.items[0]!.node : undefined;
      }, 'the filtered batch discarded');
      assert.equal(discarded.recordCount, 2);
      const job = await t.engine.redriveFailures(mapping.id, null, 'fixed-filtered');
      assert.equal(job.totalRecords, 2, 'counted after the filter, as delivered');
      const done = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return j.state === 'SUCCEEDED' ? j : undefined;
      }, 'redrive finished');
      assert.deepEqual(fixed.seen.map(text), [a1, a2], 'the filtered-out record is not sent');
      assert.equal(done.deliveredRecords, done.totalRecords, 'progress reaches 100 %');
      assert.equal(done.error, null, 'nothing past retention');
    });

    it('redrives only the failed lane\'s records of a range that other lanes\' records interleave', async () => {
      await t.engine.createStream({ name: 'redrive-lanes', shardCount: 1 });
      await moduleFunction('broken-lanes', 'bad');
      const fixed = await moduleFunction('fixed-lanes');
      const laneOf = async (key: string) => Number((await t.engine.handle.query<{ lane: number }>(sql`
        select mod(hashtext(${key})::bigint + 2147483648, 2)::int as lane`))[0]!.lane);
      const keys: Record<number, string[]> = { 0: [], 1: [] };
      for (let i = 0; keys[0]!.length < 2 || keys[1]!.length < 2; i++) keys[await laneOf(`key-${i}`)]!.push(`key-${i}`);
      const mapping = await t.engine.createMapping({
        streamName: 'redrive-lanes', functionName: 'broken-lanes', startingPosition: 'TRIM_HORIZON', batchSize: 10,
        maximumRetryAttempts: 0, bisectBatchOnFunctionError: false, parallelizationFactor: 2,
      });
      // Lane 1's batch [bad, x1] fails and is discarded; lane 0's z0 lies between them in the shard.
      await t.engine.putRecords('redrive-lanes', [
        { partitionKey: keys[1]![0]!, data: b64('bad') }, { partitionKey: keys[0]![0]!, data: b64('z0') },
        { partitionKey: keys[1]![1]!, data: b64('x1') }, { partitionKey: keys[0]![1]!, data: b64('z1') },
      ]);
      const discarded = await waitFor(async () => {
        const f = await t.engine.failures(mapping.id, { kind: 'RETRIES_EXHAUSTED' });
        return f.items.length === 1 ? f.items[0]!.node : undefined;
      }, 'lane 1\'s batch discarded');
      assert.equal(discarded.recordCount, 2);
      assert.equal(discarded.lane, 1, 'the failure names its lane');
      const job = await t.engine.redriveFailures(mapping.id, null, 'fixed-lanes');
      assert.equal(job.totalRecords, 2);
      await waitFor(async () => (await t.engine.replays.get(job.id)).state === 'SUCCEEDED', 'redrive finished');
      assert.deepEqual(fixed.seen.map(text), ['bad', 'x1'], 'not lane 0\'s z0');
    });

    it('replays records older than the mapping\'s maximumRecordAgeSeconds instead of discarding them', async () => {
      const stream = await t.engine.createStream({ name: 'replay-aged', shardCount: 1 });
      const fn = await moduleFunction('replay-aged-fn');
      await t.engine.putRecords('replay-aged', ['old0', 'old1', 'old2'].map((d) => ({ partitionKey: 'k', data: b64(d) })));
      await t.engine.handle.query(sql`
        update records set arrived_at = arrived_at - interval '10 minutes'
         where shard_key in (select key from shards where stream_id = ${stream.id})`);
      // The live mapping would discard them; it stays off, and the replay takes its settings.
      const mapping = await t.engine.createMapping({
        streamName: 'replay-aged', functionName: 'replay-aged-fn', startingPosition: 'TRIM_HORIZON', maximumRecordAgeSeconds: 60, enabled: false,
      });
      const dry = await t.engine.startReplay({ streamName: 'replay-aged', from: { type: 'TRIM_HORIZON' }, mappingId: mapping.id, dryRun: true });
      assert.equal(dry.totalRecords, 3);
      const job = await t.engine.startReplay({ streamName: 'replay-aged', from: { type: 'TRIM_HORIZON' }, mappingId: mapping.id });
      const done = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return j.state === 'SUCCEEDED' ? j : undefined;
      }, 'the replay finished', 15_000);
      assert.deepEqual(fn.seen.map(text), ['old0', 'old1', 'old2'], 'every old record delivered');
      assert.equal(done.deliveredRecords, 3);
      assert.equal(done.failedRecords, 0);
      assert.equal((await t.engine.failures(mapping.id, {})).items.length, 0, 'no RECORD_EXPIRED discard on the mapping');
    });

    it('refuses shardIds that name a shard twice, in dry runs and real runs', async () => {
      await t.engine.createStream({ name: 'dup-shards', shardCount: 4 });
      const fn = await moduleFunction('dup-shards-fn');
      await t.engine.putRecords('dup-shards', Array.from({ length: 8 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`d${i}`) })));
      const shardIds = ['shardId-000000000003', 'shardId-000000000003'];
      const before = (await t.engine.replays.list()).length;
      for (const dryRun of [true, false]) {
        await rejectsWith(t.engine.startReplay({ streamName: 'dup-shards', from: { type: 'TRIM_HORIZON' }, functionName: 'dup-shards-fn', shardIds, dryRun }),
          'INVALID_ARGUMENT', /shardIds lists shardId-000000000003 twice/);
      }
      assert.equal((await t.engine.replays.list()).length, before, 'no job was made');
      assert.equal(fn.seen.length, 0);
    });

    it('pushes the failures of a replay that has no mapping to failures subscribers of its stream', async () => {
      await t.engine.createStream({ name: 'replay-fails', shardCount: 1 });
      await moduleFunction('replay-broken', 'poison');
      await t.engine.putRecords('replay-fails', [{ partitionKey: 'k', data: b64('poison') }]);
      const abort = new AbortController();
      const feed = watchFailures(t.engine, { streamName: 'replay-fails' }, abort.signal);
      const got: FailureEvent[] = [];
      const reading = (async () => { for await (const event of feed) got.push(event); })();
      try {
        await waitFor(() => t.engine.feedCounts.subscribers('failures') >= 1, 'the subscriber joined');
        const job = await t.engine.startReplay({ streamName: 'replay-fails', from: { type: 'TRIM_HORIZON' }, functionName: 'replay-broken' });
        await waitFor(() => got.some((e) => e.failure.kind === 'RETRIES_EXHAUSTED'), 'the replay\'s discard pushed', 15_000);
        assert.ok(got.every((e) => e.streamName === 'replay-fails' && e.functionName === 'replay-broken' && e.failure.mappingId === `replay:${job.id}`),
          JSON.stringify(got.map((e) => [e.streamName, e.functionName, e.failure.mappingId])));
      } finally {
        abort.abort();
        await bounded(reading, 'the feed ends');
      }
    });

    it('stops without waiting out a retry back-off, and hands the job back', async () => {
      const other = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 } });
      let closed = false;
      try {
        await other.engine.start();
        await other.engine.createStream({ name: 'failing-replay', shardCount: 1 });
        const file = `failingfn-${n++}.mjs`;
        writeFileSync(join(functionsDir, file), `
          export const calls = { count: 0 };
          export async function handler() { calls.count++; throw new Error('failing on purpose'); }`);
        const failing: { calls: { count: number } } = await import(join(functionsDir, file));
        await other.engine.createFunction({ name: 'failingfn', module: `${file}#handler` });
        await other.engine.putRecords('failing-replay', [{ partitionKey: 'k', data: b64('x') }]);
        // The replay takes a mapping's settings (retries without end); the mapping itself stays off.
        const mapping = await other.engine.createMapping({
          streamName: 'failing-replay', functionName: 'failingfn', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: 10_000, enabled: false,
        });
        const job = await other.engine.startReplay({ streamName: 'failing-replay', from: { type: 'TRIM_HORIZON' }, mappingId: mapping.id });
        // From the eighth attempt on, each back-off is 2.5 s or more.
        await waitFor(() => failing.calls.count >= 8, 'eight attempts', 20_000);
        const at = Date.now();
        await other.engine.stop();
        const took = Date.now() - at;
        assert.ok(took < 2400, `stopped in ${took} ms, not after the back-off`);
        const after = await other.engine.replays.get(job.id);
        assert.equal(after.state, 'RUNNING', 'handed back unfinished, for another process to resume');
        await other.close();
        closed = true;
      } finally {
        if (!closed) await other.close();
      }
    });

    it('invokes nothing after a pause or a cancel of a replay waiting out a retry back-off', async () => {
      await t.engine.createStream({ name: 'backoff-halt', shardCount: 1 });
      const file = `backoff-failing-${n++}.mjs`;
      writeFileSync(join(functionsDir, file), `
        export const calls = [];
        export async function handler() { calls.push(Date.now()); throw new Error('failing on purpose'); }`);
      const failing: { calls: number[] } = await import(join(functionsDir, file));
      await t.engine.createFunction({ name: 'backoff-failing', module: `${file}#handler` });
      await t.engine.putRecords('backoff-halt', [{ partitionKey: 'k', data: b64('x') }]);
      // The replay takes the mapping's retries without end (-1); the mapping itself stays off.
      const mapping = await t.engine.createMapping({
        streamName: 'backoff-halt', functionName: 'backoff-failing', startingPosition: 'TRIM_HORIZON', maximumRetryAttempts: -1, enabled: false,
      });
      /** Waits until the run is in the back-off after an attempt ≥ `attempt` (its failure committed); resolves with that attempt. */
      const backOff = (attempt: number) => waitFor(async () => {
        const rows = (await t.engine.failures(mapping.id, { kind: 'FUNCTION_ERROR', first: 1000 })).items.map((e) => e.node);
        return rows[0] && rows[0].attempt >= attempt && rows.length === failing.calls.length ? rows[0].attempt : undefined;
      }, `a back-off after attempt ${attempt}`, 10_000);
      /** Watches for the longest back-off after `attempt` (and a margin): no invocation may come after `since`. */
      const noCallAfter = async (since: number, attempt: number, what: string) => {
        const ms = Math.min(50 * 2 ** (attempt - 1), 5000) * 1.5 + 300;
        const until = Date.now() + ms;
        await waitFor(() => failing.calls.some((at) => at > since) || Date.now() >= until, `the watch after the ${what}`, ms + 2000);
        assert.deepEqual(failing.calls.filter((at) => at > since), [], `no invocation after the ${what} returned (back-off after attempt ${attempt})`);
      };
      const job = await t.engine.startReplay({ streamName: 'backoff-halt', from: { type: 'TRIM_HORIZON' }, mappingId: mapping.id });

      let attempt = await backOff(4);
      await t.engine.replays.pause(job.id, 'local');
      await noCallAfter(Date.now(), attempt, 'pause');
      const before = failing.calls.length;
      await t.engine.replays.resume(job.id, 'local');
      await waitFor(() => failing.calls.length > before, 'the resumed replay invokes again');

      attempt = await backOff(4);
      await t.engine.replays.cancel(job.id, 'local');
      await noCallAfter(Date.now(), attempt, 'cancel');
      assert.equal((await t.engine.replays.get(job.id)).state, 'CANCELLED');
    });

    it('fails a running replay whose stream is deleted, naming the stream', async () => {
      await t.engine.createStream({ name: 'doomed', shardCount: 1 });
      const fn = await moduleFunction('doomed-fn');
      await t.engine.putRecords('doomed', Array.from({ length: 40 }, (_, i) => ({ partitionKey: 'k', data: b64(`d${i}`) })));
      const job = await t.engine.startReplay({ streamName: 'doomed', from: { type: 'TRIM_HORIZON' }, functionName: 'doomed-fn', ratePerSecond: 20, batchSize: 2 });
      await waitFor(() => fn.seen.length >= 4, 'replay under way');
      await t.engine.deleteStream('doomed');
      const ended = await waitFor(async () => {
        const j = await t.engine.replays.get(job.id);
        return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state) ? j : undefined;
      }, 'the replay ended', 10_000);
      assert.equal(ended.state, 'FAILED', `ended ${ended.state} after ${ended.deliveredRecords} records`);
      assert.match(ended.error ?? '', /stream "doomed"/);
      assert.ok(ended.deliveredRecords < 40, `stopped early (${ended.deliveredRecords} of 40)`);
    });

    it('pushes replay progress over graphql-ws: the current state first, then each change to the end', async () => {
      const app: App = buildApp({ engine: t.engine });
      const url = await app.start(0, '127.0.0.1');
      try {
        await t.engine.createStream({ name: 'progress', shardCount: 1 });
        await moduleFunction('progfn');
        await t.engine.putRecords('progress', Array.from({ length: 30 }, (_, i) => ({ partitionKey: 'k', data: b64(`p${i}`) })));
        const job = await t.engine.startReplay({ streamName: 'progress', from: { type: 'TRIM_HORIZON' }, functionName: 'progfn', ratePerSecond: 60, batchSize: 5 });
        const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
        const updates: any[] = [];
        await bounded(new Promise<void>((resolve, reject) => {
          client.subscribe({ query: `subscription { replayProgress(id: "${job.id}") { state deliveredRecords totalRecords shards { shardId delivered done } } }` }, {
            next: (v: any) => updates.push(v.data.replayProgress),
            error: reject,
            complete: resolve,
          });
        }), 'the replay progress subscription completes', 30_000);
        await client.dispose();
        assert.ok(updates.length >= 2, `several updates (${updates.length})`);
        assert.equal(updates.at(-1).state, 'SUCCEEDED');
        assert.equal(updates.at(-1).deliveredRecords, 30);
        const delivered = updates.map((u) => u.deliveredRecords);
        assert.deepEqual(delivered, [...delivered].sort((a, b) => a - b), 'progress only grows');
      } finally {
        await app.stop();
      }
    });
  });
}
