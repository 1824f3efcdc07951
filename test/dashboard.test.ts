/**
 * The web dashboard (web/, served at /) in a real headless Chromium (Debian's `chromium`
 * package driven by playwright-core), against a real engine on PGlite and on Postgres: the
 * shard lineage, lag figures and charts moving live, a firing alert highlighted, a failure in
 * the live feed with its detail and a redrive, and a replay started from the form whose
 * progress bar reaches 100 %. A screenshot of each view goes to test-artifacts/ (not
 * committed); with SHARDLINE_SCREENSHOT=<file> (`npm run screenshot`) the PGlite run also
 * writes the whole page there (docs/dashboard.png, shown in the README).
 *
 * Also, without a browser: the static handler's content types, cache headers, and that
 * nothing outside web/ and the allow-listed vendor files is served.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import { type App, buildApp } from '../api/app.ts';
import { type TestEngine, b64, backends, openTestEngine, sinkFunction, waitFor } from './harness.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts');
const DOCS_SCREENSHOT = process.env.SHARDLINE_SCREENSHOT;
// CI (.ci/run) installs Chromium and sets SHARDLINE_REQUIRE_BROWSER=1, so a missing browser fails there.
const noBrowser = !existsSync(CHROMIUM) && !process.env.SHARDLINE_REQUIRE_BROWSER
  ? `no Chromium at ${CHROMIUM} (apt-get install chromium)` : false;

describe('dashboard static files', () => {
  let t: TestEngine;
  let app: App;
  let base: string;
  before(async () => {
    t = await openTestEngine(backends[0]!, { delivery: false });
    app = buildApp({ engine: t.engine });
    base = (await app.start(0, '127.0.0.1')).replace(/\/graphql$/, '');
  });
  after(async () => {
    await app.stop();
    await t.close();
  });

  it('serves the dashboard at / with content types and revalidation headers', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    const html = await index.text();
    assert.match(html, /<script type="importmap">/);
    // Only its own scripts run, the inline import map by its hash; the page talks only to its server.
    const csp = index.headers.get('content-security-policy') ?? '';
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]!;
    assert.ok(csp.includes(`script-src 'self' 'sha256-${createHash('sha256').update(importMap).digest('base64')}'`), csp);
    assert.match(csp, /connect-src 'self'/);
    const etag = index.headers.get('etag');
    assert.ok(etag);
    assert.equal((await fetch(`${base}/`, { headers: { 'if-none-match': etag } })).status, 304);
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    for (const [path, type] of [
      ['/web/app.js', 'text/javascript; charset=utf-8'],
      ['/web/views/streams.js', 'text/javascript; charset=utf-8'],
      ['/web/style.css', 'text/css; charset=utf-8'],
      ['/web/vendor/uplot/uPlot.esm.js', 'text/javascript; charset=utf-8'],
      ['/web/vendor/uplot/uPlot.min.css', 'text/css; charset=utf-8'],
      ['/web/vendor/graphql-ws/client.js', 'text/javascript; charset=utf-8'],
    ]) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-type'), type, path);
      await res.arrayBuffer();
    }
    // The chunk the graphql-ws client imports is served too (its hashed name read from the client).
    const client = await (await fetch(`${base}/web/vendor/graphql-ws/client.js`)).text();
    const chunk = /from '\.\/([\w.-]+\.js)'/.exec(client)?.[1];
    assert.ok(chunk);
    assert.equal((await fetch(`${base}/web/vendor/graphql-ws/${chunk}`)).status, 200);
    // GraphiQL stays at /graphql.
    const graphiql = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    assert.equal(graphiql.status, 200);
    assert.match(await graphiql.text(), /graphiql/i);
  });

  it('serves nothing outside web/ and the allow-listed vendor files', async () => {
    const raw = (path: string) => new Promise<number>((resolve, reject) => {
      // fetch() normalises `..` away; a raw request line does not.
      import('node:http').then(({ request }) => {
        const req = request(`${base}/`, { path, method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      }, reject);
    });
    for (const path of [
      '/web/../package.json', '/web/%2e%2e/package.json', '/web/..%2fpackage.json', '/web/views/..%2f..%2fpackage.json',
      '/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/web/.hidden.js', '/web/vendor/graphql-ws/index.js', '/web/vendor/graphql-ws/server.js',
      '/web/vendor/uplot/package.json', '/web/nope.js', '/web/index.ts', '/web/app.js%00.css', '/web/%E0%A4%A.js', '/web/',
    ]) {
      assert.equal(await raw(path), 404, path);
    }
    for (const path of ['/node_modules/uplot/package.json', '/package.json', '/api/app.ts']) {
      const res = await fetch(`${base}${path}`);
      assert.notEqual(res.status, 200, path);
      await res.arrayBuffer();
    }
    const post = await fetch(`${base}/web/app.js`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });
});

for (const backend of backends) {
  describe(`dashboard in headless Chromium (${backend.name})`, { skip: noBrowser }, () => {
    let t: TestEngine;
    let app: App;
    let base: string;
    let browser: Browser;
    let page: Page;
    let mappingId: string;
    const pageErrors: string[] = [];
    const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-dashboard-'));
    const handlerFile = join(functionsDir, 'handler.mjs');
    let gate: { open: () => void; gate: { closed: boolean } };
    let sink: { seen: string[] };

    const shot = async (view: string) => {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.locator(`#${view}`).screenshot({ path: join(ARTIFACTS, `dashboard-${backend.name}-${view}.png`) });
    };
    /** Playwright's bounded wait for the first element matching `selector`. */
    const visible = (selector: string, timeout = 10_000) => page.locator(selector).first().waitFor({ state: 'visible', timeout });
    const attached = (selector: string, timeout = 10_000) => page.locator(selector).first().waitFor({ state: 'attached', timeout });
    const attr = (selector: string, name: string) => page.locator(selector).first().getAttribute(name);

    before(async () => {
      // handler.mjs: throws on data starting with "boom"; otherwise blocks while the gate is closed.
      writeFileSync(handlerFile, `
        export const gate = { closed: true, waiters: [] };
        export function open() { gate.closed = false; for (const w of gate.waiters.splice(0)) w(); }
        export async function handler(event) {
          for (const r of event.Records) {
            const data = Buffer.from(r.kinesis.data, 'base64').toString();
            if (data.startsWith('boom')) throw new Error('cannot handle ' + data);
          }
          if (gate.closed) await new Promise((resolve) => gate.waiters.push(resolve));
          return null;
        }`);
      t = await openTestEngine(backend, {
        functionsDir, delivery: { heartbeatMs: 100, idlePollMs: 50, leaseTtlMs: 5000 }, metricsStepMs: 200, alertIntervalMs: 200,
      });
      await t.engine.start();
      gate = await import(handlerFile);
      sink = await sinkFunction(functionsDir);

      // orders: 3 shards, shard 0 split in two (a closed parent, two open children).
      await t.engine.createStream({ name: 'orders', shardCount: 3 });
      const orders = (await t.engine.catalog.find('orders'))!;
      const [first] = await t.engine.catalog.shards(orders, 'OPEN');
      const middle = (BigInt(first!.hashKeyRange.endingHashKey) / 2n).toString();
      await t.engine.splitShard('orders', first!.shardId, middle);
      // payments: 2 shards merged into one.
      await t.engine.createStream({ name: 'payments', shardCount: 2 });
      await t.engine.mergeShards('payments', 'shardId-000000000000', 'shardId-000000000001');

      await t.engine.createFunction({ name: 'orders-handler', module: 'handler.mjs#handler', timeoutSeconds: 60 });
      await t.engine.createFunction({ name: 'sink', module: 'sink.mjs#handler' });
      const mapping = await t.engine.createMapping({
        streamName: 'orders', functionName: 'orders-handler', startingPosition: 'TRIM_HORIZON', batchSize: 10, maximumRetryAttempts: 0,
      });
      mappingId = mapping.id;
      await t.engine.alerts.create({ name: 'orders backlog', mappingId, metric: 'RECORDS_BEHIND', threshold: 0, forSeconds: 1 });

      app = buildApp({ engine: t.engine });
      base = (await app.start(0, '127.0.0.1')).replace(/\/graphql$/, '');
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
      page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      page.setDefaultTimeout(10_000);
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`${base}/`);
      await attached('body[data-ready="true"]');
    });

    after(async () => {
      gate?.open();
      await browser?.close();
      await app?.stop();
      await t?.close();
      rmSync(functionsDir, { recursive: true, force: true });
    });

    it('draws every stream\'s shards as a lineage tree: open and closed, hash ranges, record counts', async () => {
      await visible('#streams [data-stream="orders"] svg.lineage');
      const orders = page.locator('#streams [data-stream="orders"]');
      assert.equal(await orders.locator('g.shard').count(), 5);
      assert.equal(await orders.locator('g.shard.closed').count(), 1);
      assert.equal(await orders.locator('g.shard[data-shard-id="shardId-000000000000"]').getAttribute('data-state'), 'CLOSED');
      assert.equal(await orders.locator('svg.lineage path.edge').count(), 2, 'the parent linked to its two children');
      assert.match(await orders.locator('g.shard[data-shard-id="shardId-000000000003"]').textContent() ?? '', /keys 0% – 16\.6%/);
      assert.match(await orders.locator('g.shard[data-shard-id="shardId-000000000003"] title').textContent() ?? '', /hash keys 0 …/);
      const payments = page.locator('#streams [data-stream="payments"]');
      assert.equal(await payments.locator('g.shard.closed').count(), 2);
      assert.equal(await payments.locator('svg.lineage path.edge').count(), 2, 'the merged child linked to both parents');
      assert.match(await page.locator('#connection').textContent() ?? '', /live/);
      await shot('streams');
    });

    it('moves the lag figures, charts and counts live, and highlights the firing alert', async () => {
      await visible(`[data-mapping="${mappingId}"] .chart.behind .uplot`);
      await t.engine.putRecords('orders', Array.from({ length: 40 }, (_, i) => ({ partitionKey: `customer-${i}`, data: b64(JSON.stringify({ order: i })) })));
      const card = `[data-mapping="${mappingId}"]`;
      await waitFor(async () => Number(await attr(`${card} .figure.behind .value`, 'data-value')) > 0, 'records behind shown', 10_000);
      await attached('#streams [data-stream="orders"] .record-total[data-value="40"]');
      await waitFor(async () => Number(await attr(`${card} .chart.behind`, 'data-max')) > 0, 'records behind charted', 10_000);
      // The alert rule (RECORDS_BEHIND > 0 for 1 s) fires while the function is held.
      await visible('#alerts li.alert.firing');
      assert.match(await page.locator('#alerts li.alert.firing').first().textContent() ?? '', /orders backlog/);
      await visible('header .firing-banner');
      await attached(`${card}.alerting`);
      assert.ok(await page.locator(`${card} table.leases tbody tr`).count() >= 3, 'a row per shard lease');
      await shot('alerts');
      await shot('mappings');

      gate.open();
      await waitFor(async () => (await attr(`${card} .figure.behind .value`, 'data-value')) === '0', 'records behind back to 0', 15_000);
      // The held batches were seconds old when they were processed.
      await waitFor(async () => Number(await attr(`${card} .chart.age`, 'data-max')) > 0, 'iterator age charted', 10_000);
      assert.match(await page.locator(`${card} .figure.age .value`).textContent() ?? '', /\d+(\.\d)? (ms|s)/);
      const points = Number(await attr(`${card} .chart.behind`, 'data-points'));
      assert.ok(points >= 3, `the chart has the rise and the fall (${points} points)`);
      await attached('#alerts [data-state="RESOLVED"]', 15_000);
      assert.equal(await page.locator('#alerts li.alert.firing').count(), 0);
      const owners = await page.locator(`${card} table.leases td.owner`).allTextContents();
      assert.ok(owners.some((o) => o !== 'unowned'), 'lease owners shown');
      const states = await page.locator(`${card} table.leases .badge`).allTextContents();
      assert.ok(states.includes('SHARD_END'), `the closed parent's lease at SHARD_END (${states})`);
      assert.equal(await page.locator('#errors .error').count(), 0, await page.locator('#errors').textContent() ?? '');
    });

    it('shows a failure in the live feed, its detail, and redrives it', async () => {
      await t.engine.putRecords('orders', [{ partitionKey: 'poison', data: b64('boom-1') }]);
      const discarded = '#failures li.failure[data-kind="RETRIES_EXHAUSTED"]';
      await visible(discarded);
      assert.equal(await page.locator(discarded).count(), 1, 'only the poison batch was discarded');
      await visible('#failures li.failure[data-kind="FUNCTION_ERROR"]');
      assert.match(await page.locator('#failures li.failure[data-kind="FUNCTION_ERROR"]').first().textContent() ?? '', /cannot handle boom-1/);
      await page.locator(`${discarded} button.row`).click();
      await visible('#failure-detail pre.destination');
      assert.match(await page.locator('#failure-detail pre.message').textContent() ?? '', /discarded/);
      // The record's attempts, from the server's logs: the failed invocation, then the discard.
      await visible('#failure-detail table.history');
      assert.match(await page.locator('#failure-detail table.history').textContent() ?? '', /FUNCTION_ERROR.*cannot handle boom-1.*RETRIES_EXHAUSTED/s);
      const destination = JSON.parse(await page.locator('#failure-detail pre.destination').textContent() ?? '{}');
      assert.equal(destination.requestContext?.condition, 'RetryAttemptsExhausted', JSON.stringify(destination));
      await visible('#failure-detail table.records td.data');
      assert.equal(await page.locator('#failure-detail table.records td.data').first().textContent(), 'boom-1');
      await page.locator('#failure-detail select[name="redrive-function"]').selectOption('sink');
      await page.locator('#failure-detail button.redrive').click();
      await attached('#failure-detail .redrive-result[data-job-id]');
      const jobId = await attr('#failure-detail .redrive-result', 'data-job-id');
      await attached(`#replays li.job[data-job-id="${jobId}"][data-state="SUCCEEDED"]`, 15_000);
      assert.ok(sink.seen.includes('boom-1'), 'the redriven record reached the sink');
      await attached(`${discarded} .badge.ok`);
      await shot('failures');
    });

    it('starts a replay from the form, previews its count, and its progress bar reaches 100 %', async () => {
      const form = '#replays form.replay-form';
      await page.locator(`${form} select[name="stream"]`).selectOption('orders');
      // A mistake in the form is named before anything is sent: a time window that ends before it starts.
      await page.locator(`${form} select[name="window"]`).selectOption('time');
      await page.locator(`${form} input[name="fromTime"]`).fill('2030-01-01T10:00:00');
      await page.locator(`${form} input[name="toTime"]`).fill('2030-01-01T09:00:00');
      await page.locator(`${form} button.preview`).click();
      await visible(`${form} .form-output.error-inline`);
      assert.match(await page.locator(`${form} .form-output`).textContent() ?? '', /"to" must not be before "from"/);
      // An error of the API is shown plainly, with its code.
      await page.locator(`${form} select[name="window"]`).selectOption('all');
      await page.locator(`${form} select[name="function"]`).selectOption('sink');
      await page.locator(`${form} input[name="batchSize"]`).fill('100000');
      await page.locator(`${form} button.preview`).click();
      await waitFor(async () => /Preview failed: INVALID_ARGUMENT: batchSize/.test(await page.locator(`${form} .form-output`).textContent() ?? ''), 'the API error shown');

      await page.locator(`${form} select[name="targetKind"]`).selectOption('function');
      await page.locator(`${form} select[name="function"]`).selectOption('sink');
      // 41 records at 10 a second: about four seconds, long enough to see the bar move on a loaded machine.
      await page.locator(`${form} input[name="rate"]`).fill('10');
      await page.locator(`${form} input[name="batchSize"]`).fill('5');
      await page.locator(`${form} button.preview`).click();
      await visible(`${form} .preview-count`);
      assert.equal(await page.locator(`${form} .preview-count`).textContent(), '41 records');
      const seenBefore = sink.seen.length;

      await page.locator(`${form} button.start`).click();
      await attached(`${form} .form-output[data-job-id]`);
      const jobId = await attr(`${form} .form-output`, 'data-job-id');
      const job = `#replays li.job[data-job-id="${jobId}"]`;
      const seen = new Set<string>();
      await waitFor(async () => {
        const p = await attr(`${job} .progress`, 'aria-valuenow').catch(() => null);
        if (p !== null) seen.add(p);
        return p === '100';
      }, 'the progress bar reaches 100 %', 20_000);
      assert.ok([...seen].some((p) => Number(p) < 100), `the bar moved on screen (${[...seen]})`);
      assert.equal(await page.locator(`${job} .pct`).textContent(), '100 %');
      await attached(`${job}[data-state="SUCCEEDED"]`);
      assert.equal(sink.seen.length - seenBefore, 41);

      // A slow one: pause, then cancel.
      await page.locator(`${form} input[name="rate"]`).fill('1');
      await page.locator(`${form} input[name="batchSize"]`).fill('1');
      await page.locator(`${form} button.start`).click();
      await waitFor(async () => (await attr(`${form} .form-output`, 'data-job-id')) !== jobId, 'a second job');
      const slow = `#replays li.job[data-job-id="${await attr(`${form} .form-output`, 'data-job-id')}"]`;
      await page.locator(`${slow} button.pause`).click();
      await attached(`${slow}[data-state="PAUSED"]`);
      await page.locator(`${slow} button.cancel`).click();
      await attached(`${slow}[data-state="CANCELLED"]`);
      await shot('replays');
    });

    it('highlights an alert that fires again, with the page in one piece', async () => {
      gate.gate.closed = true;
      await t.engine.putRecords('orders', Array.from({ length: 25 }, (_, i) => ({ partitionKey: `late-${i}`, data: b64(JSON.stringify({ late: i })) })));
      await visible('#alerts li.alert.firing', 15_000);
      await waitFor(async () => Number(await attr(`[data-mapping="${mappingId}"] .figure.behind .value`, 'data-value')) > 0, 'behind again');
      await page.waitForTimeout(1200); // let the charts draw a second rise
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(ARTIFACTS, `dashboard-${backend.name}-page.png`), fullPage: true });
      if (DOCS_SCREENSHOT && backend.name === 'pglite') {
        const target = join(ROOT, DOCS_SCREENSHOT);
        mkdirSync(dirname(target), { recursive: true });
        await page.screenshot({ path: target, fullPage: true });
      }
      gate.open();
      assert.deepEqual(pageErrors, [], 'no uncaught error in the page');
    });

    it('reads the failures again after its live connection comes back, showing those recorded while it was down', async () => {
      // A second page whose WebSocket goes through a route the test can cut and hold down.
      const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      try {
        let down = false;
        const open: { close: (options?: { code?: number; reason?: string }) => Promise<void> }[] = [];
        await other.routeWebSocket(/\/graphql$/, (ws) => {
          if (down) {
            void ws.close({ code: 1012, reason: 'held down by the test' }); // 1012: a restart, which the client retries
            return;
          }
          ws.connectToServer();
          open.push(ws);
        });
        await other.goto(`${base}/`);
        await other.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
        await other.locator('#connection[data-state="connected"]').waitFor({ state: 'attached' });
        down = true;
        for (const ws of open.splice(0)) await ws.close({ code: 1012, reason: 'cut by the test' });
        await other.locator('#connection:not([data-state="connected"])').waitFor({ state: 'attached' });
        await t.engine.putRecords('orders', [{ partitionKey: 'poison', data: b64('boom-while-down') }]);
        await waitFor(async () => (await t.engine.failures(mappingId, { first: 100 })).items
          .some(({ node }) => node.message?.includes('boom-while-down')), 'the failure rows while the page is cut off');
        const missed = other.locator('#failures li.failure', { hasText: 'boom-while-down' });
        assert.equal(await missed.count(), 0, 'nothing reached the page while its connection was down');
        down = false;
        await missed.first().waitFor({ state: 'visible', timeout: 15_000 });
      } finally {
        await other.close();
      }
    });
  });
}

describe('dashboard behind a token (pglite, headless Chromium)', { skip: noBrowser }, () => {
  it('asks for a token, then shows the streams and goes live with it', async () => {
    const t = await openTestEngine(backends[0]!);
    const app = buildApp({ engine: t.engine, logError: () => {} });
    const url = await app.start(0, '127.0.0.1');
    let browser: Browser | undefined;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
      await t.engine.createStream({ name: 'guarded-orders', shardCount: 1 });
      const reader = await t.engine.tokens.create({ name: 'dashboard', scopes: 'read' }, 'test');
      const page = await browser.newPage();
      await page.goto(new URL('/', url).toString());
      await page.locator('#sign-in').waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await page.locator('#sign-in').innerText(), /Token required/);
      await page.locator('#sign-in input[name=token]').fill(reader.token);
      await page.locator('#sign-in button').click();
      await page.locator('#streams', { hasText: 'guarded-orders' }).waitFor({ state: 'visible', timeout: 10_000 });
      await page.locator('#connection[data-state=connected]').waitFor({ state: 'attached', timeout: 10_000 });
      assert.equal(await page.locator('#sign-in').count(), 0);
    } finally {
      await browser?.close();
      await app.stop();
      await t.close();
    }
  });
});
