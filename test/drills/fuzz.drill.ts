/**
 * Drill 5: property-based fuzzing (fast-check) of what producers and operators send a running
 * `shardline serve`: GraphQL putRecords, writeItems, importRecords, createEventSourceMapping
 * (with filter patterns), record positions, and the Kinesis API (POST with X-Amz-Target). Every
 * answer is a correct result or a clear error — a contract code other than INTERNAL, no stack
 * trace, no 5xx — the server never crashes, and a rejected request writes nothing (records and
 * mappings are counted in the database before and after).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import postgres from 'postgres';
import { freshPostgresDatabase } from '../harness.ts';
import { DATABASE_URL, type EngineProcess, graphql, report, skipWithoutPostgres, startServe } from './support.ts';

const RUNS = Number(process.env.SHARDLINE_FUZZ_RUNS ?? 1000);

describe('drill: fuzzing the write and mapping APIs', { skip: skipWithoutPostgres }, () => {
  let fresh: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let serve: EngineProcess & { url: string };
  let db: postgres.Sql;
  const figures: Record<string, string> = {};
  before(async () => {
    fresh = await freshPostgresDatabase(DATABASE_URL!);
    serve = await startServe({ DATABASE_URL: fresh.url, SHARDLINE_LEASE_TTL_SECONDS: '10' });
    db = postgres(fresh.url, { max: 1, onnotice: () => {} });
    for (const q of [
      'mutation { createStream(input: {name: "fk", shardCount: 2}) { name } }',
      'mutation { createStream(input: {name: "fd", kind: DYNAMODB, shardCount: 1, viewType: NEW_AND_OLD_IMAGES}) { name } }',
      'mutation { createFunction(input: {name: "ff", url: "http://127.0.0.1:9/"}) { name } }',
    ]) {
      const r = await graphql(serve.url, q);
      assert.equal(r.body?.errors, undefined, r.text);
    }
  });
  after(async () => {
    await serve?.kill();
    await db?.end();
    await fresh?.drop();
    if (Object.keys(figures).length > 0) report('fuzzing', figures);
  });

  const records = async () => Number((await db`select count(*)::int as n from records`)[0]!.n);
  const mappings = async () => Number((await db`select count(*)::int as n from event_source_mappings`)[0]!.n);

  /** A GraphQL answer is a result or clear errors; returns the errors' codes (empty on success). */
  function clear(r: { status: number; body: any; text: string }): string[] {
    assert.ok(r.status < 500, `HTTP ${r.status}: ${r.text.slice(0, 500)}`);
    assert.ok(r.body, `not JSON: ${r.text.slice(0, 300)}`);
    assert.doesNotMatch(r.text, /\n\s+at |node_modules|\.ts:\d+/, 'no stack trace reaches the client');
    const errors: { message: string; extensions?: { code?: unknown } }[] = r.body.errors ?? [];
    for (const e of errors) {
      assert.equal(typeof e.extensions?.code, 'string', `an error without a code: ${JSON.stringify(e)}`);
      assert.notEqual(e.extensions!.code, 'INTERNAL', `an unexpected fault: ${JSON.stringify(e)} for ${r.text.slice(0, 300)}`);
    }
    for (const e of errors) codesSeen.set(e.extensions!.code as string, (codesSeen.get(e.extensions!.code as string) ?? 0) + 1);
    if (process.env.SHARDLINE_DRILL_VERBOSE && errors.length > 0) console.error(errors.map((e) => `${e.extensions!.code}: ${e.message}`).join('\n'));
    return errors.map((e) => e.extensions!.code as string);
  }
  const codesSeen = new Map<string, number>();
  const alive = () => assert.equal(serve.child.exitCode, null, `shardline serve exited: ${serve.output().slice(-2000)}`);

  /** Runs a property with a bounded number of runs and notes its figures. */
  async function fuzz(name: string, arbitrary: fc.Arbitrary<any>, check: (input: any) => Promise<'ok' | 'refused'>, runs = RUNS) {
    const started = Date.now();
    const tally = { ok: 0, refused: 0 };
    codesSeen.clear();
    await fc.assert(fc.asyncProperty(arbitrary, async (input) => {
      tally[await check(input)]++;
      alive();
    }), { numRuns: runs, endOnFailure: true });
    figures[name] = `${runs} runs (${tally.ok} ok, ${tally.refused} refused: ${[...codesSeen].map(([c, n]) => `${n} ${c}`).join(', ')}) in ${((Date.now() - started) / 1000).toFixed(1)} s`;
  }

  const base64 = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64'));
  const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constant(''), fc.string({ minLength: 250, maxLength: 300 }));
  /** Mostly valid values, sometimes not: a request refused for its first bad field tests little else. */
  const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) => fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: invalid });
  const key = mostly(fc.string({ minLength: 1, maxLength: 20 }), text);
  const hashKey = fc.oneof(fc.bigInt({ min: -5n, max: 2n ** 129n }).map(String), text);

  it('putRecords', async () => {
    const record = fc.record({ partitionKey: key, data: mostly(base64, text) }, { requiredKeys: ['partitionKey', 'data'] })
      .chain((r) => fc.option(mostly(fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }).map(String), hashKey), { nil: undefined, freq: 4 }).map((h) => (h === undefined ? r : { ...r, explicitHashKey: h })));
    const input = fc.record({
      streamName: mostly(fc.constant('fk'), fc.oneof(fc.constant('fd'), text)),
      records: fc.oneof({ weight: 8, arbitrary: fc.array(record, { maxLength: 6 }) }, { weight: 1, arbitrary: fc.array(record, { minLength: 498, maxLength: 502 }) }),
    });
    await fuzz('putRecords', input, async ({ streamName, records: rs }) => {
      const before = await records();
      const r = await graphql(serve.url, `mutation($s: String!, $r: [PutRecordInput!]!) {
        putRecords(streamName: $s, records: $r) { failedRecordCount records { sequenceNumber errorCode } } }`, { s: streamName, r: rs });
      const codes = clear(r);
      const written = (await records()) - before;
      if (codes.length > 0) {
        assert.equal(written, 0, `a refused putRecords (${codes}) wrote ${written} record(s)`);
        return 'refused';
      }
      const result = r.body.data.putRecords;
      assert.equal(written, result.records.filter((e: { sequenceNumber: unknown }) => e.sequenceNumber).length);
      assert.equal(result.failedRecordCount, result.records.filter((e: { errorCode: unknown }) => e.errorCode).length);
      return 'ok';
    });
  });

  const attributeValue: fc.Arbitrary<unknown> = fc.letrec<{ av: unknown }>((tie) => ({
    av: fc.oneof({ depthSize: 'small' },
      fc.record({ S: fc.oneof(fc.string({ maxLength: 10 }), fc.integer()) }),
      fc.record({ N: fc.oneof(fc.double().map(String), fc.string({ maxLength: 6 })) }),
      fc.record({ B: fc.oneof(base64, fc.string({ maxLength: 6 })) }),
      fc.record({ BOOL: fc.oneof(fc.boolean(), fc.string({ maxLength: 3 })) }),
      fc.record({ NULL: fc.oneof(fc.constant(true), fc.constant(false)) }),
      fc.record({ L: fc.array(tie('av'), { maxLength: 3 }) }),
      fc.record({ M: fc.dictionary(fc.string({ maxLength: 5 }), tie('av'), { maxKeys: 3 }) }),
      fc.record({ SS: fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }) }),
      fc.jsonValue({ maxDepth: 2 })),
  })).av;
  const item = fc.oneof(fc.dictionary(fc.string({ maxLength: 6 }), attributeValue, { maxKeys: 3 }), fc.jsonValue({ maxDepth: 2 }));

  it('writeItems', async () => {
    const keys = mostly(fc.record({ id: fc.oneof(fc.record({ S: fc.string({ minLength: 1, maxLength: 8 }) }), fc.record({ N: fc.integer().map(String) })) }), item);
    // Images that carry the change's key attribute, as a table's would (mostly).
    const change = keys.chain((k) => {
      const id = k !== null && typeof k === 'object' ? (k as { id?: unknown }).id : undefined;
      const image = mostly(fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), attributeValue, { maxKeys: 3 }).map((d) => (id === undefined ? d : { ...d, id })), item);
      return fc.record({ keys: fc.constant(k), oldImage: fc.option(image, { nil: undefined }), newImage: fc.option(image, { nil: undefined }) }, { requiredKeys: ['keys'] });
    });
    const input = fc.record({ streamName: mostly(fc.constant('fd'), fc.oneof(fc.constant('fk'), text)), changes: fc.array(change, { minLength: 1, maxLength: 5 }) });
    await fuzz('writeItems', input, async ({ streamName, changes }) => {
      const before = await records();
      const r = await graphql(serve.url, `mutation($s: String!, $c: [ItemChangeInput!]!) {
        writeItems(streamName: $s, changes: $c) { failedRecordCount records { sequenceNumber errorCode } } }`, { s: streamName, c: changes });
      const codes = clear(r);
      const written = (await records()) - before;
      if (codes.length > 0) {
        assert.equal(written, 0, `a refused writeItems (${codes}) wrote ${written} record(s)`);
        return 'refused';
      }
      assert.equal(written, r.body.data.writeItems.records.filter((e: { sequenceNumber: unknown }) => e.sequenceNumber).length);
      return 'ok';
    });
  });

  it('importRecords', async () => {
    const kinesisRecord = fc.record({
      eventID: fc.oneof(text, fc.constant('shardId-000000000000:49590338271490256608559692538361571095921575989136588898')),
      eventSource: mostly(fc.constant('aws:kinesis'), text),
      kinesis: fc.record({ partitionKey: key, data: mostly(base64, text), sequenceNumber: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 60n }).map(String), text),
        approximateArrivalTimestamp: fc.oneof(fc.double(), fc.integer(), text) }, { requiredKeys: [] }),
    }, { requiredKeys: ['kinesis'] });
    const dynamoRecord = fc.record({
      eventID: text, eventName: fc.oneof(fc.constantFrom('INSERT', 'MODIFY', 'REMOVE'), text), eventSource: fc.oneof(fc.constant('aws:dynamodb'), text),
      dynamodb: fc.record({ Keys: item, NewImage: item, OldImage: item, SequenceNumber: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String), text),
        ApproximateCreationDateTime: fc.oneof(fc.integer(), fc.double(), text), StreamViewType: fc.oneof(fc.constant('NEW_AND_OLD_IMAGES'), text) }, { requiredKeys: [] }),
    }, { requiredKeys: [] });
    const event = mostly(
      fc.record({ Records: fc.array(mostly(kinesisRecord, fc.oneof(dynamoRecord, fc.jsonValue({ maxDepth: 2 }))), { minLength: 1, maxLength: 5 }) }),
      fc.jsonValue({ maxDepth: 3 }),
    );
    await fuzz('importRecords', fc.record({ streamName: mostly(fc.constant('fk'), fc.constantFrom('fd', 'nope')), event }), async ({ streamName, event: e }) => {
      const before = await records();
      const r = await graphql(serve.url, `mutation($s: String!, $e: JSON!) {
        importRecords(streamName: $s, event: $e) { failedRecordCount records { sequenceNumber errorCode } } }`, { s: streamName, e });
      const codes = clear(r);
      const written = (await records()) - before;
      if (codes.length > 0) {
        assert.equal(written, 0, `a refused importRecords (${codes}) wrote ${written} record(s)`);
        return 'refused';
      }
      assert.equal(written, r.body.data.importRecords.records.filter((x: { sequenceNumber: unknown }) => x.sequenceNumber).length);
      return 'ok';
    });
  });

  /** AWS event-filtering patterns, well-formed or nearly so, and plain garbage. */
  const filterPattern = fc.letrec<{ pattern: unknown; rule: unknown }>((tie) => ({
    rule: fc.oneof(
      fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null)), { maxLength: 3 }),
      fc.array(fc.oneof(
        fc.record({ prefix: fc.oneof(fc.string({ maxLength: 5 }), fc.integer()) }),
        fc.record({ suffix: fc.string({ maxLength: 5 }) }),
        fc.record({ 'equals-ignore-case': fc.oneof(fc.string({ maxLength: 5 }), fc.integer()) }),
        fc.record({ exists: fc.oneof(fc.boolean(), fc.string({ maxLength: 3 })) }),
        fc.record({ 'anything-but': fc.oneof(fc.string({ maxLength: 5 }), fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer())), fc.record({ prefix: fc.string({ maxLength: 3 }) })) }),
        fc.record({ numeric: fc.array(fc.oneof(fc.constantFrom('<', '<=', '=', '>', '>=', '!'), fc.double(), fc.integer()), { maxLength: 4 }) }),
        fc.record({ cidr: fc.string({ maxLength: 12 }) }),
        fc.record({ wildcard: fc.string({ maxLength: 6 }) }),
      ), { minLength: 1, maxLength: 2 }),
      fc.jsonValue({ maxDepth: 1 }),
    ),
    pattern: fc.dictionary(fc.oneof(fc.constantFrom('data', 'partitionKey', 'eventName', 'dynamodb', 'NewImage', 'Keys'), fc.string({ maxLength: 6 })),
      fc.oneof({ depthSize: 'small' }, tie('rule'), tie('pattern')), { maxKeys: 3 }),
  })).pattern;

  it('createEventSourceMapping, with filter patterns', async () => {
    const int = (min: number, max: number) => fc.option(fc.integer({ min, max }), { nil: undefined, freq: 2 });
    const input = fc.record({
      streamName: mostly(fc.constantFrom('fk', 'fd'), text),
      functionName: mostly(fc.constant('ff'), text),
      enabled: fc.constant(false),
      batchSize: int(-10, 12_000),
      maximumBatchingWindowSeconds: int(-5, 400),
      parallelizationFactor: int(-2, 12),
      bisectBatchOnFunctionError: fc.option(fc.boolean(), { nil: undefined }),
      maximumRetryAttempts: int(-5, 20_000),
      maximumRecordAgeSeconds: int(-5, 700_000),
      functionResponseTypes: fc.option(fc.array(fc.constant('ReportBatchItemFailures'), { maxLength: 2 }), { nil: undefined }),
      filterPatterns: fc.option(fc.array(fc.oneof({ weight: 4, arbitrary: filterPattern.map((p) => JSON.stringify(p)) }, { weight: 1, arbitrary: text }), { maxLength: 3 }), { nil: undefined }),
      tumblingWindowSeconds: int(-2, 1000),
      onFailureUrl: fc.option(fc.oneof(fc.webUrl(), text), { nil: undefined }),
    }, { requiredKeys: ['streamName', 'functionName', 'enabled'] });
    // A starting position and its timestamp that go together (mostly), or any combination.
    const timestamp = fc.date({ min: new Date(-1e14), max: new Date(1e14), noInvalidDate: true }).map((d) => d.toISOString());
    const position = mostly(
      fc.oneof(fc.record({ startingPosition: fc.constantFrom('TRIM_HORIZON', 'LATEST') }, { requiredKeys: [] }),
        fc.record({ startingPosition: fc.constant('AT_TIMESTAMP'), startingPositionTimestamp: fc.date({ min: new Date(Date.now() - 86_400_000), max: new Date(), noInvalidDate: true }).map((d) => d.toISOString()) })),
      fc.record({
        startingPosition: fc.constantFrom('TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'),
        startingPositionTimestamp: timestamp,
      }, { requiredKeys: [] }),
    );
    await fuzz('createEventSourceMapping', fc.tuple(input, position).map(([i, p]) => ({ ...i, ...p })), async (mapping) => {
      const before = await mappings();
      const r = await graphql(serve.url, 'mutation($i: EventSourceMappingInput!) { createEventSourceMapping(input: $i) { id } }', { i: mapping });
      const codes = clear(r);
      const created = (await mappings()) - before;
      if (codes.length > 0) {
        assert.equal(created, 0, `a refused createEventSourceMapping (${codes}) created ${created} mapping(s)`);
        return 'refused';
      }
      assert.equal(created, 1);
      clear(await graphql(serve.url, `mutation { deleteEventSourceMapping(id: "${r.body.data.createEventSourceMapping.id}") }`));
      return 'ok';
    });
  });

  it('positions', async () => {
    const position = fc.record({
      type: fc.oneof(fc.constantFrom('TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'), text),
      sequenceNumber: fc.option(fc.oneof(fc.bigInt({ min: -1n, max: 10n ** 25n }).map(String), text), { nil: undefined }),
      timestamp: fc.option(fc.oneof(fc.date({ min: new Date(-1e14), max: new Date(1e14), noInvalidDate: true }).map((d) => d.toISOString()), text), { nil: undefined }),
    }, { requiredKeys: ['type'] });
    const input = fc.record({
      streamName: fc.oneof(fc.constantFrom('fk', 'fd'), text),
      shardId: fc.option(fc.oneof(fc.constantFrom('shardId-000000000000', 'shardId-000000000001', 'shardId-999999999999'), text), { nil: undefined }),
      from: fc.option(position, { nil: undefined }),
      first: fc.option(fc.integer({ min: -5, max: 3000 }), { nil: undefined }),
    });
    await fuzz('positions (stream records from a position)', input, async ({ streamName, shardId, from, first }) => {
      const r = await graphql(serve.url, `query($s: String!, $sh: String, $f: PositionInput, $n: Int) {
        stream(name: $s) { records(shardId: $sh, from: $f, first: $n) { edges { node { sequenceNumber } } } } }`, { s: streamName, sh: shardId, f: from, n: first });
      return clear(r).length > 0 ? 'refused' : 'ok';
    });
  });

  it('the Kinesis API', async () => {
    const body = fc.record({
      StreamName: mostly(fc.constant('fk'), fc.oneof(fc.constant('fd'), text, fc.integer())),
      Data: mostly(base64, fc.oneof(text, fc.integer())),
      PartitionKey: mostly(fc.string({ minLength: 1, maxLength: 20 }), fc.oneof(text, fc.integer())),
      Records: mostly(fc.array(fc.record({ Data: mostly(base64, text), PartitionKey: key, ExplicitHashKey: hashKey }, { requiredKeys: ['Data', 'PartitionKey'] }), { minLength: 1, maxLength: 6 }), fc.jsonValue({ maxDepth: 1 })),
      ShardId: fc.oneof(fc.constantFrom('shardId-000000000000', 'shardId-000000000001'), text),
      ShardIteratorType: fc.oneof(fc.constantFrom('TRIM_HORIZON', 'LATEST', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER', 'AT_TIMESTAMP'), text),
      StartingSequenceNumber: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String), text),
      Timestamp: fc.oneof(fc.integer(), fc.double(), text),
      ShardIterator: fc.oneof(text, base64),
      Limit: fc.oneof(fc.integer({ min: -5, max: 20_000 }), text),
      NextToken: text,
    }, { requiredKeys: ['StreamName'] });
    const input = fc.record({
      operation: fc.constantFrom('PutRecord', 'PutRecords', 'GetShardIterator', 'GetRecords', 'DescribeStream', 'DescribeStreamSummary', 'ListShards', 'ListStreams'),
      body: fc.oneof({ weight: 6, arbitrary: body.map((b) => JSON.stringify(b)) }, { weight: 1, arbitrary: fc.string({ maxLength: 60 }) }),
    });
    const endpoint = new URL('/', serve.url).toString();
    await fuzz('Kinesis API', input, async ({ operation, body: payload }) => {
      const before = await records();
      const response = await fetch(endpoint, {
        method: 'POST', body: payload,
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Kinesis_20131202.${operation}` },
      });
      const textBody = await response.text();
      assert.ok(response.status < 500, `${operation}: HTTP ${response.status} ${textBody.slice(0, 300)}`);
      assert.doesNotMatch(textBody, /\n\s+at |node_modules|\.ts:\d+/);
      const written = (await records()) - before;
      const parsed = textBody ? JSON.parse(textBody) : {};
      if (response.status !== 200) {
        assert.equal(typeof parsed.__type, 'string', `${operation}: an error without __type: ${textBody.slice(0, 300)}`);
        codesSeen.set(parsed.__type, (codesSeen.get(parsed.__type) ?? 0) + 1);
        assert.equal(written, 0, `${operation}: a refused call wrote ${written} record(s)`);
        return 'refused';
      }
      const expected = operation === 'PutRecord' ? 1
        : operation === 'PutRecords' ? (parsed.Records as { SequenceNumber?: string }[]).filter((e) => e.SequenceNumber).length : 0;
      assert.equal(written, expected, `${operation}: wrote ${written}, answered ${expected}`);
      return 'ok';
    });
  });
});
