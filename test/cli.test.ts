/**
 * The scripting CLI end to end: a real server (buildApp over a started engine) in this process,
 * and `shardline <command>` run as a child process against it over GraphQL, as a script would.
 * Replay, seek and redrive are probed at run time: while the server answers them with
 * NOT_IMPLEMENTED their tests are skipped (and the CLI must exit 5 naming that code).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { type App, buildApp } from '../api/app.ts';
import { recordLine } from '../cli/commands/tail.ts';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const NOT_BUILT = 'server side not built yet';

interface CliResult { code: number | null; stdout: string; stderr: string }
interface Running { child: ChildProcess; stdout: () => string; stderr: () => string; result: Promise<CliResult> }

/** Starts `shardline ...args` (cli/shardline.ts under tsx) with stdin, stdout and stderr as pipes (not a TTY). */
function startCli(url: string, args: string[], stdin?: string, env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/shardline.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, SHARDLINE_URL: url, SHARDLINE_TOKEN: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  child.stdin!.end(stdin ?? '');
  const result = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, stdout: () => stdout, stderr: () => stderr, result };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const decode = (data: string) => Buffer.from(data, 'base64').toString('utf8');

/** What the module function `collect` received, per stream name (it runs in this process). */
const collected = () => ((globalThis as { __shardlineCliCollected?: Record<string, string[]> }).__shardlineCliCollected ??= {});

describe('shardline tail lines', () => {
  it('label data by its encoding, and give a DYNAMODB record its images instead of its data', () => {
    const base = { eventID: 'e', shardId: 'shardId-000000000000', sequenceNumber: '1', partitionKey: 'k', approximateArrivalTimestamp: '2026-11-24T00:00:00.000Z' };
    const kinesis = JSON.parse(recordLine({ ...base, data: b64('hi'), eventName: null, keys: null, newImage: null, oldImage: null }));
    assert.deepEqual([kinesis.data, kinesis.dataEncoding], ['hi', 'utf8']);
    const ddb = JSON.parse(recordLine({
      ...base, data: '{"Keys":{"id":{"S":"a"}}}', eventName: 'INSERT', keys: { id: { S: 'a' } }, newImage: { id: { S: 'a' } }, oldImage: null,
    }));
    assert.equal('data' in ddb || 'dataEncoding' in ddb, false, 'no JSON text mislabelled as base64');
    assert.deepEqual([ddb.eventName, ddb.newImage], ['INSERT', { id: { S: 'a' } }]);
  });
});

describe('shardline worker', () => {
  it('refuses SHARDLINE_DELIVERY=off, which would leave it nothing to do', async () => {
    const { code, stderr } = await startCli('', ['worker'], undefined, { SHARDLINE_DELIVERY: 'off', DATABASE_URL: 'postgres://127.0.0.1:1/none' }).result;
    assert.equal(code, 1);
    assert.match(stderr, /shardline worker: SHARDLINE_DELIVERY=off leaves a worker nothing to do/);
  });
});

