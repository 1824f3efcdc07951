import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { buildSchema, findBreakingChanges } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type App, buildApp } from '../api/app.ts';
import { SCHEMA_FILE, printServedSchema } from '../api/printSchema.ts';
import { schema } from '../api/schema.ts';
import { type TestEngine, b64, backends, bounded, openTestEngine, waitFor } from './harness.ts';

// A copy of ../shared/contract/schema.graphql (test/fixtures.test.ts checks it is identical).
const CONTRACT = new URL('./fixtures/contract.graphql', import.meta.url);

describe('GraphQL contract', () => {
  it('serves a compatible superset of the contract (findBreakingChanges is empty)', () => {
    const contract = buildSchema(readFileSync(CONTRACT, 'utf8'));
    assert.deepEqual(findBreakingChanges(contract, schema), []);
  });

  it('has a fresh api/schema.graphql (run npm run schema:print)', () => {
    assert.equal(readFileSync(SCHEMA_FILE, 'utf8'), printServedSchema());
  });
});

interface GqlResponse<T = Record<string, any>> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string }; path?: string[] }[];
}

for (const backend of backends) {
  describe(`GraphQL API over HTTP and graphql-ws (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    const logged: unknown[] = [];

    async function gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>> {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GqlResponse<T>;
    }

    before(async () => {
      t = await openTestEngine(backend);
      app = buildApp({ engine: t.engine, logError: (e) => logged.push(e) });
      url = await app.start(0, '127.0.0.1');
    });
    after(async () => {
      await app.stop();
      await t.close();
    });

    it('creates a stream, writes and reads records back', async () => {
      const created = await gql(`mutation { createStream(input: {name: "orders", shardCount: 2}) {
        name kind status arn retentionHours viewType createdAt shards { shardId hashKeyRange { startingHashKey endingHashKey } } } }`);
      assert.equal(created.errors, undefined);
      const stream = created.data!.createStream;
      assert.equal(stream.arn, 'arn:aws:kinesis:us-east-1:000000000000:stream/orders');
      assert.equal(stream.status, 'ACTIVE');
      assert.equal(stream.retentionHours, 24);
      assert.match(stream.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(stream.shards.length, 2);

      const put = await gql(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "orders", records: $r) {
        failedRecordCount records { shardId sequenceNumber errorCode errorMessage } } }`,
        { r: [{ partitionKey: 'a', data: b64('one') }, { partitionKey: 'b', data: b64('two') }] });
      assert.equal(put.data!.putRecords.failedRecordCount, 0);
      const read = await gql(`{ stream(name: "orders") { records(first: 10) { edges { cursor node {
        eventID shardId sequenceNumber partitionKey data approximateArrivalTimestamp sizeBytes eventName } }
        pageInfo { hasNextPage endCursor } } } }`);
      const edges = read.data!.stream.records.edges;
      assert.deepEqual(edges.map((e: any) => Buffer.from(e.node.data, 'base64').toString()).sort(), ['one', 'two']);
      for (const e of edges) assert.equal(e.node.eventID, `${e.node.shardId}:${e.node.sequenceNumber}`);
      assert.equal(read.data!.stream.records.pageInfo.hasNextPage, false);
    });

    it('answers bad input with a coded error naming the field, writes nothing, and keeps serving', async () => {
      const before = await t.engine.reader.page('orders', { first: 1000 });
      const tooMany = await gql(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "orders", records: $r) { failedRecordCount } }`,
        { r: Array.from({ length: 501 }, () => ({ partitionKey: 'k', data: '' })) });
      assert.equal(tooMany.errors![0]!.extensions!.code, 'LIMIT_EXCEEDED');
      assert.match(tooMany.errors![0]!.message, /records.*500/);
      const badKey = await gql(`mutation { putRecords(streamName: "orders", records: [{partitionKey: "ok", data: "aGk="}, {partitionKey: "", data: "aGk="}]) { failedRecordCount } }`);
      assert.equal(badKey.errors![0]!.extensions!.code, 'INVALID_ARGUMENT');
      assert.match(badKey.errors![0]!.message, /records\[1\]\.partitionKey.*1–256/);
      const after = await t.engine.reader.page('orders', { first: 1000 });
      assert.equal(after.records.length, before.records.length, 'a rejected request wrote nothing');

      const cases: [string, string][] = [
        ['mutation { createStream(input: {name: "bad name", shardCount: 1}) { name } }', 'INVALID_ARGUMENT'],
        ['mutation { createStream(input: {name: "orders", shardCount: 1}) { name } }', 'STREAM_EXISTS'],
        ['mutation { createStream(input: {name: "x", shardCount: 1, retentionHours: 9000}) { name } }', 'INVALID_ARGUMENT'],
        ['mutation { splitShard(streamName: "nope", shardId: "shardId-000000000000", newStartingHashKey: "5") { name } }', 'STREAM_NOT_FOUND'],
        ['mutation { splitShard(streamName: "orders", shardId: "shardId-000000000009", newStartingHashKey: "5") { name } }', 'SHARD_NOT_FOUND'],
        ['{ stream(name: "orders") { records(first: 5000) { edges { cursor } } } }', 'LIMIT_EXCEEDED'],
        ['{ stream(name: "orders") { records(after: "garbage") { edges { cursor } } } }', 'INVALID_ARGUMENT'],
        ['{ stream(name: "orders") { records(from: {type: AT_TIMESTAMP, timestamp: "yesterday"}) { edges { cursor } } } }', 'INVALID_ARGUMENT'],
        ['{ streamz }', 'INVALID_ARGUMENT'],
        ['{ stream(name: ', 'INVALID_ARGUMENT'],
        ['mutation { createAlertRule(input: {name: "x", metric: RECORDS_BEHIND, threshold: 1, forSeconds: -1}) { id } }', 'INVALID_ARGUMENT'],
        ['mutation { pauseReplay(id: "nope") { id } }', 'REPLAY_NOT_FOUND'],
        ['mutation { startReplay(input: {streamName: "orders", from: {type: LATEST}, functionName: "f"}) { id } }', 'FUNCTION_NOT_FOUND'],
      ];
      for (const [query, code] of cases) {
        const response = await gql(query);
        assert.equal(response.errors?.[0]?.extensions?.code, code, `${query} → ${JSON.stringify(response)}`);
        assert.doesNotMatch(JSON.stringify(response), /\s+at\s+\S+\s+\(|stack/i, 'no stack trace reaches the client');
      }
      const still = await gql('{ streams { name } }');
      assert.deepEqual(still.data!.streams.map((s: any) => s.name), ['orders']);
    });

    it('refuses timestamps Postgres cannot hold, impossible dates and deep nesting with coded errors, and keeps serving', async () => {
      const at = (timestamp: string) => gql(`{ stream(name: "orders") { records(from: {type: AT_TIMESTAMP, timestamp: "${timestamp}"}) { edges { cursor } } } }`);
      for (const timestamp of ['0000-01-01T00:00:00Z', '9999-12-31T23:00:00-05:00', '1969-12-31T23:59:59Z']) {
        const response = await at(timestamp);
        assert.equal(response.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT', `${timestamp}: ${JSON.stringify(response)}`);
        assert.match(response.errors![0]!.message, /between 1970-01-01T00:00:00\.000Z and 9999-12-31T23:59:59\.999Z/);
      }
      for (const timestamp of ['2026-02-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-01-01T24:00:00Z']) {
        const response = await at(timestamp);
        assert.equal(response.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT', `${timestamp}: ${JSON.stringify(response)}`);
        assert.match(response.errors![0]!.message, /ISO-8601/);
      }
      assert.equal((await at('2024-02-29T12:00:00+01:00')).errors, undefined, 'a leap day is a date');

      const deepLiteral = await gql(`{ stream(name: "orders") { records(after: ${'['.repeat(20_000)}${']'.repeat(20_000)}) { edges { cursor } } } }`);
      assert.equal(deepLiteral.errors?.[0]?.extensions?.code, 'LIMIT_EXCEEDED', JSON.stringify(deepLiteral).slice(0, 300));
      assert.match(deepLiteral.errors![0]!.message, /nests too deeply/);

      await gql('mutation { createStream(input: {name: "deep-items", kind: DYNAMODB, shardCount: 1}) { name } }');
      const write = (newImage: unknown, keys: unknown = { id: { S: 'a' } }) =>
        gql('mutation($c: [ItemChangeInput!]!) { writeItems(streamName: "deep-items", changes: $c) { records { sequenceNumber } } }',
          { c: [{ keys, newImage }] });
      const nest = (levels: number) => {
        let value: unknown = { S: 'leaf' };
        for (let i = 0; i < levels; i++) value = { M: { inner: value } };
        return { id: { S: 'a' }, deep: value };
      };
      assert.equal((await write(nest(32))).errors, undefined, '32 levels of maps are allowed');
      const tooDeep = await write(nest(33));
      assert.equal(tooDeep.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
      assert.match(tooDeep.errors![0]!.message, /changes\[0\]\.newImage\.deep.*32 levels/);
      // Written out by hand: JSON.stringify itself would exhaust the stack at this depth.
      const hugeImage = `{"id":{"S":"a"},"deep":${'{"M":{"inner":'.repeat(20_000)}{"S":"leaf"}${'}}'.repeat(20_000)}}`;
      const huge = await (await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: `{"query":"mutation($c: [ItemChangeInput!]!) { writeItems(streamName: \\"deep-items\\", changes: $c) { records { sequenceNumber } } }",`
          + `"variables":{"c":[{"keys":{"id":{"S":"a"}},"newImage":${hugeImage}}]}}`,
      })).json() as GqlResponse;
      assert.equal(huge.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT', JSON.stringify(huge).slice(0, 300));
      assert.match(huge.errors![0]!.message, /at most 100 levels/);

      // A key attribute named __proto__ is a name like any other: two values, two items.
      const proto = async (v: string) => (await gql(
        'mutation($c: [ItemChangeInput!]!) { writeItems(streamName: "deep-items", changes: $c) { records { sequenceNumber } } }',
        { c: [{ keys: JSON.parse(`{"__proto__":{"S":"${v}"}}`), newImage: JSON.parse(`{"__proto__":{"S":"${v}"},"id":{"S":"x"}}`) }] }));
      assert.equal((await proto('a')).errors, undefined);
      assert.equal((await proto('b')).errors, undefined);
      const events = await gql('{ stream(name: "deep-items") { records(first: 10) { edges { node { eventName } } } } }');
      assert.deepEqual(events.data!.stream.records.edges.map((e: any) => e.node.eventName), ['INSERT', 'INSERT', 'INSERT']);
      assert.ok((await gql('{ streams { name } }')).data!.streams.some((x: any) => x.name === 'deep-items'), 'still serving');
    });

    it('names the argument or variable that holds a NUL character, and runs nothing', async () => {
      const literal = await gql('mutation { createFunction(input: {name: "nul-fn", url: "http://127.0.0.1/\\u0000x"}) { name } }');
      assert.equal(literal.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT', JSON.stringify(literal));
      assert.match(literal.errors![0]!.message, /^The argument createFunction\(input\.url\) holds a NUL character/);
      const variable = await gql('mutation($f: CreateFunctionInput!) { createFunction(input: $f) { name } }', { f: { name: 'nul-fn', url: 'http://127.0.0.1/\u0000' } });
      assert.match(variable.errors![0]!.message, /^The variable \$f\.url holds a NUL character/);
      const nested = await gql('{ stream(name: "orders") { records(after: "a\\u0000") { edges { cursor } } } }');
      assert.match(nested.errors![0]!.message, /^The argument records\(after\) holds a NUL character/);
      const functions = await gql('{ functions { name } }');
      assert.equal(functions.data!.functions.some((f: any) => f.name === 'nul-fn'), false, 'nothing was created');
    });

    it('answers variables that do not coerce with INVALID_ARGUMENT at the variable, and a missing one with HTTP 400', async () => {
      const query = 'mutation($r: [PutRecordInput!]!) { putRecords(streamName: "orders", records: $r) { failedRecordCount } }';
      const post = (variables?: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
      const nullData = await post({ r: [{ partitionKey: 'k', data: null }] });
      assert.equal(nullData.status, 200);
      assert.deepEqual(await nullData.json(), { errors: [{
        message: 'Variable "$r" got invalid value null at "r[0].data"; Expected non-nullable type "String!" not to be null.',
        locations: [{ line: 1, column: 10 }],
        extensions: { code: 'INVALID_ARGUMENT' },
      }] });
      const missing = await post();
      assert.equal(missing.status, 400);
      const body = await missing.json() as GqlResponse;
      assert.equal(body.errors![0]!.extensions!.code, 'INVALID_ARGUMENT');
      assert.match(body.errors![0]!.message, /\$r.*was not provided/);
    });

    it('reads JSON bodies as UTF-8 and answers bodies that are not a GraphQL request object with 400 or a coded error', async () => {
      const post = async (body: string, contentType = 'application/json') => {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
        return { status: response.status, body: await response.json() as GqlResponse };
      };
      const key = 'ключ-🔑';
      const put = await post(JSON.stringify({
        query: 'mutation($r: [PutRecordInput!]!) { putRecords(streamName: "orders", records: $r) { records { shardId sequenceNumber } } }',
        variables: { r: [{ partitionKey: key, data: b64('utf-8') }] },
      }), 'application/json; charset=utf-8');
      assert.equal(put.status, 200);
      const { sequenceNumber } = put.body.data!.putRecords.records[0];
      const page = await t.engine.reader.page('orders', { first: 1000 });
      assert.equal(page.records.find((r) => r.record.sequenceNumber === sequenceNumber)?.record.partitionKey, key);

      for (const [body, message] of [
        ['{"query":', /POST body sent invalid JSON/],
        ['null', /expected to be object but received null/],
        ['"{}"', /expected to be object but received string/],
        ['[{"query":"{ streams { name } }"}]', /Batching is not supported/],
      ] as const) {
        const answer = await post(body);
        assert.equal(answer.status, 400, body);
        assert.equal(answer.body.errors![0]!.extensions!.code, 'INVALID_ARGUMENT', body);
        assert.match(answer.body.errors![0]!.message, message);
      }
      const empty = await post('{}');
      assert.equal(empty.body.errors![0]!.message, 'Must provide query string.');
      const plain = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"query":"{ streams { name } }"}' });
      assert.equal(plain.status, 415);
    });

    it('masks unexpected errors as INTERNAL without detail', async () => {
      const { createMaskError } = await import('../api/errors.ts');
      const masked = createMaskError((e) => logged.push(e))(new Error('secret connection string'), 'x');
      assert.equal((masked as any).extensions.code, 'INTERNAL');
      assert.doesNotMatch(masked.message, /secret/);
    });

    it('live-tails records over graphql-ws, in order per shard, following a split', async () => {
      await gql('mutation { createStream(input: {name: "tail", shardCount: 2}) { name } }');
      await t.engine.putRecords('tail', [{ partitionKey: 'before', data: b64('old') }]);
      const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
      const received: { data: string; shardId: string; sequenceNumber: string }[] = [];
      const errors: unknown[] = [];
      const unsubscribe = client.subscribe(
        { query: 'subscription { records(streamName: "tail") { data shardId sequenceNumber } }' },
        {
          next: (value: any) => received.push(value.data.records),
          error: (e) => errors.push(e),
          complete: () => {},
        },
      );
      // The subscription starts at LATEST once the server has set it up: write markers until one
      // arrives, then everything written afterwards must arrive.
      for (let i = 0; received.length === 0; i++) {
        assert.ok(i < 200, 'the subscription never delivered a marker');
        await t.engine.putRecords('tail', [{ partitionKey: 'marker', data: b64(`marker${i}`) }]);
        await waitFor(() => received.length > 0, 'marker', 50).catch(() => undefined);
      }
      received.length = 0;
      const written: string[] = [];
      for (let i = 0; i < 20; i++) {
        const data = b64(`r${i}`);
        written.push(data);
        await t.engine.putRecords('tail', [{ partitionKey: `k${i % 5}`, data }]);
        if (i === 9) {
          const shards = await t.engine.catalog.shards(await t.engine.catalog.get('tail'), 'OPEN');
          const s = shards[0]!;
          const mid = (BigInt(s.hashKeyRange.startingHashKey) + BigInt(s.hashKeyRange.endingHashKey)) / 2n;
          await t.engine.resharding.splitShard('tail', s.shardId, mid.toString());
        }
      }
      await waitFor(() => received.length >= 20, `20 records over graphql-ws (got ${received.length})`, 10_000);
      unsubscribe();
      await client.dispose();
      assert.deepEqual(errors, []);
      assert.deepEqual(received.map((r) => r.data).sort(), written.sort(), 'each record exactly once, none from before');
      const byShard = new Map<string, string[]>();
      for (const r of received) byShard.set(r.shardId, [...(byShard.get(r.shardId) ?? []), r.sequenceNumber]);
      for (const seqs of byShard.values()) assert.deepEqual(seqs, [...seqs].sort(), 'in sequence order per shard');
    });

    it('ends a subscription to an unknown stream with STREAM_NOT_FOUND', async () => {
      const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
      const error = await bounded(new Promise<any>((resolve) => {
        client.subscribe({ query: 'subscription { records(streamName: "missing") { data } }' }, {
          next: (value: any) => resolve(value.errors?.[0]),
          error: (e) => resolve(Array.isArray(e) ? e[0] : e),
          complete: () => resolve(undefined),
        });
      }), 'the subscription ends with an error');
      await client.dispose();
      assert.equal(error?.extensions?.code, 'STREAM_NOT_FOUND');
    });
  });
}
