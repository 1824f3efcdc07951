/** Functions and event source mappings through GraphQL: the contract's queries and mutations. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

for (const backend of backends) {
  describe(`delivery through GraphQL (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-api-fn-'));
    const gql = async (query: string, variables?: Record<string, unknown>) =>
      (await (await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
      })).json()) as { data: any; errors?: { message: string; extensions: { code: string } }[] };

    before(async () => {
      writeFileSync(join(functionsDir, 'ok.mjs'), 'export const handler = async () => null;');
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 } });
      await t.engine.start();
      app = buildApp({ engine: t.engine });
      url = await app.start(0, '127.0.0.1');
    });
    after(async () => {
      await app.stop();
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('creates a function and a mapping, delivers, and shows lag, invocations and the mapping on its stream', async () => {
      await gql('mutation { createStream(input: {name: "g", shardCount: 2}) { name } }');
      const fn = await gql('mutation { createFunction(input: {name: "ok", module: "ok.mjs#handler"}) { name module url timeoutSeconds reservedConcurrency } }');
      assert.deepEqual(fn.data.createFunction, { name: 'ok', module: 'ok.mjs#handler', url: null, timeoutSeconds: 3, reservedConcurrency: null });
      const created = await gql(`mutation { createEventSourceMapping(input: {streamName: "g", functionName: "ok", startingPosition: TRIM_HORIZON}) {
        id state batchSize maximumBatchingWindowSeconds startingPosition parallelizationFactor bisectBatchOnFunctionError
        maximumRetryAttempts maximumRecordAgeSeconds functionResponseTypes filterPatterns tumblingWindowSeconds onFailureUrl
        stream { name } function { name } } }`);
      assert.equal(created.errors, undefined, JSON.stringify(created.errors));
      const m = created.data.createEventSourceMapping;
      assert.deepEqual({ ...m, id: undefined }, {
        id: undefined, state: 'ENABLED', batchSize: 100, maximumBatchingWindowSeconds: 0, startingPosition: 'TRIM_HORIZON',
        parallelizationFactor: 1, bisectBatchOnFunctionError: false, maximumRetryAttempts: -1, maximumRecordAgeSeconds: -1,
        functionResponseTypes: [], filterPatterns: [], tumblingWindowSeconds: 0, onFailureUrl: null,
        stream: { name: 'g' }, function: { name: 'ok' },
      });
      await gql(`mutation { putRecords(streamName: "g", records: [{partitionKey: "a", data: "${b64('1')}"}, {partitionKey: "b", data: "${b64('2')}"}]) { failedRecordCount } }`);
      const caughtUp = await waitFor(async () => {
        const r = await gql(`{ eventSourceMapping(id: "${m.id}") { recordsBehind maxIteratorAgeMs
          lag { shardId lane state checkpointSequenceNumber latestSequenceNumber recordsBehind consecutiveFailures lastInvokedAt }
          invocations(first: 10) { edges { cursor node { id shardId recordCount attempt outcome durationMs startedAt replayId } } pageInfo { hasNextPage } }
          failures { edges { node { id } } } } }`);
        const mapping = r.data.eventSourceMapping;
        return mapping.recordsBehind === 0 && mapping.invocations.edges.length > 0 ? mapping : undefined;
      }, 'delivered and caught up');
      assert.equal(caughtUp.lag.length, 2);
      for (const row of caughtUp.lag) assert.equal(row.checkpointSequenceNumber, row.latestSequenceNumber);
      assert.ok(caughtUp.invocations.edges.every((e: any) => e.node.outcome === 'OK' && e.node.replayId === null));
      assert.deepEqual(caughtUp.failures.edges, []);
      const onStream = await gql('{ stream(name: "g") { eventSourceMappings { id } } functions { name } eventSourceMappings(streamName: "g") { id } }');
      assert.deepEqual(onStream.data.stream.eventSourceMappings, [{ id: m.id }]);
      assert.deepEqual(onStream.data.functions, [{ name: 'ok' }]);

      const updated = await gql(`mutation { updateEventSourceMapping(id: "${m.id}", input: {enabled: false, batchSize: 10}) { state batchSize } }`);
      assert.deepEqual(updated.data.updateEventSourceMapping, { state: 'DISABLED', batchSize: 10 });
      const inUse = await gql('mutation { deleteFunction(name: "ok") }');
      assert.equal(inUse.errors?.[0]?.extensions.code, 'CONFLICT');
      assert.equal((await gql(`mutation { deleteEventSourceMapping(id: "${m.id}") }`)).data.deleteEventSourceMapping, true);
      assert.equal((await gql(`{ eventSourceMapping(id: "${m.id}") { id } }`)).data.eventSourceMapping, null);
      assert.equal((await gql('mutation { deleteFunction(name: "ok") }')).data.deleteFunction, true);
    });

    it('rejects bad mapping and function input with coded errors naming the field', async () => {
      await gql('mutation { createFunction(input: {name: "ok2", module: "ok.mjs#handler"}) { name } }');
      const cases: [string, string, RegExp][] = [
        ['mutation { createEventSourceMapping(input: {streamName: "g", functionName: "ok2", batchSize: 0}) { id } }', 'INVALID_ARGUMENT', /batchSize.*1.*10000/],
        ['mutation { createEventSourceMapping(input: {streamName: "g", functionName: "ok2", maximumRecordAgeSeconds: 30}) { id } }', 'INVALID_ARGUMENT', /maximumRecordAgeSeconds/],
        ['mutation { createEventSourceMapping(input: {streamName: "g", functionName: "ok2", parallelizationFactor: 11}) { id } }', 'INVALID_ARGUMENT', /parallelizationFactor.*1.*10/],
        ['mutation { createEventSourceMapping(input: {streamName: "g", functionName: "ok2", filterPatterns: ["{not json"]}) { id } }', 'INVALID_ARGUMENT', /filterPatterns\[0\]/],
        ['mutation { createEventSourceMapping(input: {streamName: "nope", functionName: "ok2"}) { id } }', 'STREAM_NOT_FOUND', /nope/],
        ['mutation { createEventSourceMapping(input: {streamName: "g", functionName: "nope"}) { id } }', 'FUNCTION_NOT_FOUND', /nope/],
        ['mutation { createFunction(input: {name: "bad", url: "ftp://x"}) { name } }', 'INVALID_ARGUMENT', /url/],
        ['mutation { createFunction(input: {name: "bad", module: "../escape.mjs#h"}) { name } }', 'INVALID_ARGUMENT', /module/],
        ['mutation { createFunction(input: {name: "ok2", module: "ok.mjs#handler"}) { name } }', 'FUNCTION_EXISTS', /ok2/],
        ['mutation { updateEventSourceMapping(id: "nope", input: {batchSize: 5}) { id } }', 'MAPPING_NOT_FOUND', /nope/],
        ['mutation { seekEventSourceMapping(id: "x", position: {type: TRIM_HORIZON}) { id } }', 'MAPPING_NOT_FOUND', /x/],
        ['mutation { createAlertRule(input: {name: "", metric: RECORDS_BEHIND, threshold: 1}) { id } }', 'INVALID_ARGUMENT', /name/],
        ['mutation { createAlertRule(input: {name: "x", mappingId: "", metric: RECORDS_BEHIND, threshold: 1}) { id } }', 'MAPPING_NOT_FOUND', /mapping/i],
        ['mutation { createAlertRule(input: {name: "x", metric: RECORDS_BEHIND, threshold: -1}) { id } }', 'INVALID_ARGUMENT', /threshold must be 0 or more/],
        ['mutation { createAlertRule(input: {name: "x", metric: ERROR_RATE, threshold: 5}) { id } }', 'INVALID_ARGUMENT', /threshold of ERROR_RATE is a fraction/],
      ];
      for (const [query, code, message] of cases) {
        const r = await gql(query);
        assert.equal(r.errors?.[0]?.extensions.code, code, `${query} → ${JSON.stringify(r.errors)}`);
        assert.match(r.errors![0]!.message, message);
      }
      assert.deepEqual((await gql('{ eventSourceMappings { id } }')).data.eventSourceMappings, [], 'nothing created');
      assert.deepEqual((await gql('{ alertRules { id } }')).data.alertRules, [], 'no rule created');
      // Functions and alert rules are operator actions: the audit log names them.
      const rule = await gql('mutation { createAlertRule(input: {name: "audited", metric: RECORDS_BEHIND, threshold: 1}) { id } }');
      await gql(`mutation { deleteAlertRule(id: "${rule.data.createAlertRule.id}") }`);
      const actions = (await gql('{ auditLog(first: 50) { action } }')).data.auditLog.map((e: { action: string }) => e.action);
      for (const action of ['function.create', 'alertRule.create', 'alertRule.delete']) assert.ok(actions.includes(action), `audit has ${action}`);
    });

    it('answers an id or cursor too long to be one of ours with its own code, not INTERNAL', async () => {
      await gql('mutation { createStream(input: {name: "long-ids", shardCount: 1}) { name } }');
      await gql('mutation { createFunction(input: {name: "long-ids-fn", module: "ok.mjs#handler"}) { name } }');
      const created = await gql('mutation { createEventSourceMapping(input: {streamName: "long-ids", functionName: "long-ids-fn"}) { id } }');
      const id = created.data.createEventSourceMapping.id;
      const huge = '99999999999999999999';
      for (const [query, code] of [
        [`{ eventSourceMapping(id: "${id}") { failures(after: "${huge}") { edges { cursor } } } }`, 'INVALID_ARGUMENT'],
        [`{ eventSourceMapping(id: "${id}") { invocations(after: "${huge}") { edges { cursor } } } }`, 'INVALID_ARGUMENT'],
        [`mutation { redriveFailures(mappingId: "${id}", failureIds: ["${huge}"]) { id } }`, 'FAILURE_NOT_FOUND'],
      ] as const) {
        const r = await gql(query);
        assert.equal(r.errors?.[0]?.extensions.code, code, `${query} → ${JSON.stringify(r.errors)}`);
      }
      assert.deepEqual((await gql('{ replays { id } }')).data.replays, [], 'no redrive started');
    });
  });
}
