/**
 * Tokens, scopes and limits on every surface: GraphQL over HTTP, graphql-ws, /metrics, the
 * Kinesis and DynamoDB Streams APIs (SigV4 through the real AWS SDK), the dashboard's files,
 * local mode and the bootstrap admin token.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as http1Request } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { KinesisClient, ListStreamsCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { DynamoDBStreamsClient, ListStreamsCommand as ListDdbStreamsCommand } from '@aws-sdk/client-dynamodb-streams';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type App, buildApp } from '../api/app.ts';
import { ADMIN_ACCESS_KEY_ID, type CreatedToken } from '../engine/auth/apiTokens.ts';
import { type TestEngine, b64, backends, bounded, openTestEngine, waitFor } from './harness.ts';

const run = promisify(execFile);
const REGION = 'us-east-1';

interface GqlResponse { status: number; data?: any; errors?: { message: string; extensions?: { code?: string } }[] }

async function gql(url: string, query: string, token?: string, variables?: Record<string, unknown>): Promise<GqlResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return { status: response.status, ...(await response.json()) as object };
}

const codeOf = (r: GqlResponse) => r.errors?.[0]?.extensions?.code;

function kinesis(url: string, accessKeyId: string, secretAccessKey: string) {
  return new KinesisClient({
    endpoint: new URL(url).origin, region: REGION, credentials: { accessKeyId, secretAccessKey },
    requestHandler: new NodeHttpHandler(), maxAttempts: 1,
  });
}

/** X-Amz-Date's form of an instant. */
const amzDate = (ms: number) => new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '');

