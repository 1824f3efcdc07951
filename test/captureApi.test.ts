/**
 * Capture through GraphQL (startCapture, stopCapture, captureSources, captureSource with its
 * lag) and through `shardline capture` run as a child process, against a real server and
 * kinesalite on loopback ports, on each backend.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CreateStreamCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, backends, openTestEngine, waitFor } from './harness.ts';
import { type Kinesalite, activeStream, startKinesalite } from './kinesaliteServer.ts';

process.env.AWS_ACCESS_KEY_ID ??= 'test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ROOT = new URL('..', import.meta.url).pathname;

function cli(url: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/shardline.ts', ...args], {
    cwd: ROOT, env: { ...process.env, SHARDLINE_URL: url, SHARDLINE_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const SOURCE_FIELDS = `id kind endpoint sourceStream streamName state lastError recordsCaptured maxMillisBehindLatest owner
  stream { name status shards { shardId } }
  lag { sourceShardId shardId state lastSequenceNumber millisBehindLatest recordsCaptured }`;

for (const backend of backends) {
  describe(`capture through GraphQL and the CLI (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    let k: Kinesalite;

    const gql = async (query: string, variables?: Record<string, unknown>) => {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
      return (await response.json()) as { data?: any; errors?: { message: string; extensions: { code: string } }[] };
    };
    const ok = async (query: string, variables?: Record<string, unknown>) => {
      const body = await gql(query, variables);
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data;
    };

    async function sourceWith(name: string, shards: number, records: number) {
      await k.client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
      await activeStream(k.client, name);
      if (records > 0) {
        await k.client.send(new PutRecordsCommand({
          StreamName: name, Records: Array.from({ length: records }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(`v${i}`) })),
        }));
      }
    }

    before(async () => {
      k = await startKinesalite();
      t = await openTestEngine(backend, {
        delivery: { heartbeatMs: 100, leaseTtlMs: 2000, idlePollMs: 50 },
        capture: { idlePollMs: 25, discoveryMs: 200, minBackoffMs: 50, maxBackoffMs: 400 },
        onError: () => {},
      });
      await t.engine.start();
      app = buildApp({ engine: t.engine, logError: (e) => console.error('server error:', e) });
      url = await app.start(0, '127.0.0.1');
    });
    after(async () => {
      await app.stop();
      await t.close();
      await k.close();
    });

    it('startCapture, captureSource with its lag per shard, captureSources and stopCapture', async () => {
      await sourceWith('gql-src', 2, 50);
      const { startCapture: started } = await ok(`mutation($input: StartCaptureInput!) { startCapture(input: $input) { ${SOURCE_FIELDS} } }`,
        { input: { endpoint: k.endpoint, stream: 'gql-src', into: 'gql-local' } });
      assert.equal(started.kind, 'KINESIS');
      assert.equal(started.streamName, 'gql-local');
      assert.equal(started.state, 'STARTING');
      const source = await waitFor(async () => {
        const { captureSource } = await ok(`query($id: ID!) { captureSource(id: $id) { ${SOURCE_FIELDS} } }`, { id: started.id });
        return captureSource.recordsCaptured === 50 && captureSource.state === 'RUNNING' ? captureSource : undefined;
      }, 'the 50 records captured', 15_000);
      assert.equal(source.stream.status, 'ACTIVE');
      assert.deepEqual(source.stream.shards.map((s: { shardId: string }) => s.shardId), ['shardId-000000000000', 'shardId-000000000001']);
      assert.equal(source.lag.length, 2);
      assert.equal(source.lag.reduce((sum: number, l: { recordsCaptured: number }) => sum + l.recordsCaptured, 0), 50);
      for (const l of source.lag) {
        assert.equal(l.shardId, l.sourceShardId);
        assert.equal(l.state, 'READING');
        assert.equal(typeof l.millisBehindLatest, 'number');
        assert.match(l.lastSequenceNumber, /^\d{50,}$/);
      }
      assert.equal(typeof source.maxMillisBehindLatest, 'number');
      assert.ok(source.owner);
      // The captured records read back through GraphQL with their origin.
      const { stream } = await ok(`{ stream(name: "gql-local") { records(first: 100) { edges { node { shardId partitionKey data origin } } } } }`);
      assert.equal(stream.records.edges.length, 50);
      const lastByShard = new Map<string, string>();
      for (const { node } of stream.records.edges) lastByShard.set(node.shardId, node.origin.sequenceNumber);
      for (const l of source.lag) assert.equal(lastByShard.get(l.shardId), l.lastSequenceNumber);

      const { captureSources } = await ok('{ captureSources { id streamName } }');
      assert.ok(captureSources.some((c: { id: string }) => c.id === started.id));
      const { stopCapture } = await ok('mutation($id: ID!) { stopCapture(id: $id) { id state owner } }', { id: started.id });
      assert.deepEqual(stopCapture, { id: started.id, state: 'STOPPED', owner: null });
    });

    it('a source error shows as state RETRYING with lastError', async () => {
      const { startCapture } = await ok(`mutation { startCapture(input: {endpoint: "${k.endpoint}", stream: "gql-missing"}) { id } }`);
      const failing = await waitFor(async () => {
        const { captureSource } = await ok(`query($id: ID!) { captureSource(id: $id) { state lastError } }`, { id: startCapture.id });
        return captureSource.state === 'RETRYING' ? captureSource : undefined;
      }, 'RETRYING', 10_000);
      assert.match(failing.lastError, /ResourceNotFoundException/);
      await ok('mutation($id: ID!) { stopCapture(id: $id) { id } }', { id: startCapture.id });
    });

    it('bad input is an error with a code naming the field, and writes nothing', async () => {
      const before = (await ok('{ captureSources { id } }')).captureSources.length;
      const bad = await gql(`mutation { startCapture(input: {stream: "x", endpoint: "nope"}) { id } }`);
      assert.equal(bad.errors?.[0]?.extensions.code, 'INVALID_ARGUMENT');
      assert.match(bad.errors![0]!.message, /endpoint must be/);
      const late = await gql(`mutation { startCapture(input: {stream: "x", from: AT_TIMESTAMP, timestamp: "2999-01-01T00:00:00Z"}) { id } }`);
      assert.equal(late.errors?.[0]?.extensions.code, 'INVALID_ARGUMENT');
      assert.match(late.errors![0]!.message, /timestamp must not be in the future/);
      const missing = await gql('mutation { stopCapture(id: "nope") { id } }');
      assert.equal(missing.errors?.[0]?.extensions.code, 'CAPTURE_NOT_FOUND');
      assert.equal((await ok('{ captureSource(id: "nope") { id } }')).captureSource, null);
      assert.equal((await ok('{ captureSources { id } }')).captureSources.length, before);
      assert.equal((await ok('{ stream(name: "x") { name } }')).stream, null);
    });

    it('shardline capture starts, lists and stops a capture', async () => {
      await sourceWith('cli-src', 1, 20);
      const started = await cli(url, ['capture', '--endpoint', k.endpoint, '--stream', 'cli-src', '--into', 'cli-local', '--json']);
      assert.equal(started.code, 0, started.stderr);
      const source = JSON.parse(started.stdout);
      assert.equal(source.streamName, 'cli-local');
      await waitFor(async () => (await t.engine.captures.get(source.id)).recordsCaptured === 20, 'the CLI capture stored 20 records', 15_000);
      const list = await cli(url, ['capture', '--list']);
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, new RegExp(`capture ${source.id}: KINESIS cli-src at ${k.endpoint.replaceAll('.', '\\.')} → cli-local\\s+state RUNNING\\s+records 20`));
      assert.match(list.stdout, /SOURCE SHARD\s+LOCAL SHARD\s+STATE\s+RECORDS/);
      assert.match(list.stdout, /shardId-000000000000\s+shardId-000000000000\s+READING\s+20/);
      const stopped = await cli(url, ['capture', '--stop', source.id, '--json']);
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal(JSON.parse(stopped.stdout).state, 'STOPPED');
      // Again into the same local stream: resumed, not duplicated.
      const resumed = await cli(url, ['capture', '--endpoint', k.endpoint, '--stream', 'cli-src', '--into', 'cli-local', '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(JSON.parse(resumed.stdout).id, source.id);
      await cli(url, ['capture', '--stop', source.id]);
      assert.equal((await t.engine.captures.get(source.id)).recordsCaptured, 20);

      const usage = await cli(url, ['capture', '--stream', 's', '--from', 'YESTERDAY']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--from must be TRIM_HORIZON \| LATEST \| AT_TIMESTAMP/);
      const graphqlError = await cli(url, ['capture', '--stop', 'nope']);
      assert.equal(graphqlError.code, 5);
      assert.match(graphqlError.stderr, /CAPTURE_NOT_FOUND/);
    });
  });
}
