/**
 * A batch step's writes go as one statement fenced by the lease (engine/delivery/stepCommit.ts):
 * with the lease held, the lease's progress, the invocation, the failures (in order, as stored:
 * ids, times, text made storable) and a discard's ledger entry are all written; with the lease
 * lost, nothing is.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { LeaseTable } from '../engine/delivery/leaseTable.ts';
import { commitStep } from '../engine/delivery/stepCommit.ts';
import type { FailureRow } from '../engine/delivery/batchDelivery.ts';
import { type TestEngine, backends, openTestEngine } from './harness.ts';

for (const backend of backends) {
  describe(`step commit (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend, { delivery: false });
    });
    after(() => t.close());

    const counts = async (mappingId: string) => {
      const [row] = await t.engine.handle.query<{ invocations: number; failures: number; ledger: number; checkpoint: string | null; failures_in_a_row: number }>(sql`
        select (select count(*) from invocations where mapping_id = ${mappingId})::int as invocations,
               (select count(*) from failures where mapping_id = ${mappingId})::int as failures,
               (select count(*) from checkpoint_ledger where mapping_id = ${mappingId} and actor = 'engine')::int as ledger,
               (select max(checkpoint_seq)::text from leases where mapping_id = ${mappingId}) as checkpoint,
               (select max(consecutive_failures) from leases where mapping_id = ${mappingId})::int as failures_in_a_row`);
      return row!;
    };

    /** A one-shard stream with a mapping, and its lease held by process-a. */
    const heldLease = async (name: string) => {
      await t.engine.catalog.create({ name, shardCount: 1 });
      await t.engine.createFunction({ name: `${name}-fn`, url: 'http://127.0.0.1:9/' });
      const mapping = await t.engine.createMapping({ streamName: name, functionName: `${name}-fn`, startingPosition: 'TRIM_HORIZON' });
      const a = new LeaseTable(t.engine.handle, 'process-a', 60_000);
      await a.sync();
      const [lease] = await a.claim();
      assert.ok(lease);
      return { mapping, a, lease };
    };

    it('writes the lease, invocation, failures and ledger together, and nothing once the lease is lost', async () => {
      const { mapping, a, lease } = await heldLease('step');

      const failures: FailureRow[] = [
        { kind: 'FUNCTION_ERROR', firstSeq: 10n, lastSeq: 19n, recordCount: 10, attempt: 3, message: 'boom "quoted", {braced}\\', destinationRecord: null },
        { kind: 'RETRIES_EXHAUSTED', firstSeq: 10n, lastSeq: 19n, recordCount: 10, attempt: 3, message: null,
          destinationRecord: { zzz: 1, requestContext: { condition: 'RetryAttemptsExhausted' }, a: 'x' } },
        // What Postgres cannot store (NUL, half a surrogate pair) is written as U+FFFD rather than refusing the step.
        { kind: 'FUNCTION_ERROR', firstSeq: 10n, lastSeq: 19n, recordCount: 10, attempt: 3, message: 'nul \u0000 half \ud800 pair \ud83d\ude00',
          destinationRecord: { error: 'nul \u0000 half \udc00' } },
      ];
      const step = await commitStep(t.engine.handle, a, lease, { state: 'IDLE', checkpoint: { seq: 19n, ordinal: 10 }, consecutiveFailures: 0, invoked: true }, {
        invocation: { firstSeq: 10n, lastSeq: 19n, recordCount: 10, attempt: 3, outcome: 'FUNCTION_ERROR', durationMs: 5, error: 'boom \u0000', startedAt: new Date() },
        failures,
        ledger: { fromSeq: null, toSeq: 19n, reason: 'discard RETRIES_EXHAUSTED 10 record(s)' },
      });
      assert.equal(step.saved, true);
      const live = step.failures.rows!;
      assert.deepEqual(live.map((f) => f.kind), failures.map((f) => f.kind));
      assert.deepEqual(step.failures.ids, live.map((f) => f.id));
      assert.ok(live[0]!.id < live[1]!.id && live[1]!.id < live[2]!.id, 'ids drawn in the rows\' order');
      assert.equal(live[2]!.message, 'nul \ufffd half \ufffd pair \ud83d\ude00');
      assert.deepEqual(live[2]!.destinationRecord, { error: 'nul \ufffd half \ufffd' });
      // The live rows are the stored rows, as a later read of them gives them (jsonb orders keys its own way).
      const [f] = await t.engine.handle.query<{ rows: unknown }>(sql`
        select json_agg(json_build_array(id, kind, message, destination_record, (extract(epoch from at) * 1000)::float8) order by id) as rows
          from failures where mapping_id = ${mapping.id}`);
      const stored = (typeof f!.rows === 'string' ? JSON.parse(f!.rows) : f!.rows) as unknown[][];
      assert.deepEqual(JSON.stringify(stored), JSON.stringify(live.map((r) => [r.id, r.kind, r.message, r.destinationRecord, r.at.getTime()])));
      assert.deepEqual(await counts(mapping.id), { invocations: 1, failures: 3, ledger: 1, checkpoint: '19', failures_in_a_row: 0 });
      const [invocation] = await t.engine.handle.query<{ error: string }>(sql`select error from invocations where mapping_id = ${mapping.id}`);
      assert.equal(invocation!.error, 'boom \ufffd');

      // Another process takes the lease (its epoch moves on): the old owner's step writes nothing.
      await t.engine.handle.query(sql`update leases set owner = 'process-b', epoch = epoch + 1 where mapping_id = ${mapping.id}`);
      const lost = await commitStep(t.engine.handle, a, lease, { state: 'RETRYING', checkpoint: { seq: 29n, ordinal: 20 }, consecutiveFailures: 1, invoked: true }, {
        invocation: { firstSeq: 20n, lastSeq: 29n, recordCount: 10, attempt: 1, outcome: 'FUNCTION_ERROR', durationMs: 5, error: 'boom', startedAt: new Date() },
        failures: [failures[0]!],
        ledger: { fromSeq: 19n, toSeq: 29n, reason: 'discard' },
      });
      assert.equal(lost.saved, false);
      assert.deepEqual(await counts(mapping.id), { invocations: 1, failures: 3, ledger: 1, checkpoint: '19', failures_in_a_row: 0 }, 'nothing written');
      assert.equal(await a.save(lease, { state: 'PROCESSING', durable: false }), false, 'nor a lease write');
    });

    it('writes a step with no invocation, failure or ledger entry, and a relaxed lease write', async () => {
      const { mapping, a, lease } = await heldLease('step-plain');
      assert.equal(await a.save(lease, { state: 'PROCESSING', durable: false }), true);
      const step = await commitStep(t.engine.handle, a, lease, { state: 'IDLE', checkpoint: { seq: 5n, ordinal: 1 }, consecutiveFailures: 0 }, { failures: [] });
      assert.deepEqual(step, { saved: true, failures: { ids: [], rows: [] } });
      assert.deepEqual(await counts(mapping.id), { invocations: 0, failures: 0, ledger: 0, checkpoint: '5', failures_in_a_row: 0 });
      const [row] = await t.engine.handle.query<{ state: string }>(sql`select state from leases where mapping_id = ${mapping.id}`);
      assert.equal(row!.state, 'IDLE');
    });
  });
}