describe('shardline CLI credentials', () => {
  it('sends --token as a Bearer Authorization header and SHARDLINE_TOKEN in the graphql-ws connection_init payload', async () => {
    const seen: { header?: string; init?: unknown } = {};
    const server = createHttpServer((request, response) => {
      seen.header = request.headers.authorization;
      request.resume();
      request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"eventSourceMappings":[]}}'));
    });
    const wss = new WebSocketServer({ server, path: '/graphql', handleProtocols: () => 'graphql-transport-ws' });
    wss.on('connection', (socket) => socket.on('message', (raw) => {
      const message = JSON.parse(String(raw));
      if (message.type === 'connection_init') {
        seen.init = message.payload;
        socket.send(JSON.stringify({ type: 'connection_ack' }));
      } else if (message.type === 'subscribe') {
        const record = { shardId: 'shardId-000000000000', sequenceNumber: '1', partitionKey: 'k', data: b64('hi'), approximateArrivalTimestamp: '2026-01-01T00:00:00.000Z' };
        socket.send(JSON.stringify({ id: message.id, type: 'next', payload: { data: { records: record } } }));
      }
    }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    try {
      const lag = await startCli(url, ['lag', '--token', 's3cret']).result;
      assert.equal(lag.code, 0, lag.stderr);
      assert.equal(seen.header, 'Bearer s3cret');
      const tail = await startCli(url, ['tail', '--stream', 's', '--count', '1'], undefined, { SHARDLINE_TOKEN: 'envtoken' }).result;
      assert.equal(tail.code, 0, tail.stderr);
      assert.deepEqual(seen.init, { authorization: 'Bearer envtoken' });
      assert.equal(JSON.parse(tail.stdout).data, 'hi');
    } finally {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

for (const backend of backends) {
  describe(`shardline CLI (${backend.name})`, () => {
    let t: TestEngine;
    let app: App;
    let url: string;
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-cli-fn-'));
    const built = { replay: false, seek: false, redrive: false };

    const gql = async (query: string, variables?: Record<string, unknown>) => {
      const body = (await (await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }),
      })).json()) as { data: any; errors?: { message: string; extensions: { code: string } }[] };
      return body;
    };
    const ok = async (query: string, variables?: Record<string, unknown>) => {
      const body = await gql(query, variables);
      assert.equal(body.errors, undefined, `${query} → ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    const cli = (args: string[], stdin?: string) => startCli(url, args, stdin).result;
    const readAll = async (stream: string) => {
      const records: { shardId: string; sequenceNumber: string; partitionKey: string; data: string }[] = [];
      let after: string | null = null;
      for (;;) {
        const data = await ok(`query($s: String!, $after: String) { stream(name: $s) { records(first: 1000, after: $after) {
          edges { node { shardId sequenceNumber partitionKey data } } pageInfo { hasNextPage endCursor } } } }`, { s: stream, after });
        records.push(...data.stream.records.edges.map((e: any) => e.node));
        if (!data.stream.records.pageInfo.hasNextPage) return records;
        after = data.stream.records.pageInfo.endCursor;
      }
    };
    const createMapping = async (stream: string, fn: string, extra = '') =>
      (await ok(`mutation { createEventSourceMapping(input: {streamName: "${stream}", functionName: "${fn}", startingPosition: TRIM_HORIZON${extra}}) { id } }`))
        .createEventSourceMapping.id as string;

    before(async () => {
      delete (globalThis as { __shardlineCliCollected?: unknown }).__shardlineCliCollected;
      writeFileSync(join(functionsDir, 'collect.mjs'), `export const handler = async (event) => {
        const all = (globalThis.__shardlineCliCollected ??= {});
        for (const r of event.Records) (all[r.eventSourceARN.split('/').pop()] ??= []).push(Buffer.from(r.kinesis.data, 'base64').toString());
        return null;
      };`);
      writeFileSync(join(functionsDir, 'poison.mjs'), 'export const handler = async () => { throw new Error("poison"); };');
      t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 } });
      await t.engine.start();
      app = buildApp({ engine: t.engine, logError: (e) => console.error('server error:', e) });
      url = await app.start(0, '127.0.0.1');
      await ok('mutation { createFunction(input: {name: "collect", module: "collect.mjs#handler"}) { name } }');
      await ok('mutation { createFunction(input: {name: "poison", module: "poison.mjs#handler"}) { name } }');
      // Probes that change nothing: a missing stream or mapping answers NOT_FOUND once a feature is built.
      const builtAnswer = async (query: string) => (await gql(query)).errors?.[0]?.extensions.code !== 'NOT_IMPLEMENTED';
      const replayQuery = await builtAnswer('{ replay(id: "cli-probe") { id } }');
      built.replay = replayQuery && await builtAnswer('mutation { startReplay(input: {streamName: "cli-probe", from: {type: TRIM_HORIZON}, dryRun: true}) { id } }');
      built.seek = await builtAnswer('mutation { seekEventSourceMapping(id: "cli-probe", position: {type: TRIM_HORIZON}) { id } }');
      built.redrive = replayQuery && await builtAnswer('mutation { redriveFailures(mappingId: "cli-probe") { id } }');
    });
    after(async () => {
      await app.stop();
      await t.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('put sends stdin lines in calls of at most 500 records, and they read back through GraphQL', async () => {
      await ok('mutation { createStream(input: {name: "put", shardCount: 2}) { name } }');
      const lines = [
        JSON.stringify({ partitionKey: 'text', data: 'héllo' }),
        JSON.stringify({ partitionKey: 'object', data: { id: 1, tags: ['a'] } }),
        '',
        JSON.stringify({ partitionKey: 'routed', data: 'to shard 0', explicitHashKey: '0' }),
        JSON.stringify({ partitionKey: 'binary', data: Buffer.from([0xff, 0x00]).toString('base64'), dataEncoding: 'base64' }),
        ...Array.from({ length: 1100 }, (_, i) => JSON.stringify({ partitionKey: `k${i % 7}`, data: `r${i}` })),
      ];
      const run = await cli(['put', '--stream', 'put', '--json'], `${lines.join('\n')}\n`);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '', 'no progress on stderr when it is not a terminal');
      assert.deepEqual(JSON.parse(run.stdout), { streamName: 'put', records: 1104, written: 1104, failed: 0, failures: [] });

      const records = await readAll('put');
      assert.equal(records.length, 1104);
      const byKey = new Map(records.map((r) => [r.partitionKey, r]));
      assert.equal(decode(byKey.get('text')!.data), 'héllo');
      assert.deepEqual(JSON.parse(decode(byKey.get('object')!.data)), { id: 1, tags: ['a'] });
      assert.equal(byKey.get('routed')!.shardId, 'shardId-000000000000');
      assert.deepEqual([...Buffer.from(byKey.get('binary')!.data, 'base64')], [0xff, 0x00]);
      const bulk = records.filter((r) => /^k\d$/.test(r.partitionKey)).map((r) => decode(r.data));
      assert.deepEqual(new Set(bulk), new Set(Array.from({ length: 1100 }, (_, i) => `r${i}`)));

      const keyed = await cli(['put', '--stream', 'put', '--partition-key-field', 'customer.id'],
        '{"customer":{"id":7},"total":3}\n{"customer":{"id":"c9"}}\n');
      assert.equal(keyed.code, 0, keyed.stderr);
      assert.match(keyed.stdout, /^put 2 records to put: 2 written, 0 failed$/m);
      const again = await readAll('put');
      assert.deepEqual(JSON.parse(decode(again.find((r) => r.partitionKey === '7')!.data)), { customer: { id: 7 }, total: 3 });
      assert.ok(again.some((r) => r.partitionKey === 'c9'));

      // A call the server refuses (a NUL in line 502's key) names that line and still sums up what went before.
      const refusedLines = Array.from({ length: 503 }, (_, i) => JSON.stringify({ partitionKey: i === 501 ? 'bad\u0000key' : `q${i}`, data: `q${i}` }));
      const refused = await cli(['put', '--stream', 'put'], `${refusedLines.join('\n')}\n`);
      assert.equal(refused.code, 5, refused.stderr);
      assert.match(refused.stderr, /stdin line 502 \(records\[1\]\)\.partitionKey/);
      assert.match(refused.stderr, /500 records before it were sent; the refused call wrote nothing/);
      assert.match(refused.stdout, /^put 500 records to put: 500 written, 0 failed$/m);
    });

    it('tail --count prints the records put meanwhile, one JSON line each, and stops', async () => {
      await ok('mutation { createStream(input: {name: "tail", shardCount: 1}) { name } }');
      const tail = startCli(url, ['tail', '--stream', 'tail', '--count', '3']);
      // The subscription starts at LATEST once the server has set it up: keep writing until tail has its 3.
      const written: { text?: string; bytes?: number[] }[] = [];
      let exited = false;
      void tail.result.then(() => { exited = true; });
      for (let i = 0; !exited; i++) {
        assert.ok(i < 300, `tail never finished: ${tail.stderr()}`);
        const binary = i % 2 === 1;
        const data = binary ? Buffer.from([0xc3, 0x28, i]).toString('base64') : b64(`t${i}`);
        written.push(binary ? { bytes: [0xc3, 0x28, i] } : { text: `t${i}` });
        await t.engine.putRecords('tail', [{ partitionKey: `p${i}`, data }]);
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      const run = await tail.result;
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line));
      assert.equal(lines.length, 3);
      const first = Number(lines[0].partitionKey.slice(1));
      lines.forEach((line, n) => {
        const i = first + n;
        assert.equal(line.partitionKey, `p${i}`, 'consecutive records, in order');
        assert.equal(line.shardId, 'shardId-000000000000');
        assert.match(line.sequenceNumber, /^\d{21}$/);
        assert.match(line.approximateArrivalTimestamp, /Z$/);
        if (written[i]!.text) assert.deepEqual([line.data, line.dataEncoding], [written[i]!.text, 'utf8']);
        else assert.deepEqual([[...Buffer.from(line.data, 'base64')], line.dataEncoding], [written[i]!.bytes, 'base64']);
      });
    });

    it('lag shows a table per mapping and the same figures with --json', async () => {
      await ok('mutation { createStream(input: {name: "lag", shardCount: 2}) { name } }');
      const id = await createMapping('lag', 'collect');
      await ok(`mutation { putRecords(streamName: "lag", records: [{partitionKey: "a", data: "${b64('1')}"}, {partitionKey: "b", data: "${b64('2')}"}]) { failedRecordCount } }`);
      await waitFor(async () => (await ok(`{ eventSourceMapping(id: "${id}") { recordsBehind lag { lastInvokedAt } } }`))
        .eventSourceMapping.lag.some((l: any) => l.lastInvokedAt), 'delivered', 10_000);
      await waitFor(async () => (await ok(`{ eventSourceMapping(id: "${id}") { recordsBehind } }`)).eventSourceMapping.recordsBehind === 0, 'caught up', 10_000);

      const table = await cli(['lag', '--mapping', id]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, new RegExp(`^mapping ${id}  lag → collect  ENABLED$`, 'm'));
      assert.match(table.stdout, /^SHARD\s+LANE\s+STATE\s+OWNER\s+RECORDS BEHIND\s+ITERATOR AGE \(ms\)\s+CONSECUTIVE FAILURES$/m);
      assert.match(table.stdout, /^shardId-000000000000\s+0\s+[A-Z_]+\s+\S+\s+0\s+\d+\s+0$/m);
      assert.match(table.stdout, /^shardId-000000000001\s+0\s/m);
      assert.match(table.stdout, /^total\s+0\s+\d+\s+0$/m);

      const json = await cli(['lag', '--stream', 'lag', '--json']);
      assert.equal(json.code, 0, json.stderr);
      const { mappings } = JSON.parse(json.stdout);
      assert.equal(mappings.length, 1);
      assert.deepEqual({ ...mappings[0], maxIteratorAgeMs: undefined, shards: undefined }, {
        id, streamName: 'lag', functionName: 'collect', state: 'ENABLED', recordsBehind: 0, consecutiveFailures: 0,
        maxIteratorAgeMs: undefined, shards: undefined,
      });
      assert.deepEqual(mappings[0].shards.map((s: any) => [s.shardId, s.lane, s.recordsBehind, s.consecutiveFailures]),
        [['shardId-000000000000', 0, 0, 0], ['shardId-000000000001', 0, 0, 0]]);
      assert.equal(typeof mappings[0].shards[0].owner, 'string');

      const all = await cli(['lag', '--json']);
      assert.ok(JSON.parse(all.stdout).mappings.some((m: any) => m.id === id));
    });

    it('a bad argument exits 2 with a usage message naming the option', async () => {
      const cases: [string[], RegExp][] = [
        [['replay', '--stream', 's'], /--from is required/],
        [['replay', '--stream', 's', '--from', 'yesterday'], /--from must be TRIM_HORIZON \| an ISO time/],
        [['replay', '--stream', 's', '--from', '2026-11-01T10:00'], /--from .*give the time zone/],
        [['replay', '--stream', 's', '--from', 'TRIM_HORIZON', '--to', 'LATEST'], /--to must be an ISO time .* \| seq:/],
        [['lag', '--mapping', 'm', '--stream', 's'], /either --mapping or --stream/],
        [['replay', '--stream', 's', '--from', 'TRIM_HORIZON', '--rate', 'fast'], /--rate must be a whole number/],
        [['seek', '--mapping', 'm', '--to', 'seq:12x'], /--to must be .*decimal digits/],
        [['seek', '--to', 'LATEST'], /--mapping ID .* is required/],
        [['redrive', '--mapping', 'm', '--failures', '1,,2'], /--failures must be a comma-separated list/],
        [['lag', '--bogus'], /Unknown option '--bogus'/],
        [['lag', 'extra'], /unexpected argument "extra"/],
        [['tail', '--stream', 's', '--count', '0'], /--count must be a whole number from 1 to 2147483647/],
        [['replay', '--stream', 's', '--from', 'TRIM_HORIZON', '--function', 'f', '--rate', '3000000000'], /--rate must be a whole number from 1 to 2147483647/],
        [['capture', '--stream', 's', '--from', 'AT_TIMESTAMP', '--timestamp', '1'], /--timestamp must be an ISO time/],
        [['capture', '--stream', 's', '--from', 'AT_TIMESTAMP', '--timestamp', '2026-11-01T10:00:00'], /--timestamp .*give the time zone/],
        [['put'], /--stream S .* is required/],
        [['put', '--stream', 's', '--url', 'ftp://x'], /--url must be an http/],
      ];
      await Promise.all(cases.map(async ([args, message]) => {
        const run = await cli(args);
        assert.equal(run.code, 2, `${args.join(' ')} → ${run.code} ${run.stderr}`);
        assert.match(run.stderr, message, args.join(' '));
        assert.match(run.stderr, new RegExp(`usage: shardline ${args[0]}`), args.join(' '));
        assert.equal(run.stdout, '');
      }));
      const badLine = await cli(['put', '--stream', 'put'], '{"partitionKey":"a","data":"x"}\nnot json\n');
      assert.equal(badLine.code, 2);
      assert.match(badLine.stderr, /stdin line 2: not JSON/);
      const unknown = await cli(['frobnicate']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command "frobnicate"/);
      const help = await cli(['replay', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--dry-run/);
    });

    it('an unreachable server exits 4, over HTTP and over graphql-ws', async () => {
      const closed = `http://127.0.0.1:${await closedPort()}/graphql`;
      for (const args of [['lag'], ['tail', '--stream', 's'], ['put', '--stream', 's']]) {
        const run = await cli([...args, '--url', closed], '{"partitionKey":"a","data":"x"}\n');
        assert.equal(run.code, 4, `${args.join(' ')} → ${run.code} ${run.stderr}`);
        assert.match(run.stderr, new RegExp(`cannot reach shardline at ${closed}: .*ECONNREFUSED`), args.join(' '));
      }
      const wrongPath = await cli(['lag', '--url', url.replace('/graphql', '/elsewhere')]);
      assert.equal(wrongPath.code, 4);
      assert.match(wrongPath.stderr, /cannot reach shardline at .*HTTP 404/);
    });

    it('a GraphQL error exits 5 with its extensions.code and message', async () => {
      const put = await cli(['put', '--stream', 'missing'], '{"partitionKey":"a","data":"x"}\n');
      assert.equal(put.code, 5, put.stderr);
      assert.match(put.stderr, /^shardline put: STREAM_NOT_FOUND: Stream "missing" does not exist\.$/m);
      const tail = await cli(['tail', '--stream', 'missing', '--count', '1']);
      assert.equal(tail.code, 5, tail.stderr);
      assert.match(tail.stderr, /STREAM_NOT_FOUND/);
      const lag = await cli(['lag', '--mapping', 'no-such-mapping']);
      assert.equal(lag.code, 5, lag.stderr);
      assert.match(lag.stderr, /MAPPING_NOT_FOUND/);
    });

    it('a server side that is not built yet exits 5 naming NOT_IMPLEMENTED', async (c) => {
      const commands: [string[], boolean][] = [
        [['replay', '--stream', 'put', '--from', 'TRIM_HORIZON', '--function', 'collect', '--dry-run'], built.replay],
        [['seek', '--mapping', 'm', '--to', 'LATEST'], built.seek],
        [['redrive', '--mapping', 'm'], built.redrive],
      ];
      const unbuilt = commands.filter(([, isBuilt]) => !isBuilt);
      if (unbuilt.length === 0) return c.skip('replay, seek and redrive are all built');
      for (const [args] of unbuilt) {
        const run = await cli(args);
        assert.equal(run.code, 5, `${args.join(' ')} → ${run.code} ${run.stderr}`);
        assert.match(run.stderr, new RegExp(`^shardline ${args[0]}: NOT_IMPLEMENTED: `, 'm'));
      }
    });

    describe('replay', () => {
      const sequences: string[] = [];
      const ensureStream = async () => {
        if (sequences.length) return;
        await ok('mutation { createStream(input: {name: "replay", shardCount: 1}) { name } }');
        const put = await ok(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "replay", records: $r) { records { sequenceNumber } } }`,
          { r: Array.from({ length: 30 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`replay${i}`) })) });
        sequences.push(...put.putRecords.records.map((r: any) => r.sequenceNumber));
      };

      it('--dry-run prints totalRecords and invokes nothing', async (c) => {
        if (!built.replay) return c.skip(NOT_BUILT);
        await ensureStream();
        const text = await cli(['replay', '--stream', 'replay', '--from', 'TRIM_HORIZON', '--function', 'collect', '--dry-run']);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /SUCCEEDED \(dry run/);
        assert.match(text.stdout, /records\s+30 total, 0 delivered, 0 failed/);
        const json = await cli(['replay', '--stream', 'replay', '--from', 'TRIM_HORIZON', '--to', `seq:${sequences[9]}`,
          '--function', 'collect', '--dry-run', '--json']);
        assert.equal(json.code, 0, json.stderr);
        const job = JSON.parse(json.stdout);
        assert.deepEqual([job.dryRun, job.state, job.totalRecords, job.deliveredRecords], [true, 'SUCCEEDED', 10, 0]);
        const window = await cli(['replay', '--stream', 'replay', '--from', `after:${sequences[4]}`, '--to', `seq:${sequences[9]}`,
          '--function', 'collect', '--dry-run', '--json']);
        assert.equal(JSON.parse(window.stdout).totalRecords, 5);
        assert.equal(collected().replay, undefined, 'nothing invoked');
      });

      it('--wait shows progress lines when not a TTY and exits 0 once SUCCEEDED', async (c) => {
        if (!built.replay) return c.skip(NOT_BUILT);
        await ensureStream();
        const run = await cli(['replay', '--stream', 'replay', '--from', 'TRIM_HORIZON', '--function', 'collect', '--batch-size', '7', '--wait']);
        assert.equal(run.code, 0, run.stderr);
        const progress = run.stderr.trim().split('\n');
        assert.ok(progress.length >= 1, run.stderr);
        for (const line of progress) assert.match(line, /^replay \S+: [A-Z]+ \d+\/30 delivered \d+%$/);
        assert.match(progress.at(-1)!, /SUCCEEDED 30\/30 delivered 100%$/);
        assert.doesNotMatch(run.stderr, /\r|\x1b/, 'no terminal control codes');
        assert.match(run.stdout, /SUCCEEDED/);
        assert.deepEqual([...collected().replay!].sort(), Array.from({ length: 30 }, (_, i) => `replay${i}`).sort());
      });

      it('--wait exits 3 when the job is cancelled', async (c) => {
        if (!built.replay) return c.skip(NOT_BUILT);
        await ensureStream();
        const running = startCli(url, ['replay', '--stream', 'replay', '--from', 'TRIM_HORIZON', '--function', 'collect', '--rate', '1', '--wait']);
        const id = await waitFor(() => /^replay (\S+): /m.exec(running.stderr())?.[1], `a progress line: ${running.stderr()}`, 15_000);
        await ok(`mutation { cancelReplay(id: "${id}") { state } }`);
        const run = await running.result;
        assert.equal(run.code, 3, run.stderr);
        assert.match(run.stderr, /CANCELLED/);
      });
    });

    it('seek moves a mapping back and its records are delivered again', async (c) => {
      if (!built.seek) return c.skip(NOT_BUILT);
      await ok('mutation { createStream(input: {name: "seek", shardCount: 2}) { name } }');
      const id = await createMapping('seek', 'collect');
      await ok(`mutation($r: [PutRecordInput!]!) { putRecords(streamName: "seek", records: $r) { failedRecordCount } }`,
        { r: Array.from({ length: 6 }, (_, i) => ({ partitionKey: `k${i}`, data: b64(`seek${i}`) })) });
      await waitFor(() => (collected().seek?.length ?? 0) >= 6, 'first delivery', 10_000);
      await waitFor(async () => (await ok(`{ eventSourceMapping(id: "${id}") { recordsBehind } }`)).eventSourceMapping.recordsBehind === 0, 'caught up', 10_000);
      const run = await cli(['seek', '--mapping', id, '--to', 'TRIM_HORIZON', '--json']);
      assert.equal(run.code, 0, run.stderr);
      const out = JSON.parse(run.stdout);
      assert.deepEqual([out.position, out.mapping.id], [{ type: 'TRIM_HORIZON' }, id]);
      await waitFor(() => (collected().seek?.length ?? 0) >= 12, 'delivered again after the seek', 10_000);
      const text = await cli(['seek', '--mapping', id, '--to', 'LATEST', '--shards', '0']);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^sought mapping ${id} to LATEST on shardId-000000000000$`, 'm'));
    });

    it('redrive re-delivers discarded batches to another function and --wait exits 0', async (c) => {
      if (!built.redrive) return c.skip(NOT_BUILT);
      await ok('mutation { createStream(input: {name: "redrive", shardCount: 1}) { name } }');
      const id = await createMapping('redrive', 'poison', ', maximumRetryAttempts: 0');
      await ok(`mutation { putRecords(streamName: "redrive", records: [{partitionKey: "a", data: "${b64('bad1')}"}, {partitionKey: "b", data: "${b64('bad2')}"}]) { failedRecordCount } }`);
      const failureIds = await waitFor(async () => {
        const edges = (await ok(`{ eventSourceMapping(id: "${id}") { failures(kind: RETRIES_EXHAUSTED) { edges { node { id } } } } }`))
          .eventSourceMapping.failures.edges;
        return edges.length > 0 ? edges.map((e: any) => e.node.id as string) : undefined;
      }, 'a discarded batch', 10_000);
      await ok(`mutation { updateEventSourceMapping(id: "${id}", input: {enabled: false}) { id } }`);
      const run = await cli(['redrive', '--mapping', id, '--function', 'collect', '--wait', '--json']);
      assert.equal(run.code, 0, run.stderr);
      const job = JSON.parse(run.stdout);
      assert.deepEqual([job.state, job.functionName, job.deliveredRecords], ['SUCCEEDED', 'collect', 2]);
      assert.deepEqual([...collected().redrive!].sort(), ['bad1', 'bad2']);
      const marked = (await ok(`{ eventSourceMapping(id: "${id}") { failures(kind: RETRIES_EXHAUSTED) { edges { node { id redrivenBy } } } } }`))
        .eventSourceMapping.failures.edges.map((e: any) => e.node);
      for (const failureId of failureIds) assert.equal(marked.find((f: any) => f.id === failureId)?.redrivenBy, job.id);

      // A job that ends with records failed (discarded after their retries) is no success for a script.
      const failing = await cli(['replay', '--stream', 'redrive', '--from', 'TRIM_HORIZON', '--function', 'poison', '--wait']);
      assert.equal(failing.code, 3, failing.stderr);
      assert.match(failing.stderr, /ended with 2 record\(s\) failed/);
    });
  });
}