/** SigV4 headers naming `accessKeyId` at `ms`, with a signature that cannot match. */
function claimedSignature(accessKeyId: string, ms: number, signedHeaders = 'content-type;host;x-amz-date;x-amz-target'): Record<string, string> {
  const date = amzDate(ms);
  return {
    'x-amz-date': date,
    authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${date.slice(0, 8)}/${REGION}/kinesis/aws4_request, SignedHeaders=${signedHeaders}, Signature=${'0'.repeat(64)}`,
  };
}

/**
 * Starts a Kinesis call that declares a body of `declared` bytes, sends one byte of it and then
 * nothing; resolves with the answer's status and `__type`, which can only come before the body.
 */
async function answerBeforeBody(origin: string, protocol: 'http/1.1' | 'h2c', headers: Record<string, string>, declared: number, target = 'Kinesis_20131202.ListStreams') {
  const all = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target, 'content-length': String(declared), ...headers };
  const read = (stream: NodeJS.ReadableStream) => new Promise<string>((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk) => { text += chunk; });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
  if (protocol === 'http/1.1') {
    const req = http1Request(origin, { method: 'POST', headers: all });
    try {
      const answer = new Promise<{ status: number; type: string }>((resolve, reject) => {
        req.on('response', (res) => read(res).then((text) => resolve({ status: res.statusCode!, type: JSON.parse(text).__type }), reject));
        req.on('error', reject);
      });
      req.write('{');
      return await bounded(answer, 'an HTTP/1.1 answer before the body', 3000);
    } finally {
      req.destroy();
    }
  }
  const session = http2Connect(origin);
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/', ...all });
    const answer = new Promise<{ status: number; type: string }>((resolve, reject) => {
      stream.on('response', (h) => read(stream).then((text) => resolve({ status: Number(h[':status']), type: JSON.parse(text).__type }), reject));
      stream.on('error', reject);
    });
    stream.write('{');
    return await bounded(answer, 'an HTTP/2 answer before the body', 3000);
  } finally {
    session.destroy();
  }
}

/** A client whose signatures leave `header` out (removed before signing, put back after). */
function signingWithout(client: KinesisClient, header: string): KinesisClient {
  let kept: string | undefined;
  client.middlewareStack.addRelativeTo((next: any) => async (args: any) => {
    for (const name of Object.keys(args.request.headers)) {
      if (name.toLowerCase() === header) { kept = args.request.headers[name]; delete args.request.headers[name]; }
    }
    return next(args);
  }, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: `unsign-${header}` });
  client.middlewareStack.addRelativeTo((next: any) => async (args: any) => {
    if (kept !== undefined) args.request.headers[header] = kept;
    return next(args);
  }, { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: `resend-${header}` });
  return client;
}

/** Opens a graphql-ws connection; resolves with the close event's code and reason, or 'open' once acknowledged. */
function connect(url: string, authorization?: string) {
  let closed: { code: number; reason: string } | undefined;
  let acked = false;
  const client = createClient({
    url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false,
    connectionParams: authorization ? { authorization } : {},
    on: {
      connected: () => { acked = true; },
      closed: (event) => { closed = { code: (event as { code: number }).code, reason: (event as { reason: string }).reason }; },
    },
    onNonLazyError: () => {},
  });
  return { client, state: () => ({ acked, closed }) };
}

describe('local mode', () => {
  for (const backend of backends) {
    it(`needs no token while none is configured, and acts as "local" (${backend.name})`, async () => {
      const t = await openTestEngine(backend);
      const app = buildApp({ engine: t.engine, logError: () => {} });
      const url = await app.start(0, '127.0.0.1');
      try {
        const created = await gql(url, 'mutation { createStream(input: {name: "s", shardCount: 1}) { name } }');
        assert.equal(created.errors, undefined);
        const log = await gql(url, '{ auditLog { actor action } }');
        assert.equal(log.data.auditLog[0].actor, 'local');
        assert.equal((await fetch(url.replace('/graphql', '/metrics'))).status, 200);
      } finally {
        await app.stop();
        await t.close();
      }
    });
  }
});

for (const backend of backends) {
  describe(`authentication and scopes (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    const tokens: Record<string, CreatedToken> = {};

    before(async () => {
      t = await openTestEngine(backend);
      app = buildApp({ engine: t.engine, logError: () => {}, limits: { maxSubscriptionsPerConnection: 2, maxQueryDepth: 4, maxAliases: 5, maxBodyBytes: 64 * 1024 } });
      url = await app.start(0, '127.0.0.1');
      // The first token (made through the GraphQL admin mutation while in local mode) turns authentication on.
      const first = await gql(url, 'mutation { createApiToken(name: "ops-admin", scopes: [ADMIN]) { bearerToken secretAccessKey token { id name scopes accessKeyId } } }');
      assert.equal(first.errors, undefined);
      tokens.admin = { ...first.data.createApiToken.token, token: first.data.createApiToken.bearerToken, secretAccessKey: first.data.createApiToken.secretAccessKey };
      for (const [name, scopes] of [['reader', 'read'], ['producer', 'produce,read'], ['operator', 'operate,read']] as const) {
        tokens[name] = await t.engine.tokens.create({ name, scopes }, 'test');
      }
      assert.equal((await gql(url, 'mutation { createStream(input: {name: "orders", shardCount: 2}) { name } }', tokens.admin!.token)).errors, undefined);
    });
    after(async () => {
      await app.stop();
      await t.close();
    });

    it('refuses a request without a token, or with a bad one, with UNAUTHENTICATED (401) and runs nothing', async () => {
      const none = await gql(url, '{ streams { name } }');
      assert.equal(none.status, 401);
      assert.equal(codeOf(none), 'UNAUTHENTICATED');
      assert.match(none.errors![0]!.message, /Bearer/);
      const bad = await gql(url, '{ streams { name } }', 'sl_not-a-token');
      assert.equal(codeOf(bad), 'UNAUTHENTICATED');
      const introspection = await gql(url, '{ __schema { queryType { name } } }');
      assert.equal(codeOf(introspection), 'UNAUTHENTICATED');
      const write = await gql(url, 'mutation { putRecords(streamName: "orders", records: [{data: "eA==", partitionKey: "k"}]) { failedRecordCount } }');
      assert.equal(codeOf(write), 'UNAUTHENTICATED');
      const stream = await gql(url, '{ stream(name: "orders") { shards { recordCount } } }', tokens.reader!.token);
      assert.deepEqual(stream.data.stream.shards.map((s: { recordCount: number }) => s.recordCount), [0, 0]);
    });

    it('gives FORBIDDEN, naming the scope, to a token without it; a rejected write writes nothing', async () => {
      const put = `mutation { putRecords(streamName: "orders", records: [{data: "${b64('x')}", partitionKey: "k"}]) { failedRecordCount } }`;
      const denied = await gql(url, put, tokens.reader!.token);
      assert.equal(codeOf(denied), 'FORBIDDEN');
      assert.match(denied.errors![0]!.message, /putRecords needs the "produce" scope; token "reader"/);
      const counted = await gql(url, '{ stream(name: "orders") { shards { recordCount } } }', tokens.reader!.token);
      assert.equal(counted.data.stream.shards.reduce((n: number, s: { recordCount: number }) => n + s.recordCount, 0), 0);
      // A write beside a forbidden mutation: refused whole before either runs, so a retry duplicates nothing.
      const mixed = await gql(url, `mutation { a: putRecords(streamName: "orders", records: [{data: "${b64('x')}", partitionKey: "k"}]) { failedRecordCount } ...more }
        fragment more on Mutation { b: createStream(input: {name: "x", shardCount: 1}) { name } }`, tokens.producer!.token);
      assert.equal(codeOf(mixed), 'FORBIDDEN');
      assert.match(mixed.errors![0]!.message, /createStream needs the "admin" scope/);
      const still = await gql(url, '{ stream(name: "orders") { shards { recordCount } } }', tokens.reader!.token);
      assert.equal(still.data.stream.shards.reduce((n: number, s: { recordCount: number }) => n + s.recordCount, 0), 0, 'the allowed write did not run');
      // The scope of updateEventSourceMapping depends on its arguments, also when they come as variables.
      const viaVariables = await gql(url, 'mutation($input: UpdateEventSourceMappingInput!) { updateEventSourceMapping(id: "nope", input: $input) { id } }',
        tokens.operator!.token, { input: { batchSize: 5 } });
      assert.equal(codeOf(viaVariables), 'FORBIDDEN');
      // ... with the variables as execution coerces them: a default counts.
      const viaDefault = await gql(url, 'mutation($e: Boolean = false) { updateEventSourceMapping(id: "nope", input: {enabled: $e}) { id } }', tokens.operator!.token);
      assert.equal(codeOf(viaDefault), 'MAPPING_NOT_FOUND', JSON.stringify(viaDefault.errors));
      assert.equal((await gql(url, put, tokens.producer!.token)).errors, undefined);
      assert.equal(codeOf(await gql(url, 'mutation { createStream(input: {name: "x", shardCount: 1}) { name } }', tokens.operator!.token)), 'FORBIDDEN');
      assert.equal(codeOf(await gql(url, '{ apiTokens { name } }', tokens.reader!.token)), 'FORBIDDEN');
      const listed = await gql(url, '{ apiTokens { name scopes revokedAt } }', tokens.admin!.token);
      assert.deepEqual(listed.data.apiTokens.map((x: { name: string }) => x.name), ['ops-admin', 'reader', 'producer', 'operator']);
    });

    it('lets an operator enable and disable a mapping but not change its settings', async () => {
      const fn = await gql(url, 'mutation { createFunction(input: {name: "f", url: "http://127.0.0.1:9/"}) { name } }', tokens.admin!.token);
      assert.equal(fn.errors, undefined);
      const created = await gql(url, 'mutation { createEventSourceMapping(input: {functionName: "f", streamName: "orders", startingPosition: LATEST, enabled: false}) { id } }', tokens.admin!.token);
      assert.equal(created.errors, undefined);
      const id = created.data.createEventSourceMapping.id;
      const toggled = await gql(url, `mutation { updateEventSourceMapping(id: "${id}", input: {enabled: false}) { state } }`, tokens.operator!.token);
      assert.equal(toggled.errors, undefined);
      const resized = await gql(url, `mutation { updateEventSourceMapping(id: "${id}", input: {batchSize: 10}) { state } }`, tokens.operator!.token);
      assert.equal(codeOf(resized), 'FORBIDDEN');
      const log = await gql(url, '{ auditLog(first: 5) { actor action } }', tokens.reader!.token);
      assert.deepEqual(log.data.auditLog.slice(0, 2).map((e: { actor: string; action: string }) => `${e.actor} ${e.action}`),
        ['operator mapping.update', 'ops-admin mapping.create']);
    });

    it('guards /metrics with the read scope; the dashboard files and health checks stay public', async () => {
      const origin = new URL(url).origin;
      assert.equal((await fetch(`${origin}/metrics`)).status, 401);
      const produceOnly = await t.engine.tokens.create({ name: 'metrics-producer', scopes: 'produce' }, 'test');
      assert.equal((await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${produceOnly.token}` } })).status, 403);
      const ok = await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${tokens.reader!.token}` } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /shardline_records_ingested_total/);
      assert.equal((await fetch(`${origin}/healthz`)).status, 200);
      assert.equal((await fetch(`${origin}/`)).status, 200);
    });

    it('checks the graphql-ws connection_init token before any subscription, and closes a revoked token\'s connections', async () => {
      const anonymous = connect(url);
      await waitFor(() => anonymous.state().closed !== undefined, 'anonymous connection closed', 5000);
      assert.equal(anonymous.state().closed!.code, 4401);
      assert.equal(anonymous.state().acked, false);
      await anonymous.client.dispose();

      // A name of digits alone would be taken for an id by revokeApiToken.
      await assert.rejects(t.engine.tokens.create({ name: '7', scopes: 'read' }, 'test'), { code: 'INVALID_ARGUMENT', message: /other than a digit/ });
      const temporary = await t.engine.tokens.create({ name: 'temporary', scopes: 'read' }, 'test');
      const reader = connect(url, `Bearer ${temporary.token}`);
      await waitFor(() => reader.state().acked, 'reader acknowledged', 5000);
      const received: unknown[] = [];
      const ended = new Promise<void>((resolve) => {
        reader.client.subscribe({ query: 'subscription { records(streamName: "orders") { partitionKey } }' },
          { next: (value) => received.push(value), error: () => resolve(), complete: () => resolve() });
      });
      await waitFor(() => t.engine.events.listenerCount('records') > 0, 'subscription started', 5000);
      const revoked = await gql(url, `mutation { revokeApiToken(id: "temporary") { revokedAt } }`, tokens.admin!.token);
      assert.ok(revoked.data.revokeApiToken.revokedAt);
      await waitFor(() => reader.state().closed !== undefined, 'revoked connection closed', 5000);
      assert.equal(reader.state().closed!.code, 4403);
      await bounded(ended, 'the revoked subscription ends');
      await reader.client.dispose();
      assert.equal(codeOf(await gql(url, '{ streams { name } }', temporary.token)), 'UNAUTHENTICATED');
    });

    it('serves subscriptions over graphql-ws only: one sent over HTTP is refused and ends', async () => {
      for (const accept of ['text/event-stream', 'application/json']) {
        const response = await fetch(url, {
          method: 'POST', headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${tokens.reader!.token}` },
          body: JSON.stringify({ query: 'subscription { records(streamName: "orders") { sequenceNumber } }' }),
        });
        const text = await bounded(response.text(), `the ${accept} answer ends`, 5000);
        assert.match(text, /INVALID_ARGUMENT/, accept);
        assert.match(text, /graphql-ws/, accept);
      }
    });

    it('holds a graphql-ws message to the body limit, before authentication', async () => {
      const socket = new WebSocket(url.replace('http', 'ws'), 'graphql-transport-ws');
      await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer nope', pad: 'x'.repeat(100 * 1024) } }));
      assert.equal(await bounded(closed, 'the socket closed', 5000), 1009, 'message too big');
    });

    it('caps the operations open on one graphql-ws connection', async () => {
      const conn = connect(url, `Bearer ${tokens.reader!.token}`);
      await waitFor(() => conn.state().acked, 'acknowledged', 5000);
      const errors: unknown[] = [];
      const subscribe = () => conn.client.subscribe({ query: 'subscription { alerts { id } }' }, { next: () => {}, error: (e) => errors.push(e), complete: () => {} });
      const stops = [subscribe(), subscribe(), subscribe()];
      await waitFor(() => errors.length === 1, 'third subscription refused', 5000);
      const [error] = errors as { extensions?: { code?: string }; message: string }[][];
      assert.equal(error![0]!.extensions?.code, 'LIMIT_EXCEEDED');
      assert.match(error![0]!.message, /limit is 2 per connection/);
      for (const stop of stops) stop();
      await conn.client.dispose();
    });

    it('limits query depth, aliases and body size with LIMIT_EXCEEDED, and keeps serving', async () => {
      const deep = await gql(url, '{ streams { eventSourceMappings { invocations { edges { node { id } } } } } }', tokens.reader!.token);
      assert.equal(codeOf(deep), 'LIMIT_EXCEEDED', JSON.stringify(deep.errors ?? deep.data));
      assert.match(deep.errors![0]!.message, /depth limit of 4/);
      const aliases = await gql(url, `{ ${Array.from({ length: 8 }, (_, i) => `a${i}: streams { name }`).join(' ')} }`, tokens.reader!.token);
      assert.equal(codeOf(aliases), 'LIMIT_EXCEEDED');
      // The cost counts a page size given as a variable as it counts one written in the query.
      const costly = '{ auditLog(first: 2147483647) { id action } }';
      assert.equal(codeOf(await gql(url, costly, tokens.reader!.token)), 'LIMIT_EXCEEDED');
      const viaVariable = await gql(url, 'query($n: Int = 5) { auditLog(first: $n) { id action } }', tokens.reader!.token, { n: 2147483647 });
      assert.equal(codeOf(viaVariable), 'LIMIT_EXCEEDED', JSON.stringify(viaVariable.errors ?? viaVariable.data).slice(0, 200));
      assert.match(viaVariable.errors![0]!.message, /SHARDLINE_MAX_QUERY_COST/);
      const cheap = await gql(url, 'query($n: Int = 5) { auditLog(first: $n) { id action } }', tokens.reader!.token, { n: 3 });
      assert.equal(cheap.errors, undefined);
      const viaDefault = await gql(url, 'query($n: Int = 2147483647) { auditLog(first: $n) { id action } }', tokens.reader!.token);
      assert.equal(codeOf(viaDefault), 'LIMIT_EXCEEDED', 'a default is a value too');
      // Introspection (outside depth and cost) once per request.
      const twice = await gql(url, '{ a: __schema { types { name } } ...again } fragment again on Query { b: __schema { types { name } } }', tokens.reader!.token);
      assert.equal(codeOf(twice), 'LIMIT_EXCEEDED');
      assert.equal((await gql(url, '{ __schema { types { name } } }', tokens.reader!.token)).errors, undefined);
      const twoOperations = await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.reader!.token}` },
        body: JSON.stringify({ query: 'query A { __schema { queryType { name } } } query B { __schema { types { name } } }', operationName: 'A' }),
      });
      assert.equal(((await twoOperations.json()) as GqlResponse).errors, undefined, 'one __schema in the operation that runs');
      const big = await gql(url, `mutation { putRecords(streamName: "orders", records: [{data: "${'A'.repeat(100_000)}", partitionKey: "k"}]) { failedRecordCount } }`, tokens.producer!.token);
      assert.equal(big.status, 413);
      assert.equal(codeOf(big), 'LIMIT_EXCEEDED');
      assert.match(big.errors![0]!.message, /65536 bytes/);
      assert.equal((await gql(url, '{ streams { name } }', tokens.reader!.token)).errors, undefined);
    });

    it('verifies SigV4 on the Kinesis and DynamoDB Streams APIs with the token\'s key pair, and checks scopes', async () => {
      const producer = kinesis(url, tokens.producer!.accessKeyId, tokens.producer!.secretAccessKey);
      const listed = await producer.send(new ListStreamsCommand({}));
      assert.ok(listed.StreamNames!.includes('orders'));
      const put = await producer.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k', Data: Buffer.from('signed') }));
      assert.ok(put.SequenceNumber);

      const reader = kinesis(url, tokens.reader!.accessKeyId, tokens.reader!.secretAccessKey);
      await assert.rejects(reader.send(new PutRecordCommand({ StreamName: 'orders', PartitionKey: 'k', Data: Buffer.from('x') })),
        (e: Error) => e.name === 'AccessDeniedException' && /kinesis:PutRecord/.test(e.message));
      const wrongSecret = kinesis(url, tokens.reader!.accessKeyId, 'not-the-secret');
      await assert.rejects(wrongSecret.send(new ListStreamsCommand({})), (e: Error) => e.name === 'InvalidSignatureException');
      const unknownKey = kinesis(url, 'SLAKNOSUCHKEY0000000', 'x');
      await assert.rejects(unknownKey.send(new ListStreamsCommand({})), (e: Error) => e.name === 'UnrecognizedClientException');
      const unsigned = await fetch(new URL(url).origin, {
        method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'Kinesis_20131202.ListStreams' }, body: '{}',
      });
      assert.equal(unsigned.status, 403);
      assert.equal(((await unsigned.json()) as { __type: string }).__type, 'MissingAuthenticationTokenException');

      const ddb = new DynamoDBStreamsClient({
        endpoint: new URL(url).origin, region: REGION, maxAttempts: 1,
        credentials: { accessKeyId: tokens.reader!.accessKeyId, secretAccessKey: tokens.reader!.secretAccessKey },
      });
      assert.ok(Array.isArray((await ddb.send(new ListDdbStreamsCommand({}))).Streams));
      // The default Kinesis client speaks h2c: SigV4 holds over HTTP/2 too.
      const h2 = new KinesisClient({
        endpoint: new URL(url).origin, region: REGION, maxAttempts: 1,
        credentials: { accessKeyId: tokens.reader!.accessKeyId, secretAccessKey: tokens.reader!.secretAccessKey },
      });
      assert.ok((await h2.send(new ListStreamsCommand({}))).StreamNames!.includes('orders'));
      h2.destroy();
    });

    it('refuses an AWS call its headers condemn before reading its body, over HTTP/1.1 and h2c', async () => {
      const origin = new URL(url).origin;
      const now = Date.now();
      // Within the 64 KiB limit, so only an answer that does not wait for the body can come.
      const declared = 60_000;
      for (const protocol of ['http/1.1', 'h2c'] as const) {
        const answer = (headers: Record<string, string>, target?: string) => answerBeforeBody(origin, protocol, headers, declared, target);
        assert.deepEqual(await answer({}), { status: 403, type: 'MissingAuthenticationTokenException' }, protocol);
        assert.deepEqual(await answer({ authorization: 'AWS4-HMAC-SHA256 Credential=x' }), { status: 403, type: 'IncompleteSignatureException' }, protocol);
        assert.deepEqual(await answer(claimedSignature('SLAKNOSUCHKEY0000000', now)), { status: 400, type: 'UnrecognizedClientException' }, protocol);
        assert.deepEqual(await answer(claimedSignature(tokens.reader!.accessKeyId, now - 3_600_000)), { status: 403, type: 'InvalidSignatureException' }, protocol);
      }
      // The body is still what the signature is checked against once the headers pass.
      const forged = await fetch(origin, {
        method: 'POST', body: '{}',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'Kinesis_20131202.ListStreams', ...claimedSignature(tokens.reader!.accessKeyId, now) },
      });
      assert.equal(forged.status, 403);
      assert.equal(((await forged.json()) as { __type: string }).__type, 'InvalidSignatureException');
      // A forged signature learns nothing of the token's scopes: authenticated before authorised, as AWS.
      const forgedWrite = await fetch(origin, {
        method: 'POST', body: '{"StreamName":"orders","PartitionKey":"k","Data":"eA=="}',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'Kinesis_20131202.PutRecord', ...claimedSignature(tokens.reader!.accessKeyId, now) },
      });
      const refusal = (await forgedWrite.json()) as { __type: string; message: string };
      assert.equal(refusal.__type, 'InvalidSignatureException');
      assert.doesNotMatch(refusal.message, /reader|scope/);
    });

    it('refuses a SigV4 signature that does not cover the host or the X-Amz-Target', async () => {
      const reader = () => kinesis(url, tokens.reader!.accessKeyId, tokens.reader!.secretAccessKey);
      // Signed correctly otherwise: only the headers the signature leaves out are wrong.
      await assert.rejects(signingWithout(reader(), 'host').send(new ListStreamsCommand({})),
        (e: Error) => e.name === 'InvalidSignatureException' && /'Host' or ':authority' must be a 'SignedHeader'/.test(e.message));
      await assert.rejects(signingWithout(reader(), 'x-amz-target').send(new ListStreamsCommand({})),
        (e: Error) => e.name === 'InvalidSignatureException' && /'X-Amz-Target' must be a 'SignedHeader'/.test(e.message));
      assert.ok((await reader().send(new ListStreamsCommand({}))).StreamNames!.includes('orders'));
      // Decided from the headers, before any body.
      const unsigned = claimedSignature(tokens.reader!.accessKeyId, Date.now(), 'content-type;x-amz-date;x-amz-target');
      assert.deepEqual(await answerBeforeBody(new URL(url).origin, 'h2c', unsigned, 60_000), { status: 403, type: 'InvalidSignatureException' });
    });

    it('rate-limits writes per token with LIMIT_EXCEEDED', async () => {
      const limited = await openTestEngine(backend, { writeRequestsPerSecond: 1 });
      const limitedApp = buildApp({ engine: limited.engine, logError: () => {} });
      const limitedUrl = await limitedApp.start(0, '127.0.0.1');
      try {
        const admin = await limited.engine.tokens.create({ name: 'a', scopes: 'admin' }, 'test');
        await gql(limitedUrl, 'mutation { createStream(input: {name: "r", shardCount: 1}) { name } }', admin.token);
        const put = `mutation { putRecords(streamName: "r", records: [{data: "eA==", partitionKey: "k"}]) { failedRecordCount } }`;
        const results = [];
        for (let i = 0; i < 4; i += 1) results.push(await gql(limitedUrl, put, admin.token));
        assert.deepEqual(results.map(codeOf), [undefined, undefined, 'LIMIT_EXCEEDED', 'LIMIT_EXCEEDED']);
        assert.match(results[2]!.errors![0]!.message, /rate limit of 1 write requests per second/);
        const count = await gql(limitedUrl, '{ stream(name: "r") { shards { recordCount } } }', admin.token);
        assert.equal(count.data.stream.shards[0].recordCount, 2);
      } finally {
        await limitedApp.stop();
        await limited.close();
      }
    });
  });
}

