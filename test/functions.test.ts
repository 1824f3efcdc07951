/**
 * Function targets: the catalog's validation (on every backend) and the invoker against real
 * HTTP servers on 127.0.0.1 and module functions written to a temporary functions directory.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ShardlineError } from '../engine/errors.ts';
import { FunctionCatalog, type FunctionInfo } from '../engine/functions/functionCatalog.ts';
import { type InvokeResult, Invoker } from '../engine/functions/invoker.ts';
import { type TestEngine, backends, openTestEngine, waitFor, rejectsWith } from './harness.ts';


/** A functions directory with a few modules, a sibling "outside" directory and symlinks between them. */
async function makeFunctionsDir(): Promise<{ root: string; dir: string; outside: string }> {
  const root = await mkdtemp(join(tmpdir(), 'shardline-fn-'));
  const dir = join(root, 'functions');
  const outside = join(root, 'outside');
  await mkdir(join(dir, 'sub'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(dir, 'ok.mjs'), 'export const handler = async (event) => event;\n');
  await writeFile(join(dir, 'plain.js'), 'export function handler() { return 1; }\n');
  await writeFile(join(dir, 'typed.ts'), 'export const handler = async (): Promise<number> => 1;\n');
  await writeFile(join(dir, 'sub', 'nested.mjs'), 'export default async () => 1;\n');
  await writeFile(join(dir, 'data.json'), '{}\n');
  await writeFile(join(dir, 'script.cjs'), 'module.exports = {};\n');
  await mkdir(join(dir, 'folder.mjs'));
  await writeFile(join(outside, 'evil.mjs'), 'globalThis.__shardlineEvilLoaded = true;\nexport const handler = async () => "evil";\n');
  await symlink(join(outside, 'evil.mjs'), join(dir, 'link-out.mjs'));
  await symlink(outside, join(dir, 'linkdir'));
  await symlink(join(dir, 'ok.mjs'), join(dir, 'link-in.mjs'));
  return { root, dir, outside };
}

for (const backend of backends) {
  describe(`function catalog (${backend.name})`, () => {
    let t: TestEngine;
    let root: string;
    let catalog: FunctionCatalog;
    before(async () => {
      t = await openTestEngine(backend);
      const made = await makeFunctionsDir();
      root = made.root;
      catalog = new FunctionCatalog(t.engine.handle, { functionsDir: made.dir });
    });
    after(async () => {
      await t.close();
      await rm(root, { recursive: true, force: true });
    });

    it('creates an HTTP function with defaults; get, find, list and delete it', async () => {
      const fn = await catalog.create({ name: 'http-fn_1.a', url: 'http://127.0.0.1:9001/2015-03-31/functions/function/invocations' });
      assert.deepEqual(fn, {
        name: 'http-fn_1.a',
        url: 'http://127.0.0.1:9001/2015-03-31/functions/function/invocations',
        module: null,
        timeoutSeconds: 3,
        reservedConcurrency: null,
      });
      assert.deepEqual(await catalog.get('http-fn_1.a'), fn);
      assert.deepEqual(await catalog.find('http-fn_1.a'), fn);
      assert.ok((await catalog.list()).some((f) => f.name === 'http-fn_1.a'));
      assert.equal(await catalog.delete('http-fn_1.a'), true);
      assert.equal(await catalog.find('http-fn_1.a'), undefined);
      await rejectsWith(catalog.get('http-fn_1.a'), 'FUNCTION_NOT_FOUND', /http-fn_1\.a/);
      await rejectsWith(catalog.delete('http-fn_1.a'), 'FUNCTION_NOT_FOUND', /http-fn_1\.a/);
    });

    it('creates module functions (.mjs, .js, .ts, nested, inner symlink) with explicit limits', async () => {
      const fn = await catalog.create({ name: 'mod', module: 'ok.mjs#handler', timeoutSeconds: 900, reservedConcurrency: 1000 });
      assert.deepEqual(fn, { name: 'mod', url: null, module: 'ok.mjs#handler', timeoutSeconds: 900, reservedConcurrency: 1000 });
      await catalog.create({ name: 'mod-js', module: 'plain.js#handler', timeoutSeconds: 1, reservedConcurrency: 0 });
      await catalog.create({ name: 'mod-ts', module: 'typed.ts#handler' });
      await catalog.create({ name: 'mod-nested', module: './sub/nested.mjs#default' });
      await catalog.create({ name: 'mod-dotdot-inside', module: 'sub/../ok.mjs#$h_1' });
      await catalog.create({ name: 'mod-link-in', module: 'link-in.mjs#handler' });
      const names = (await catalog.list()).map((f) => f.name);
      assert.deepEqual(names, [...names].sort());
      for (const name of ['mod', 'mod-js', 'mod-ts', 'mod-nested', 'mod-dotdot-inside', 'mod-link-in']) assert.ok(names.includes(name), name);
    });

    it('rejects a duplicate name with FUNCTION_EXISTS, also for concurrent creates', async () => {
      await catalog.create({ name: 'dup', url: 'https://example.com/x' });
      await rejectsWith(catalog.create({ name: 'dup', module: 'ok.mjs#handler' }), 'FUNCTION_EXISTS', /dup/);
      const results = await Promise.allSettled([1, 2, 3].map(() => catalog.create({ name: 'race', url: 'http://h/' })));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as ShardlineError).code, 'FUNCTION_EXISTS');
      }
    });

    it('rejects bad names, naming the field and the limit', async () => {
      for (const name of ['', 'a'.repeat(129), 'has space', 'slash/name', 'ünï', 'colon:name']) {
        await rejectsWith(catalog.create({ name, url: 'http://h/' }), 'INVALID_ARGUMENT', /name/, /128/, /\[a-zA-Z0-9_\.-\]/);
        assert.equal(await catalog.find(name), undefined);
      }
      assert.equal((await catalog.create({ name: 'n'.repeat(128), url: 'http://h/' })).name.length, 128);
    });

    it('requires exactly one of url and module', async () => {
      await rejectsWith(catalog.create({ name: 'neither' }), 'INVALID_ARGUMENT', /url/, /module/, /[Ee]xactly one/);
      await rejectsWith(catalog.create({ name: 'neither2', url: null, module: null }), 'INVALID_ARGUMENT', /[Ee]xactly one/);
      await rejectsWith(catalog.create({ name: 'both', url: 'http://h/', module: 'ok.mjs#handler' }), 'INVALID_ARGUMENT', /url/, /module/);
      assert.equal(await catalog.find('both'), undefined);
    });

    it('rejects urls that are not http(s), have no host, carry credentials or are too long', async () => {
      const cases: Array<[string, RegExp[]]> = [
        ['not a url', [/url/, /http/]],
        ['/relative/path', [/url/]],
        ['ftp://example.com/x', [/url/, /http: or https:/]],
        ['file:///etc/passwd', [/url/, /http: or https:/]],
        ['javascript:alert(1)', [/url/]],
        ['http://', [/url/]],
        ['http://user:secret@example.com/', [/url/, /credentials/]],
        ['https://user@example.com/', [/url/, /credentials/]],
        [`http://h/${'a'.repeat(2048)}`, [/url/, /2048/]],
      ];
      for (const [url, patterns] of cases) {
        await rejectsWith(catalog.create({ name: 'bad-url', url }), 'INVALID_ARGUMENT', ...patterns);
      }
      assert.equal(await catalog.find('bad-url'), undefined);
      await catalog.create({ name: 'https-url', url: 'https://[::1]:8443/2015-03-31/functions/f/invocations?Qualifier=x' });
    });

    it('rejects module specs that are malformed, escape the directory or name no loadable file', async () => {
      const cases: Array<[string, RegExp[]]> = [
        ['ok.mjs', [/module/, /file#export/]],
        ['ok.mjs#', [/module/, /file#export/]],
        ['#handler', [/module/, /file#export/]],
        ['ok.mjs#not-ident', [/module export/, /identifier/]],
        ['ok.mjs#1abc', [/module export/, /identifier/]],
        [join(root, 'functions', 'ok.mjs') + '#handler', [/module file/, /relative/]],
        ['/etc/passwd.mjs#handler', [/module file/, /relative/]],
        ['C:\\x\\ok.mjs#handler', [/module file/, /relative/]],
        ['../outside/evil.mjs#handler', [/module file/, /inside the functions directory/]],
        ['sub/../../outside/evil.mjs#handler', [/module file/, /inside the functions directory/]],
        ['..#handler', [/module file/, /inside/]],
        ['.#handler', [/module file/, /inside/]],
        ['link-out.mjs#handler', [/module file/, /symlink/, /outside/]],
        ['linkdir/evil.mjs#handler', [/module file/, /symlink/, /outside/]],
        ['missing.mjs#handler', [/module file/, /does not exist/]],
        ['data.json#handler', [/module file/, /\.js, \.mjs, \.ts/]],
        ['script.cjs#handler', [/module file/, /\.js, \.mjs, \.ts/]],
        ['folder.mjs#handler', [/module file/, /not a regular file/]],
        [`${'a'.repeat(1020)}.mjs#handler`, [/module/, /1024/]],
      ];
      for (const [module, patterns] of cases) {
        await rejectsWith(catalog.create({ name: 'bad-module', module }), 'INVALID_ARGUMENT', ...patterns);
      }
      assert.equal(await catalog.find('bad-module'), undefined);
      assert.equal((globalThis as { __shardlineEvilLoaded?: boolean }).__shardlineEvilLoaded, undefined);
    });

    it('rejects timeoutSeconds outside 1–900 and reservedConcurrency outside 0–1000', async () => {
      for (const timeoutSeconds of [0, -1, 901, 1.5]) {
        await rejectsWith(catalog.create({ name: 'bad-timeout', url: 'http://h/', timeoutSeconds }), 'INVALID_ARGUMENT', /timeoutSeconds/, /1 and 900/);
      }
      for (const reservedConcurrency of [-1, 1001, 2.5]) {
        await rejectsWith(catalog.create({ name: 'bad-rc', url: 'http://h/', reservedConcurrency }), 'INVALID_ARGUMENT', /reservedConcurrency/, /0 and 1000/);
      }
      assert.equal(await catalog.find('bad-timeout'), undefined);
      assert.equal(await catalog.find('bad-rc'), undefined);
      const fn = await catalog.create({ name: 'rc-null', url: 'http://h/', timeoutSeconds: null, reservedConcurrency: null });
      assert.equal(fn.timeoutSeconds, 3);
      assert.equal(fn.reservedConcurrency, null);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Invoker

interface Received { method: string; url: string; headers: IncomingMessage['headers']; body: string }
interface TestServer { url: string; received: Received[]; close(): Promise<void> }

/** A real HTTP server on 127.0.0.1; `respond` answers each request once its body is read. */
async function startServer(respond: (req: Received, res: ServerResponse) => void): Promise<TestServer> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(r);
      respond(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const httpFn = (url: string, extra: Partial<FunctionInfo> = {}): FunctionInfo =>
  ({ name: 'http-fn', url, module: null, timeoutSeconds: 3, reservedConcurrency: null, ...extra });

const errorOf = (r: InvokeResult) => (r.outcome === 'OK' ? undefined : r.error) ?? '';
const statusOf = (r: InvokeResult) => (r.outcome === 'OK' ? undefined : r.statusCode);

const event = { Records: [{ eventSource: 'aws:kinesis', kinesis: { data: 'aGVsbG8=' } }] };
const payload = JSON.stringify(event);

describe('invoker: HTTP functions', () => {
  const invoker = new Invoker({ functionsDir: tmpdir(), region: 'eu-west-1', accountId: '123456789012' });
  const servers: TestServer[] = [];
  after(async () => {
    await invoker.close();
    for (const s of servers) await s.close();
  });

  /** Starts a server answering every request with `status`, `headers` and `body`. */
  async function answering(status: number, body: string, headers: Record<string, string> = {}): Promise<TestServer> {
    const server = await startServer((_req, res) => {
      res.writeHead(status, headers);
      res.end(body);
    });
    servers.push(server);
    return server;
  }

  const invoke = (fn: FunctionInfo) => invoker.invoke(fn, event, 'req-1');

  function assertFailure(result: InvokeResult, outcome: InvokeResult['outcome'], ...patterns: RegExp[]) {
    assert.equal(result.outcome, outcome, JSON.stringify(result));
    if (result.outcome === 'OK') return;
    for (const p of patterns) assert.match(result.error, p);
  }

  it('POSTs the payload to the url as given and returns a parsed JSON body as OK', async () => {
    const server = await answering(200, '{"batchItemFailures":[{"itemIdentifier":"1"}]}', { 'content-type': 'application/json' });
    const result = await invoke(httpFn(`${server.url}/2015-03-31/functions/function/invocations?x=1`));
    assert.equal(result.outcome, 'OK');
    assert.deepEqual(result.outcome === 'OK' && result.body, { batchItemFailures: [{ itemIdentifier: '1' }] });
    assert.ok(result.durationMs >= 0);
    const [req] = server.received;
    assert.equal(req!.method, 'POST');
    assert.equal(req!.url, '/2015-03-31/functions/function/invocations?x=1');
    assert.equal(req!.headers['content-type'], 'application/json');
    assert.equal(req!.headers['x-amz-invocation-type'], 'RequestResponse');
    assert.equal(req!.body, payload);
  });

  it('returns a non-JSON body as raw text and an empty body as null', async () => {
    const text = await answering(200, 'all good, thanks', { 'content-type': 'text/plain' });
    assert.deepEqual(await invoke(httpFn(text.url)).then((r) => r.outcome === 'OK' && r.body), 'all good, thanks');
    const empty = await answering(204, '');
    const result = await invoke(httpFn(empty.url));
    assert.equal(result.outcome, 'OK');
    assert.equal(result.outcome === 'OK' && result.body, null);
  });

  it('takes an empty 200 from the Lambda Invoke API (the RIE\'s crashed runtime) as a function error, and "null" as success', async () => {
    const empty = await answering(200, '');
    const crashed = await invoke(httpFn(`${empty.url}/2015-03-31/functions/function/invocations`));
    assert.equal(crashed.outcome, 'FUNCTION_ERROR');
    assert.match(crashed.outcome === 'FUNCTION_ERROR' ? crashed.error : '', /^Runtime\.ExitError/);
    const nothing = await answering(200, 'null', { 'content-type': 'application/json' });
    const returned = await invoke(httpFn(`${nothing.url}/2015-03-31/functions/function/invocations`));
    assert.equal(returned.outcome, 'OK');
    assert.equal(returned.outcome === 'OK' && returned.body, null);
  });

  it('treats a 2xx with X-Amz-Function-Error as FUNCTION_ERROR, using the error document', async () => {
    const server = await answering(200, '{"errorType":"Error","errorMessage":"boom","trace":["Error: boom"]}', { 'X-Amz-Function-Error': 'Unhandled' });
    const result = await invoke(httpFn(server.url));
    assertFailure(result, 'FUNCTION_ERROR', /^Error: boom$/);
    assert.equal(statusOf(result), 200);
    const bare = await answering(200, 'oops', { 'X-Amz-Function-Error': 'Handled' });
    assertFailure(await invoke(httpFn(bare.url)), 'FUNCTION_ERROR', /Handled/, /oops/);
  });

  it('treats an RIE-style 200 error document without the header as FUNCTION_ERROR', async () => {
    const server = await answering(200, '{"errorMessage":"x is not a function","errorType":"TypeError","requestId":"r","stackTrace":[]}', { 'content-type': 'text/plain' });
    assertFailure(await invoke(httpFn(server.url)), 'FUNCTION_ERROR', /^TypeError: x is not a function$/);
    // A response that merely carries one such key among its own is a success.
    const legit = await answering(200, '{"batchItemFailures":[],"errorMessage":"none"}');
    assert.equal((await invoke(httpFn(legit.url))).outcome, 'OK');
  });

  it("treats the RIE's plain-text timeout answer as TIMEOUT", async () => {
    const server = await answering(200, 'Task timed out after 3.00 seconds', { 'content-type': 'text/plain' });
    assertFailure(await invoke(httpFn(server.url)), 'TIMEOUT', /^Task timed out after 3\.00 seconds$/);
    const lambda = await answering(200, '{"errorMessage":"2026-01-01T00:00:00.000Z r Task timed out after 3.00 seconds"}', { 'X-Amz-Function-Error': 'Unhandled' });
    assertFailure(await invoke(httpFn(lambda.url)), 'TIMEOUT', /Task timed out after 3\.00 seconds/);
  });

  it('treats a 500 (or other non-2xx) from the function as FUNCTION_ERROR with the status', async () => {
    const server = await answering(500, 'Internal Server Error');
    const result = await invoke(httpFn(server.url));
    assertFailure(result, 'FUNCTION_ERROR', /HTTP 500/, /Internal Server Error/);
    assert.equal(statusOf(result), 500);
    const notFound = await answering(404, '{"Type":"User","message":"Function not found"}', { 'x-amzn-ErrorType': 'ResourceNotFoundException' });
    assertFailure(await invoke(httpFn(notFound.url)), 'FUNCTION_ERROR', /HTTP 404/);
    const redirect = await answering(302, '', { location: 'http://127.0.0.1:1/' });
    assertFailure(await invoke(httpFn(redirect.url)), 'FUNCTION_ERROR', /HTTP 302/);
  });

  it('treats 429 and a 5xx Lambda service error as THROTTLED (pre-invoke)', async () => {
    const tooMany = await answering(429, '{"Type":"User","message":"Rate Exceeded.","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}', {
      'x-amzn-ErrorType': 'TooManyRequestsException',
      'Retry-After': '1',
    });
    const result = await invoke(httpFn(tooMany.url));
    assertFailure(result, 'THROTTLED', /^TooManyRequestsException: Rate Exceeded\.$/);
    assert.equal(statusOf(result), 429);
    const bare429 = await answering(429, 'slow down');
    assertFailure(await invoke(httpFn(bare429.url)), 'THROTTLED', /429/);
    const service = await answering(502, '{"Type":"Service","Message":"runtime failed to start"}');
    assertFailure(await invoke(httpFn(service.url)), 'THROTTLED', /ServiceException: runtime failed to start/);
    const headerOnly = await answering(503, 'unavailable', { 'x-amzn-ErrorType': 'ServiceException:http://internal.amazon.com/coral/' });
    assertFailure(await invoke(httpFn(headerOnly.url)), 'THROTTLED', /^ServiceException: unavailable$/);
  });

  it('enforces timeoutSeconds against a server that never answers', async () => {
    const silent = await startServer(() => {});
    servers.push(silent);
    const started = Date.now();
    const result = await invoke(httpFn(silent.url, { timeoutSeconds: 1 }));
    const elapsed = Date.now() - started;
    assertFailure(result, 'TIMEOUT', /^Task timed out after 1\.00 seconds$/);
    assert.ok(elapsed >= 990 && elapsed < 2500, `elapsed ${elapsed} ms`);
    assert.ok(result.durationMs >= 990, `durationMs ${result.durationMs}`);
  });

  it('reports connection refused and connection reset as FUNCTION_ERROR', async () => {
    const gone = await startServer(() => {});
    await gone.close();
    assertFailure(await invoke(httpFn(gone.url)), 'FUNCTION_ERROR', /Connection refused/, /ECONNREFUSED/);
    const resetting = await startServer((_req, res) => res.socket?.destroy());
    servers.push(resetting);
    assertFailure(await invoke(httpFn(resetting.url)), 'FUNCTION_ERROR', /127\.0\.0\.1/);
  });

  it('fails a response above 6 MB with Function.ResponseSizeTooLarge', async () => {
    const big = await answering(200, JSON.stringify({ data: 'x'.repeat(6 * 1024 * 1024) }));
    assertFailure(await invoke(httpFn(big.url)), 'FUNCTION_ERROR', /Function\.ResponseSizeTooLarge/);
  });
});

describe('invoker: module functions', () => {
  let root: string;
  let dir: string;
  let invoker: Invoker;
  before(async () => {
    ({ root, dir } = await makeFunctionsDir());
    invoker = new Invoker({ functionsDir: dir, region: 'eu-west-1', accountId: '123456789012' });
    const files: Record<string, string> = {
      'echo.mjs': `
        globalThis.__shardlineEchoLoads = (globalThis.__shardlineEchoLoads ?? 0) + 1;
        export const handler = async (event) => event;
        export const nothing = async () => {};
        export const sync = (event) => ({ records: event.Records.length });
        export const notAFunction = 42;`,
      'errors.mjs': `
        class CustomError extends Error { constructor(m) { super(m); this.name = 'CustomError'; } }
        export function throws() { throw new CustomError('bad input'); }
        export async function rejects() { throw new TypeError('nope'); }
        export async function rejectsString() { throw 'plain string'; }
        export function never() { return new Promise(() => {}); }`,
      'callback.mjs': `
        export function ok(event, context, callback) { setImmediate(() => callback(null, { viaCallback: true })); }
        export function fails(event, context, callback) { setImmediate(() => callback(new Error('cb failed'))); }
        export function never(event, context, callback) {}`,
      'context.mjs': `
        export const handler = async (event, context) => {
          const first = context.getRemainingTimeInMillis();
          const start = Date.now();
          while (Date.now() - start < 5) {} // let the clock move
          const second = context.getRemainingTimeInMillis();
          const { getRemainingTimeInMillis, ...fields } = context;
          return { fields, first, second };
        };`,
      'swap.mjs': 'export const handler = async () => "original";\n',
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  });
  after(async () => {
    await invoker.close();
    await rm(root, { recursive: true, force: true });
  });

  const modFn = (module: string, extra: Partial<FunctionInfo> = {}): FunctionInfo =>
    ({ name: 'mod-fn', url: null, module, timeoutSeconds: 3, reservedConcurrency: null, ...extra });
  const invoke = (fn: FunctionInfo, ev: unknown = event) => invoker.invoke(fn, ev, 'req-42');

  it('passes a copy of the event sharing its records\' data and returns the value as OK; the module is loaded once', async () => {
    const first = await invoke(modFn('echo.mjs#handler'));
    assert.equal(first.outcome, 'OK');
    assert.deepEqual(first.outcome === 'OK' && first.body, event);
    assert.notEqual(first.outcome === 'OK' && first.body, event, 'a copy of its own');
    await invoke(modFn('echo.mjs#handler'));
    assert.equal((globalThis as { __shardlineEchoLoads?: number }).__shardlineEchoLoads, 1);
    const nothing = await invoke(modFn('echo.mjs#nothing'));
    assert.equal(nothing.outcome === 'OK' && nothing.body, null);
    const sync = await invoke(modFn('echo.mjs#sync'));
    assert.deepEqual(sync.outcome === 'OK' && sync.body, { records: 1 });
  });

  it('hands each invocation an event of its own: what a failed attempt changed does not reach the retry', async () => {
    await writeFile(join(dir, 'mutates.mjs'), `
      export const seen = [];
      export async function handler(event) {
        seen.push({ data: event.Records.map((r) => r.kinesis?.data ?? r.dynamodb.NewImage.n.N), count: event.state?.count });
        for (const r of event.Records) {
          if (r.kinesis) r.kinesis.data = Buffer.from(r.kinesis.data, 'base64').toString(); // decoded in place
          else r.dynamodb.NewImage.n.N = String(Number(r.dynamodb.NewImage.n.N) + 1);
        }
        if (event.state) event.state.count += event.Records.length;
        throw new Error('failing after changing the event');
      }`);
    const kinesisEvent = { Records: [{ kinesis: { data: Buffer.from('{"i":1}').toString('base64'), partitionKey: 'k' }, eventSource: 'aws:kinesis' }], state: { count: 1 } };
    const dynamodbEvent = { Records: [{ dynamodb: { NewImage: { n: { N: '5' } } }, eventSource: 'aws:dynamodb' }] };
    for (let attempt = 0; attempt < 2; attempt++) {
      assert.equal((await invoke(modFn('mutates.mjs#handler'), kinesisEvent)).outcome, 'FUNCTION_ERROR');
      assert.equal((await invoke(modFn('mutates.mjs#handler'), dynamodbEvent)).outcome, 'FUNCTION_ERROR');
    }
    const { seen } = await import(join(dir, 'mutates.mjs'));
    const original = { data: [kinesisEvent.Records[0]!.kinesis.data], count: 1 };
    assert.deepEqual(seen, [original, { data: ['5'], count: undefined }, original, { data: ['5'], count: undefined }]);
    assert.equal(kinesisEvent.Records[0]!.kinesis.data, Buffer.from('{"i":1}').toString('base64'), 'the engine\'s event is untouched');
  });

  it('reports a throw or a rejection as FUNCTION_ERROR "name: message"', async () => {
    const thrown = await invoke(modFn('errors.mjs#throws'));
    assert.equal(thrown.outcome, 'FUNCTION_ERROR');
    assert.equal(errorOf(thrown), 'CustomError: bad input');
    const rejected = await invoke(modFn('errors.mjs#rejects'));
    assert.equal(errorOf(rejected), 'TypeError: nope');
    const str = await invoke(modFn('errors.mjs#rejectsString'));
    assert.equal(errorOf(str), 'Error: plain string');
  });

  it('abandons a handler that does not settle within timeoutSeconds (TIMEOUT)', async () => {
    const started = Date.now();
    const result = await invoke(modFn('errors.mjs#never', { timeoutSeconds: 1 }));
    const elapsed = Date.now() - started;
    assert.equal(result.outcome, 'TIMEOUT');
    assert.equal(errorOf(result), 'Task timed out after 1.00 seconds');
    assert.ok(elapsed >= 990 && elapsed < 2500, `elapsed ${elapsed} ms`);
    const silentCallback = await invoke(modFn('callback.mjs#never', { timeoutSeconds: 1 }));
    assert.equal(silentCallback.outcome, 'TIMEOUT');
  });

  it('supports the legacy callback style', async () => {
    const ok = await invoke(modFn('callback.mjs#ok'));
    assert.deepEqual(ok.outcome === 'OK' && ok.body, { viaCallback: true });
    const failed = await invoke(modFn('callback.mjs#fails'));
    assert.equal(errorOf(failed), 'Error: cb failed');
  });

  it('gives a Lambda-like context whose remaining time decreases', async () => {
    const result = await invoker.invoke(modFn('context.mjs#handler', { name: 'ctx-fn', timeoutSeconds: 7 }), {}, 'req-ctx');
    assert.equal(result.outcome, 'OK');
    const body = (result as { body: { fields: Record<string, unknown>; first: number; second: number } }).body;
    const { logStreamName, ...fields } = body.fields;
    assert.deepEqual(fields, {
      awsRequestId: 'req-ctx',
      functionName: 'ctx-fn',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:ctx-fn',
      memoryLimitInMB: '128',
      logGroupName: '/aws/lambda/ctx-fn',
      callbackWaitsForEmptyEventLoop: true,
    });
    assert.match(String(logStreamName), /^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
    assert.ok(body.first <= 7000 && body.first > 6000, `first ${body.first}`);
    assert.ok(body.second < body.first && body.second > 0, `second ${body.second} after first ${body.first}`);
  });

  it('reports a missing export or a missing file as FUNCTION_ERROR', async () => {
    const noExport = await invoke(modFn('echo.mjs#absent'));
    assert.match(errorOf(noExport), /^Runtime\.HandlerNotFound: echo\.mjs#absent/);
    const notFunction = await invoke(modFn('echo.mjs#notAFunction'));
    assert.match(errorOf(notFunction), /^Runtime\.HandlerNotFound/);
    const missing = await invoke(modFn('missing.mjs#handler'));
    assert.match(errorOf(missing), /^Runtime\.ImportModuleError: .*does not exist/);
  });

  it('re-checks the path at invoke time: escapes and swapped-in symlinks are never loaded', async () => {
    const flag = globalThis as { __shardlineEvilLoaded?: boolean };
    for (const module of ['../outside/evil.mjs#handler', 'link-out.mjs#handler', 'linkdir/evil.mjs#handler', `${join(root, 'outside', 'evil.mjs')}#handler`]) {
      const result = await invoke(modFn(module));
      assert.equal(result.outcome, 'FUNCTION_ERROR', module);
      assert.match(errorOf(result), /functions directory/, module);
    }
    // Valid at create time, then replaced by a link pointing outside.
    assert.equal((await invoke(modFn('swap.mjs#handler'))).outcome, 'OK');
    await unlink(join(dir, 'swap.mjs'));
    await symlink(join(root, 'outside', 'evil.mjs'), join(dir, 'swap.mjs'));
    const swapped = await invoke(modFn('swap.mjs#handler'));
    assert.match(errorOf(swapped), /outside the functions directory/);
    assert.equal(flag.__shardlineEvilLoaded, undefined);
  });
});

describe('invoker: reservedConcurrency', () => {
  const invoker = new Invoker({ functionsDir: tmpdir(), region: 'us-east-1', accountId: '000000000000' });
  let server: TestServer;
  /** Requests the server holds until the test answers them; `max` is the most held at once. */
  const held: ServerResponse[] = [];
  let active = 0;
  let max = 0;
  before(async () => {
    server = await startServer((_req, res) => {
      active++;
      max = Math.max(max, active);
      res.on('finish', () => active--);
      held.push(res);
    });
  });
  after(async () => {
    await invoker.close();
    await server.close();
  });
  const answerOne = () => held.shift()!.end('{"ok":true}');

  it('runs at most reservedConcurrency invocations at once; the others wait, then run', async () => {
    max = 0;
    const fn = httpFn(server.url, { name: 'limited', reservedConcurrency: 2 });
    const results = Array.from({ length: 5 }, (_, i) => invoker.invoke(fn, event, `r${i}`));
    for (let answered = 0; answered < 5; answered++) {
      const expected = Math.min(2, 5 - answered);
      // inFlight lags the server by one response in transit, so wait for both to agree.
      await waitFor(() => held.length === expected && invoker.inFlight('limited') === expected,
        `${expected} requests held and in flight after ${answered} answered`);
      answerOne();
    }
    const settled = await Promise.all(results);
    assert.deepEqual(settled.map((r) => r.outcome), ['OK', 'OK', 'OK', 'OK', 'OK']);
    assert.equal(max, 2);
    assert.equal(server.received.length, 5);
    await waitFor(() => invoker.inFlight('limited') === 0, 'slots released');
  });

  it('a raised reservedConcurrency lets waiting invocations in at once', async () => {
    const fn = httpFn(server.url, { name: 'raised', reservedConcurrency: 1 });
    const results = Array.from({ length: 3 }, (_, i) => invoker.invoke(fn, event, `q${i}`));
    await waitFor(() => held.length === 1 && invoker.inFlight('raised') === 1, 'one held, two waiting');
    // The next invocation carries the raised limit: the two waiting go in with it, before the one running ends.
    const raised = invoker.invoke({ ...fn, reservedConcurrency: 4 }, event, 'q3');
    await waitFor(() => held.length === 4, 'every invocation running under the raised limit');
    while (held.length > 0) answerOne();
    assert.ok((await Promise.all([...results, raised])).every((r) => r.outcome === 'OK'));
  });

  it('without a limit runs every invocation at once', async () => {
    max = 0;
    const fn = httpFn(server.url, { name: 'unlimited' });
    const results = Array.from({ length: 5 }, (_, i) => invoker.invoke(fn, event, `u${i}`));
    await waitFor(() => held.length === 5, '5 requests held at once');
    while (held.length > 0) answerOne();
    assert.ok((await Promise.all(results)).every((r) => r.outcome === 'OK'));
    assert.equal(max, 5);
  });

  it('throttles a function with reservedConcurrency 0 without invoking it', async () => {
    const before = server.received.length;
    const result = await invoker.invoke(httpFn(server.url, { name: 'zero', reservedConcurrency: 0 }), event, 'z');
    assert.equal(result.outcome, 'THROTTLED');
    assert.match(errorOf(result), /reservedConcurrency is 0/);
    assert.equal(server.received.length, before);
  });

  it('close() ends invocations in flight and waiting ones as THROTTLED', async () => {
    const closing = new Invoker({ functionsDir: tmpdir(), region: 'us-east-1', accountId: '000000000000' });
    const fn = httpFn(server.url, { name: 'closing', reservedConcurrency: 1 });
    const running = closing.invoke(fn, event, 'c1');
    const waiting = closing.invoke(fn, event, 'c2');
    await waitFor(() => held.length === 1, 'first request held');
    await closing.close();
    const [a, b] = await Promise.all([running, waiting]);
    assert.equal(a.outcome, 'THROTTLED');
    assert.equal(b.outcome, 'THROTTLED');
    held.splice(0);
    assert.equal((await closing.invoke(fn, event, 'c3')).outcome, 'THROTTLED');
  });
});
