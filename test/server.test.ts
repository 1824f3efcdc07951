import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildApp } from '../api/app.ts';
import { HTTP2_PREFACE } from '../api/http/h2c.ts';
import { loadConfig } from '../engine/config.ts';
import { openDatabase } from '../engine/db.ts';
import { b64, backends, bounded, freshPostgresDatabase, openTestEngine, waitFor } from './harness.ts';

const ROOT = new URL('..', import.meta.url).pathname;

function startServer(env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 4000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.databaseUrl, undefined);
    assert.match(config.dataDir, /\.shardline$/);
    assert.equal(config.recentRecordsBytes, 128 * 1024 * 1024);
    assert.equal(config.limits.requestTimeoutMs, 300_000);
    assert.equal(loadConfig({ SHARDLINE_REQUEST_TIMEOUT_SECONDS: '30' }).limits.requestTimeoutMs, 30_000);
    assert.deepEqual(config.capture, { maxSources: 16 });
  });

  it('rejects a bad value with a message naming the variable', () => {
    assert.throws(() => loadConfig({ PORT: 'abc' }), /PORT must be an integer/);
    assert.throws(() => loadConfig({ PORT: '70000' }), /PORT must be an integer between 0 and 65535/);
    assert.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), /DATABASE_URL must start with postgres/);
    assert.throws(() => loadConfig({ SHARDLINE_REGION: 'mars' }), /SHARDLINE_REGION/);
    assert.throws(() => loadConfig({ SHARDLINE_HEARTBEAT_MS: '6000' }), /SHARDLINE_HEARTBEAT_MS \(6000\) must be at most half of SHARDLINE_LEASE_TTL_SECONDS \(10 s\)/);
    assert.throws(() => loadConfig({ SHARDLINE_RECENT_RECORDS_MB: '-1' }), /SHARDLINE_RECENT_RECORDS_MB must be an integer/);
    assert.equal(loadConfig({ SHARDLINE_RECENT_RECORDS_MB: '0' }).recentRecordsBytes, 0);
    assert.throws(() => loadConfig({ SHARDLINE_MAX_CAPTURE_SOURCES: '0' }), /SHARDLINE_MAX_CAPTURE_SOURCES must be an integer between 1 and 10000, got 0/);
    assert.equal(loadConfig({ SHARDLINE_MAX_CAPTURE_SOURCES: '3' }).capture.maxSources, 3);
    assert.throws(() => loadConfig({ SHARDLINE_DELIVERY: 'maybe', DATABASE_URL: 'postgres://x/y' }), /SHARDLINE_DELIVERY must be on or off, got "maybe"/);
    assert.throws(() => loadConfig({ SHARDLINE_DELIVERY: 'off' }), /SHARDLINE_DELIVERY=off needs DATABASE_URL/);
  });

  it('turns delivery off for a process that serves the APIs only', () => {
    assert.equal(loadConfig({ SHARDLINE_DELIVERY: 'off', DATABASE_URL: 'postgres://x/y' }).delivery, false);
    assert.deepEqual(loadConfig({ SHARDLINE_DELIVERY: 'on' }).delivery, { leaseTtlMs: 10_000, heartbeatMs: 1000, idlePollMs: 250 });
  });

  it('stops start-up with one line naming the variable', async () => {
    const server = startServer({ PORT: 'abc' });
    assert.equal(await server.exited, 1);
    const lines = server.output().trim().split('\n').filter((l) => !l.includes('npm warn'));
    assert.equal(lines.length, 1, server.output());
    assert.match(lines[0]!, /^shardline: PORT must be an integer/);
  });
});

for (const backend of backends) {
  describe(`npm start (${backend.name})`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'shardline-start-'));
    let drop: (() => Promise<void>) | undefined;
    after(async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await drop?.();
    });

    it('serves GraphQL, migrating the database at start-up, and stops on SIGTERM', async () => {
      const env: Record<string, string> = { SHARDLINE_DATA_DIR: join(dataDir, '.shardline') };
      if (backend.url) {
        const fresh = await freshPostgresDatabase(backend.url);
        drop = fresh.drop;
        env.DATABASE_URL = fresh.url;
      }
      const server = startServer(env);
      try {
        const url = await waitFor(() => /serving (http:\S+)/.exec(server.output())?.[1], `server start: ${server.output()}`, 30_000);
        if (!backend.url) assert.ok(existsSync(join(dataDir, '.shardline')), 'PGlite data folder created');
        const gql = async (query: string) => (await (await fetch(url, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }),
        })).json()) as any;
        assert.equal((await gql('mutation { createStream(input: {name: "s", shardCount: 1}) { name } }')).data.createStream.name, 's');
        const put = await gql(`mutation { putRecords(streamName: "s", records: [{partitionKey: "k", data: "${b64('x')}"}]) { failedRecordCount } }`);
        assert.equal(put.data.putRecords.failedRecordCount, 0);
        const page = await fetch(url, { headers: { accept: 'text/html' } });
        assert.match(await page.text(), /graphiql/i, 'GraphiQL in a browser');
        if (!backend.url) {
          // The embedded database is this server's alone: a second opener is refused, naming it.
          await assert.rejects(openDatabase({ dataDir: join(dataDir, '.shardline') }),
            { code: 'CONFLICT', message: new RegExp(`in use by process ${server.child.pid}`) });
          // shardline token beside the running server says so, and where to go instead.
          const token = spawn(process.execPath, ['--import', 'tsx', 'cli/shardline.ts', 'token', 'list'], {
            cwd: ROOT, env: { ...process.env, DATABASE_URL: '', SHARDLINE_DATA_DIR: join(dataDir, '.shardline') }, stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stderr = '';
          token.stderr!.on('data', (d) => { stderr += d; });
          const code = await new Promise<number | null>((r) => token.on('exit', r));
          assert.equal(code, 5, stderr);
          assert.match(stderr, /in use by process \d+ on .*use its API instead \(createApiToken/);
        }
      } finally {
        server.child.kill('SIGTERM');
      }
      assert.equal(await server.exited, 0);
      if (!backend.url) {
        // Stopped, it is free; and a lock left by a process that is gone is taken over.
        const handle = await openDatabase({ dataDir: join(dataDir, '.shardline') });
        await handle.close();
        const lock = join(dataDir, '.shardline', 'shardline.lock');
        const gone = spawn(process.execPath, ['-e', '']);
        await new Promise((r) => gone.on('exit', r));
        writeFileSync(lock, JSON.stringify({ pid: gone.pid, host: hostname() }));
        await (await openDatabase({ dataDir: join(dataDir, '.shardline') })).close();
        // Another host's lock (a container on a shared volume): held while fresh, taken over once stale.
        writeFileSync(lock, JSON.stringify({ pid: 1, host: 'another-container' }));
        await assert.rejects(openDatabase({ dataDir: join(dataDir, '.shardline') }), { code: 'CONFLICT', message: /process 1 on another-container/ });
        const old = new Date(Date.now() - 60_000);
        utimesSync(lock, old, old);
        await (await openDatabase({ dataDir: join(dataDir, '.shardline') })).close();
      }
    });
  });
}