describe('SHARDLINE_ADMIN_TOKEN', () => {
  it('turns authentication on without any stored token; its key pair signs AWS calls', async () => {
    const adminToken = 'bootstrap-admin-token-0123456789abcdef';
    const t = await openTestEngine(backends[0]!, { adminToken });
    const app = buildApp({ engine: t.engine, logError: () => {} });
    const url = await app.start(0, '127.0.0.1');
    try {
      assert.equal(codeOf(await gql(url, '{ streams { name } }')), 'UNAUTHENTICATED');
      const created = await gql(url, 'mutation { createStream(input: {name: "boot", shardCount: 1}) { name } }', adminToken);
      assert.equal(created.errors, undefined);
      const log = await gql(url, '{ auditLog(first: 1) { actor } }', adminToken);
      assert.equal(log.data.auditLog[0].actor, 'admin');
      const client = kinesis(url, ADMIN_ACCESS_KEY_ID, adminToken);
      assert.deepEqual((await client.send(new ListStreamsCommand({}))).StreamNames, ['boot']);
    } finally {
      await app.stop();
      await t.close();
    }
  });
});

describe('shardline serve and shardline token', () => {
  const root = new URL('..', import.meta.url).pathname;
  const bin = join(root, 'bin', 'shardline');

  it('refuses to listen on a public address in local mode, and creates a token from the command line', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shardline-auth-'));
    const env = { ...process.env, DATABASE_URL: '', SHARDLINE_DATA_DIR: dataDir, PORT: '0' };
    try {
      const refused = await run(bin, ['serve'], { env: { ...env, HOST: '0.0.0.0' }, timeout: 60_000 }).then(() => undefined, (e) => e as { code: number; stderr: string });
      assert.ok(refused, 'serve must exit with an error');
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0 without authentication/);

      const created = await run(bin, ['token', 'create', '--name', 'ci', '--scopes', 'read,operate', '--json'], { env, timeout: 60_000 });
      const token = JSON.parse(created.stdout) as CreatedToken;
      assert.deepEqual(token.scopes, ['read', 'operate']);
      assert.match(token.token, /^sl_/);
      const listed = await run(bin, ['token', 'list'], { env, timeout: 60_000 });
      assert.match(listed.stdout, /\tci\tread,operate\t/);
      assert.doesNotMatch(listed.stdout, new RegExp(token.token));
      const bad = await run(bin, ['token', 'create', '--name', 'x', '--scopes', 'root'], { env, timeout: 60_000 }).then(() => undefined, (e) => e as { code: number; stderr: string });
      assert.equal(bad?.code, 2);
      assert.match(bad!.stderr, /"root" is not a scope/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