for (const backend of backends) {
  describe(`HTTP/2 request timeout (${backend.name})`, () => {
    it('answers 408 and closes an h2c stream whose body stops arriving, and leaves a fully received request\'s response open', async () => {
      const t = await openTestEngine(backend);
      const app = buildApp({ engine: t.engine, logError: () => {}, limits: { requestTimeoutMs: 300 } });
      const url = await app.start(0, '127.0.0.1');
      const session = http2Connect(new URL(url).origin);
      const gql = async (query: string) => (await (await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }),
      })).json()) as any;
      try {
        assert.equal((await gql('mutation { createStream(input: {name: "s", shardCount: 1}) { name } }')).data.createStream.name, 's');
        // A request read whole whose response is held by HTTP/2 flow control (nobody reads it)
        // past the timeout: the deadline ended with the request, so the response still comes whole.
        const records = Array.from({ length: 200 }, (_, i) => `{partitionKey: "k", data: "${b64(String(i).padStart(6000, 'x'))}"}`);
        assert.equal((await gql(`mutation { putRecords(streamName: "s", records: [${records.join(',')}]) { failedRecordCount } }`)).data.putRecords.failedRecordCount, 0);
        const query = JSON.stringify({ query: '{ stream(name: "s") { records(first: 200, from: {type: TRIM_HORIZON}) { edges { node { data } } } } }' });
        const held = session.request({
          ':method': 'POST', ':path': '/graphql', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(query)),
        });
        let heldStatus: number | undefined;
        held.on('response', (headers) => { heldStatus = Number(headers[':status']); });
        held.end(query);
        await bounded(new Promise((resolve) => held.once('response', resolve)), 'the held response begins');

        // Started later, it times out later than the held response would have.
        const stalled = session.request({ ':method': 'POST', ':path': '/graphql', 'content-type': 'application/json', 'content-length': '100' });
        let status: number | undefined;
        stalled.on('response', (headers) => { status = Number(headers[':status']); });
        stalled.resume();
        stalled.write('{');
        await bounded(new Promise((resolve) => stalled.once('close', resolve)), 'the stalled stream closed', 5000);
        assert.equal(status, 408);

        assert.equal(held.closed, false, 'the held response is still open');
        let body = '';
        held.setEncoding('utf8');
        held.on('data', (chunk: string) => { body += chunk; });
        await bounded(new Promise((resolve) => held.once('end', resolve)), 'the held response ends');
        assert.equal(heldStatus, 200);
        assert.equal(JSON.parse(body).data.stream.records.edges.length, 200, 'the whole response came');
      } finally {
        session.destroy();
        await app.stop();
        await t.close();
      }
    });

    it('closes an h2c session that carries nothing for the request timeout', async () => {
      const t = await openTestEngine(backend);
      const app = buildApp({ engine: t.engine, logError: () => {}, limits: { requestTimeoutMs: 300 } });
      const url = new URL(await app.start(0, '127.0.0.1'));
      // The preface and then nothing, not even SETTINGS.
      const raw = netConnect(Number(url.port), '127.0.0.1');
      raw.on('error', () => {});
      raw.resume();
      raw.write(HTTP2_PREFACE);
      // A client's session, idle after one request.
      const session = http2Connect(url.origin);
      session.on('error', () => {});
      const toldToGo = new Promise((resolve) => session.once('goaway', resolve));
      try {
        const asked = session.request({ ':path': '/healthz' });
        asked.resume();
        await bounded(new Promise((resolve) => asked.once('end', resolve)), 'the request answered');
        await bounded(new Promise((resolve) => raw.once('close', resolve)), 'the silent connection closed', 5000);
        await bounded(toldToGo, 'the idle session told to go away', 5000);
      } finally {
        raw.destroy();
        session.destroy();
        await app.stop();
        await t.close();
      }
    });
  });
}
