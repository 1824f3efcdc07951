/**
 * Scenario "subscribers": 1,000 graphql-ws subscribers to `lag` and `failures` while the engine
 * delivers, against the same delivery with nobody subscribed.
 *
 * One engine with buildApp in front (in-process server, real sockets). Three 4-shard streams,
 * one per phase, are filled identically through SQL (bench/sqlFill.ts) with RECORDS records of 1 KiB, every
 * FAIL_EVERY-th one with partition key "fail". Each gets a mapping (batchSize 1000,
 * TRIM_HORIZON, maximumRetryAttempts 0: a batch holding a "fail" record is invoked once, fails,
 * and is discarded — a FUNCTION_ERROR and a RETRIES_EXHAUSTED row, so failures flow) to an
 * in-process module function that throws on such a batch. A mapping is created disabled, then
 * enabled; throughput runs from the enable until the function has been handed every record
 * (or PHASE_LIMIT_MS passed: then what it was handed by then).
 *
 *   1. "quiet": no subscriber connected. Its mapping is deleted afterwards.
 *   2. "watched": SUBSCRIBERS subscribers (in a child process, bench/subscriberClients.ts,
 *      spread over SOCKETS graphql-ws connections), each subscribed to `lag` and `failures`
 *      with no arguments (every mapping, as the dashboard does), connected and holding their
 *      first lag update before the mapping is enabled.
 *   3. "quiet again": the subscribers' process stopped, the third stream's mapping delivers
 *      with nobody subscribed. The machine is shared: the baseline is the mean of phases 1 and 3,
 *      which bracket phase 2, and both are printed.
 *
 * Figures: delivery records/s without and with the subscribers and the drop (target ≤ 10 %);
 * the p99 delay from a failure row's `at` (and from a lag update's `at`) to its receipt by a
 * subscriber (target ≤ 100 ms), over every (subscriber, event) pair received during phase 2;
 * and, per phase, the cores used on average by this process (engine and server), by the
 * subscribers' process, and by the rest of the machine (Postgres, anything else running: on a
 * 2-core machine they all share the same cores), from process.cpuUsage() and /proc/stat.
 *
 * Runs on PGlite always, and on Postgres (a fresh database, dropped afterwards) when
 * DATABASE_URL is set.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { buildApp } from '../api/app.ts';
import type { Engine } from '../engine/engine.ts';
import { type Backend, backends, openTestEngine } from '../test/harness.ts';
import type { Report } from './subscriberClients.ts';
import { sqlFill } from './sqlFill.ts';
import { SERVER_NODE_FLAGS } from './common.ts';

const RECORD_BYTES = 1024;
const SHARDS = 4;
const BATCH_SIZE = 1000;
const RECORDS: Record<Backend['name'], number> = {
  postgres: Number(process.env.BENCH_SUBSCRIBERS_RECORDS ?? 200_000),
  pglite: Number(process.env.BENCH_SUBSCRIBERS_RECORDS_PGLITE ?? 100_000),
};
/** Prime, so the "fail" records fall on every shard. */
const FAIL_EVERY = Number(process.env.BENCH_SUBSCRIBERS_FAIL_EVERY ?? 7919);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const SOCKETS = Number(process.env.BENCH_SUBSCRIBER_SOCKETS ?? SUBSCRIBERS);
/** Diagnostics: BENCH_SUBSCRIBE=lag or =failures subscribes each subscriber to that feed only. */
const KINDS = (process.env.BENCH_SUBSCRIBE ?? 'lag,failures').split(',').map((k) => k.trim()) as ('lag' | 'failures')[];
const PHASE_LIMIT_MS = Number(process.env.BENCH_SUBSCRIBERS_PHASE_LIMIT_MS ?? 30_000);
/** After the delivery, how long failure events still on their way are waited for. */
const DRAIN_MS = 20_000;
const TARGET_DELAY_MS = 100;
const TARGET_DROP = 0.1;
const ROOT = new URL('..', import.meta.url).pathname;
/**
 * Diagnostics: a path; CPU profiles of the engine process during each backend's delivery phases
 * are written to <path>-<backend>-quiet.cpuprofile and <path>-<backend>-watched.cpuprofile.
 */
const PROFILE = process.env.BENCH_SUBSCRIBERS_PROFILE;
/**
 * BENCH_SUBSCRIBERS_API=process (Postgres only): the subscribers connect to a second server
 * process on the same database with SHARDLINE_DELIVERY=off, as a deployment that keeps its API
 * processes apart from its delivering ones would; the engine's events reach it through
 * LISTEN/NOTIFY. Its CPU is reported beside the engine's.
 */
const SEPARATE_API = process.env.BENCH_SUBSCRIBERS_API === 'process';

/** A server process with delivery off on the engine's database; its URL, CPU seconds so far, and stop(). */
async function apiProcess(databaseUrl: string): Promise<{ url: string; cpu: () => number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'api/server.ts'], {
    cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl, SHARDLINE_DELIVERY: 'off', PORT: '0', NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /serving (http:\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`API process exited with ${code}: ${out}`)));
  });
  const cpu = () => {
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  return { url, cpu, stop: async () => { const exited = new Promise((r) => child.once('exit', r)); child.kill('SIGTERM'); await exited; } };
}

declare global {
  // Set by the flaky function written below: records it was handed, per stream name.
  var __shardlineBenchHanded: Map<string, number> | undefined;
}

const FLAKY_MODULE = `
export async function handler(event) {
  const handed = (globalThis.__shardlineBenchHanded ??= new Map());
  const stream = event.Records[0].eventSourceARN.split('/').pop();
  handed.set(stream, (handed.get(stream) ?? 0) + event.Records.length);
  if (event.Records.some((r) => r.kinesis.partitionKey === 'fail')) throw new Error('failing on purpose');
  return null;
}`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (n: number) => Math.round(n).toLocaleString('en');

/** Enables the (disabled) mapping and waits until the function was handed every record, or the limit. */
async function deliver(engine: Engine, stream: string, mappingId: string, count: number): Promise<{ rate: number; handed: number; seconds: number; from: number; to: number }> {
  const handed = (globalThis.__shardlineBenchHanded ??= new Map());
  handed.set(stream, 0);
  const from = Date.now();
  const started = performance.now();
  await engine.updateMapping(mappingId, { enabled: true });
  while ((handed.get(stream) ?? 0) < count && performance.now() - started < PHASE_LIMIT_MS) await sleep(5);
  const seconds = (performance.now() - started) / 1000;
  const n = handed.get(stream) ?? 0;
  const to = Date.now();
  await engine.updateMapping(mappingId, { enabled: false }); // cut short by the limit: no more failures after it
  return { rate: n / seconds, handed: n, seconds, from, to };
}

/** Event-loop delay, ms: how long ready work waited (a busy or descheduled process delays every message). */
interface LoopDelay { p99: number; max: number }

/**
 * CPU seconds: this (engine + server) process (and the kernel's share of it), the subscribers'
 * process, this engine's Postgres backends (0 on PGlite, which runs inside this process), and
 * the whole machine.
 */
interface Cpu { engine: number; engineSystem: number; clients: number; postgres: number; machine: number }

/** Busy CPU seconds of the whole machine so far (/proc/stat: every state but idle and iowait). */
function machineCpu(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const busy = fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!;
  return busy / 100; // USER_HZ
}

const processCpu = (u: { user: number; system: number }) => (u.user + u.system) / 1e6;

/** CPU seconds used so far by the Postgres backends serving this engine's database (/proc/<pid>/stat: utime + stime). */
async function postgresCpu(engine: Engine): Promise<number> {
  if (engine.handle.kind !== 'postgres') return 0;
  const backends = await engine.handle.query<{ pid: number }>(sql`select pid from pg_stat_activity where datname = current_database()`);
  let ticks = 0;
  for (const { pid } of backends) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the line)
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100; // USER_HZ
}

async function cpuNow(engine: Engine, subscribers?: Subscribers): Promise<Cpu> {
  const own = process.cpuUsage();
  return {
    engine: processCpu(own), engineSystem: own.system / 1e6, clients: subscribers ? (await subscribers.cpu()).seconds : 0,
    postgres: await postgresCpu(engine), machine: machineCpu(),
  };
}

const cpuSince = (before: Cpu, after: Cpu): Cpu => ({
  engine: after.engine - before.engine, engineSystem: after.engineSystem - before.engineSystem,
  clients: after.clients - before.clients, postgres: after.postgres - before.postgres, machine: after.machine - before.machine,
});

/** With BENCH_SUBSCRIBERS_PROFILE: starts this process's CPU profiler; the function returned stops it and writes the profile. */
async function startProfile(): Promise<((path: string) => Promise<void>) | undefined> {
  if (!PROFILE) return undefined;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (path) => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(path, JSON.stringify(profile));
    session.disconnect();
  };
}

class Subscribers {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<string, (message: unknown) => void>();

  constructor() {
    this.#child = fork(join(ROOT, 'bench/subscriberClients.ts'), [], {
      cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (message: { type: string }) => {
      this.#waiting.get(message.type)?.(message);
      this.#waiting.delete(message.type);
    });
  }

  #ask<T>(message: object, answer: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscribers: no ${answer} after ${timeoutMs} ms`)), timeoutMs);
      this.#waiting.set(answer, (m) => {
        clearTimeout(timer);
        resolve(m as T);
      });
      this.#child.send(message);
    });
  }

  start(url: string): Promise<void> {
    return this.#ask({ type: 'start', url, subscribers: SUBSCRIBERS, sockets: SOCKETS, kinds: KINDS }, 'ready', 120_000);
  }

  report(from: number, to: number): Promise<Report> {
    return this.#ask({ type: 'report', from, to }, 'report', 30_000);
  }

  /** CPU seconds the subscribers' process has used so far, and its event-loop delay (ms) since the last call. */
  async cpu(): Promise<{ seconds: number; loopDelay: LoopDelay }> {
    const answer = await this.#ask<{ user: number; system: number; loopDelay: LoopDelay }>({ type: 'cpu' }, 'cpu', 10_000);
    return { seconds: processCpu(answer), loopDelay: answer.loopDelay };
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.send({ type: 'stop' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

interface Figures {
  count: number;
  quiet: Awaited<ReturnType<typeof deliver>>;
  quietAgain: Awaited<ReturnType<typeof deliver>>;
  watched: Awaited<ReturnType<typeof deliver>>;
  report: Report;
  failureRows: number;
  connectSeconds: number;
  /** engine.lag() calls, and the failure events the engine raised (with their rows), while the watched mapping delivered. */
  reads: { lag: number; lagMs: number; failureEvents: number; failureEventRows: number };
  /** Seconds after the delivery until every subscriber had every failure row (or DRAIN_MS). */
  drainedSeconds: number;
  /** CPU seconds used during each delivery phase. */
  cpu: { quiet: Cpu; quietAgain: Cpu; watched: Cpu };
  /** Event-loop delay: this process's in each phase, and the subscribers' during the watched one. */
  loopDelay: { quiet: LoopDelay; engine: LoopDelay; clients: LoopDelay };
}

/**
 * Counts the feeds' reads while the watched mapping delivers: engine.lag() calls (the lag
 * statements that reach the database; engine.recentLag shares one among its callers), and the
 * failure events the engine raised (each becomes a message per row per failures subscriber).
 */
function countReads(engine: Engine): { stop(): Figures['reads'] } {
  const counts = { lag: 0, lagMs: 0, failureEvents: 0, failureEventRows: 0 };
  const lag = engine.lag;
  engine.lag = async (mappingId: string) => {
    counts.lag++;
    const started = performance.now();
    try {
      return await lag.call(engine, mappingId);
    } finally {
      counts.lagMs += performance.now() - started;
    }
  };
  const off = engine.events.on('failures', (e) => {
    counts.failureEvents++;
    counts.failureEventRows += e.ids.length;
  });
  return {
    stop() {
      engine.lag = lag;
      off();
      return { ...counts };
    },
  };
}

async function measure(backend: Backend): Promise<Figures> {
  const count = RECORDS[backend.name];
  const functionsDir = mkdtempSync(join(tmpdir(), 'shardline-bench-functions-'));
  writeFileSync(join(functionsDir, 'flaky.mjs'), FLAKY_MODULE);
  const t = await openTestEngine(backend, { functionsDir, delivery: { heartbeatMs: 200, idlePollMs: 250 } });
  const app = buildApp({ engine: t.engine });
  let subscribers: Subscribers | undefined;
  let api: Awaited<ReturnType<typeof apiProcess>> | undefined;
  try {
    const { engine } = t;
    await engine.start();
    const url = await app.start(0, '127.0.0.1');
    const mappings: Record<string, string> = {};
    // A fifth of the phases' records: with 8,000 the first phase still ran on a cold engine, up to a fifth slower than the third.
    const warmupCount = Math.ceil(count / 5);
    // Each phase reads a stream of its own, filled alike: re-reading a stream another phase read
    // found its pages warm, and "quiet again" ran up to a third faster than "quiet".
    for (const name of ['warmup', 'quiet', 'watched', 'again']) {
      await engine.catalog.create({ name, shardCount: SHARDS });
      await sqlFill(engine, name, { count: name === 'warmup' ? warmupCount : count, recordBytes: RECORD_BYTES, failEvery: FAIL_EVERY });
      await engine.createFunction({ name: `flaky-${name}`, module: 'flaky.mjs#handler' });
      const mapping = await engine.createMapping({
        streamName: name, functionName: `flaky-${name}`, startingPosition: 'TRIM_HORIZON', batchSize: BATCH_SIZE,
        maximumRetryAttempts: 0, enabled: false,
      });
      mappings[name] = mapping.id;
    }
    // The fills' dirty pages are written out now rather than by a checkpoint during the first phase.
    if (engine.handle.kind === 'postgres') await engine.handle.query(sql`checkpoint`).catch(() => {});
    // Warm-up: the same path on a small stream.
    await deliver(engine, 'warmup', mappings.warmup!, warmupCount);
    await engine.deleteMapping(mappings.warmup!);

    const quietProfile = await startProfile();
    const quietCpu = await cpuNow(engine);
    const quietLoop = monitorEventLoopDelay({ resolution: 10 });
    quietLoop.enable();
    const quiet = await deliver(engine, 'quiet', mappings.quiet!, count);
    quietLoop.disable();
    const quietCpuUsed = cpuSince(quietCpu, await cpuNow(engine));
    await quietProfile?.(`${PROFILE}-${backend.name}-quiet.cpuprofile`);
    await engine.deleteMapping(mappings.quiet!);
    await sleep(500);

    const connectStarted = performance.now();
    subscribers = new Subscribers();
    if (SEPARATE_API && t.databaseUrl) api = await apiProcess(t.databaseUrl);
    await subscribers.start(api?.url ?? url);
    const connectSeconds = (performance.now() - connectStarted) / 1000;
    await sleep(1000); // every failures subscription is set up by now
    const reads = countReads(engine);
    const watchedProfile = await startProfile();
    const watchedCpu = await cpuNow(engine, subscribers);
    await subscribers.cpu(); // starts the clients' event-loop delay afresh
    const engineLoop = monitorEventLoopDelay({ resolution: 10 });
    engineLoop.enable();
    const apiCpuBefore = api?.cpu() ?? 0;
    const watched = await deliver(engine, 'watched', mappings.watched!, count);
    const apiCores = api ? (api.cpu() - apiCpuBefore) / watched.seconds : 0;
    engineLoop.disable();
    const clientsLoop = (await subscribers.cpu()).loopDelay;
    const watchedCpuUsed = cpuSince(watchedCpu, await cpuNow(engine, subscribers));
    await watchedProfile?.(`${PROFILE}-${backend.name}-watched.cpuprofile`);
    const during = reads.stop();
    const [rows] = await engine.handle.query<{ n: unknown }>(sql`
      select count(*) as n from failures where mapping_id = ${mappings.watched!}
         and at >= to_timestamp(${watched.from / 1000}::float8) and at <= to_timestamp(${watched.to / 1000}::float8)`);
    const failureRows = Number(rows?.n ?? 0);
    // Failure events still on their way count too: wait (bounded) until every subscriber has every row.
    let report: Report;
    const drainDeadline = performance.now() + DRAIN_MS;
    for (;;) {
      report = await subscribers.report(watched.from, watched.to);
      if (!KINDS.includes('failures') || report.failureRowsPerSubscriber.min >= failureRows || performance.now() > drainDeadline) break;
      await sleep(250);
    }
    const drainedSeconds = (performance.now() - drainDeadline + DRAIN_MS) / 1000;
    if (api) console.log(`${''.padEnd(21)} subscribers served by a separate API process (SHARDLINE_DELIVERY=off): it used ${apiCores.toFixed(2)} cores during the watched delivery`);
    await subscribers.stop();
    subscribers = undefined;
    await api?.stop();
    api = undefined;
    await sleep(500);
    const quietAgainCpu = await cpuNow(engine);
    const quietAgain = await deliver(engine, 'again', mappings.again!, count);
    const quietAgainCpuUsed = cpuSince(quietAgainCpu, await cpuNow(engine));
    return { count, quiet, quietAgain, watched, report, failureRows, connectSeconds, reads: during, drainedSeconds,
      cpu: { quiet: quietCpuUsed, quietAgain: quietAgainCpuUsed, watched: watchedCpuUsed },
      loopDelay: { quiet: { p99: quietLoop.percentile(99) / 1e6, max: quietLoop.max / 1e6 }, engine: { p99: engineLoop.percentile(99) / 1e6, max: engineLoop.max / 1e6 }, clients: clientsLoop } };
  } finally {
    await subscribers?.stop();
    await api?.stop();
    await app.stop();
    await t.close();
    rmSync(functionsDir, { recursive: true, force: true });
  }
}

export async function subscribersScenario(): Promise<void> {
  console.log(
    `subscribers: ${fmt(SUBSCRIBERS)} graphql-ws subscribers (over ${fmt(SOCKETS)} sockets, in a child process) to ${KINDS.join(' and ')} ` +
      `while a mapping (batchSize ${BATCH_SIZE}, maximumRetryAttempts 0) delivers ${SHARDS} shards of ${RECORD_BYTES} B records ` +
      `(${fmt(RECORDS.pglite)} on PGlite, ${fmt(RECORDS.postgres)} on Postgres; 1 in ${FAIL_EVERY} fails its batch) to a module function; ` +
      `raw: the same delivery with no subscriber`,
  );
  const ms = (n: number | null) => (n === null || Number.isNaN(n) ? '—' : `${n.toFixed(0)} ms`);
  for (const backend of backends) {
    const f = await measure(backend);
    const baseline = (f.quiet.rate + f.quietAgain.rate) / 2;
    const drop = 1 - f.watched.rate / baseline;
    const r = f.report;
    const partial = (p: { handed: number }) => (p.handed < f.count ? ` (only ${fmt(p.handed)} of ${fmt(f.count)} records in ${PHASE_LIMIT_MS / 1000} s)` : '');
    console.log(
      `${'subscribers'.padEnd(11)} ${backend.name.padEnd(9)} delivery with subscribers ${fmt(f.watched.rate).padStart(7)} records/s${partial(f.watched)}   ` +
        `without ${fmt(baseline).padStart(7)} records/s (before ${fmt(f.quiet.rate)}${partial(f.quiet)}, after ${fmt(f.quietAgain.rate)}${partial(f.quietAgain)})   ` +
        `ratio ${(f.watched.rate / baseline).toFixed(2)} ` +
        `(${(drop * 100).toFixed(0)} % lower; target ≤ ${TARGET_DROP * 100} %: ${drop <= TARGET_DROP ? 'met' : 'NOT met'})`,
    );
    console.log(
      `${''.padEnd(21)} failure → subscriber p50 ${ms(r.failures.p50)} p99 ${ms(r.failures.p99)} max ${ms(r.failures.max)} ` +
        `(${fmt(r.failures.count)} receipts of ${fmt(f.failureRows)} rows; per subscriber ${r.failureRowsPerSubscriber.min}–${r.failureRowsPerSubscriber.max} rows, ` +
        `the last ${f.drainedSeconds.toFixed(1)} s after the delivery; ` +
        `target p99 ≤ ${TARGET_DELAY_MS} ms: ${r.failures.p99 !== null && r.failures.p99 <= TARGET_DELAY_MS ? 'met' : 'NOT met'}); ` +
        `the slowest rows, first–last receipt after their \`at\`: ${r.slowestRows.map((row) => `${row.first}–${row.last} ms (${((row.recordedAt - f.watched.from) / 1000).toFixed(1)} s in)`).join(', ')}`,
    );
    console.log(
      `${''.padEnd(21)} lag update → subscriber p50 ${ms(r.lag.p50)} p99 ${ms(r.lag.p99)} max ${ms(r.lag.max)} ` +
        `(${fmt(r.lag.count)} receipts, ${(r.lag.count / SUBSCRIBERS / f.watched.seconds).toFixed(1)} per subscriber per second); ` +
        `${SUBSCRIBERS} subscribers connected in ${f.connectSeconds.toFixed(1)} s; during the delivery the feeds made ` +
        `${fmt(f.reads.lag / f.watched.seconds)} lag reads/s (${(f.reads.lagMs / Math.max(1, f.reads.lag)).toFixed(1)} ms each on average) and the engine raised ${fmt(f.reads.failureEvents)} failure events (${fmt(f.reads.failureEventRows)} rows)` +
        `${r.errors.length ? `; errors: ${r.errors.slice(0, 3).join(' | ')}` : ''}`,
    );
    // Cores in use on average during each phase: this process (engine + server), the subscribers' process, the rest of the machine (Postgres, others).
    const cores = (c: Cpu, seconds: number) =>
      `engine+server ${(c.engine / seconds).toFixed(2)} (kernel ${(c.engineSystem / seconds).toFixed(2)}), subscriber clients ${(c.clients / seconds).toFixed(2)}, ` +
      `its Postgres backends ${(c.postgres / seconds).toFixed(2)}, rest of the machine ${((c.machine - c.engine - c.clients - c.postgres) / seconds).toFixed(2)} cores`;
    // The two quiet phases together, then what the subscribers cost this process: its CPU in the watched phase beyond the quiet phases' per record.
    const quietCpu: Cpu = {
      engine: f.cpu.quiet.engine + f.cpu.quietAgain.engine, engineSystem: f.cpu.quiet.engineSystem + f.cpu.quietAgain.engineSystem,
      clients: 0, postgres: f.cpu.quiet.postgres + f.cpu.quietAgain.postgres, machine: f.cpu.quiet.machine + f.cpu.quietAgain.machine,
    };
    const quietSeconds = f.quiet.seconds + f.quietAgain.seconds;
    const quietHanded = f.quiet.handed + f.quietAgain.handed;
    const perRecord = (c: Cpu, handed: number) => (c.engine / handed) * 1e6; // ms per 1,000 records
    const messages = r.lag.count + r.failures.count;
    const extra = f.cpu.watched.engine - (quietCpu.engine / quietHanded) * f.watched.handed;
    console.log(
      `${''.padEnd(21)} CPU without: ${cores(quietCpu, quietSeconds)}; with: ${cores(f.cpu.watched, f.watched.seconds)}; ` +
        `engine+server CPU per 1,000 records ${perRecord(quietCpu, quietHanded).toFixed(0)} ms without, ${perRecord(f.cpu.watched, f.watched.handed).toFixed(0)} ms with: ` +
        `the subscribers' share ${((extra / messages) * 1e6).toFixed(0)} µs of this process per message (${fmt(messages)} messages), ` +
        `the clients' ${((f.cpu.watched.clients / messages) * 1e6).toFixed(0)} µs; event-loop delay p99 / max: ` +
        `engine+server ${f.loopDelay.engine.p99.toFixed(0)} / ${f.loopDelay.engine.max.toFixed(0)} ms (without subscribers ${f.loopDelay.quiet.p99.toFixed(0)} / ${f.loopDelay.quiet.max.toFixed(0)} ms), clients ${f.loopDelay.clients.p99.toFixed(0)} / ${f.loopDelay.clients.max.toFixed(0)} ms; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    // The delivery's CPU per record with and without the subscribers, whoever else uses the
    // machine: on two saturated cores the rate falls by about as much as this cost rises.
    const perThousand = (cpu: number, handed: number) => (cpu / handed) * 1e6;
    const costWithout = perThousand(quietCpu.engine + quietCpu.postgres, quietHanded);
    const costServer = perThousand(f.cpu.watched.engine + f.cpu.watched.postgres, f.watched.handed);
    const costClients = perThousand(f.cpu.watched.clients, f.watched.handed);
    console.log(
      `${''.padEnd(21)} CPU per 1,000 records delivered (engine+server and its Postgres backends): ${costWithout.toFixed(0)} ms without, ` +
        `${costServer.toFixed(0)} ms with, and the subscriber clients' ${costClients.toFixed(0)} ms beside: the server's own cost is ` +
        `${((costServer / costWithout - 1) * 100).toFixed(0)} % more CPU per record (${((1 - costWithout / costServer) * 100).toFixed(0)} % lower throughput on saturated cores), ` +
        `${((1 - costWithout / (costServer + costClients)) * 100).toFixed(0)} % with the clients' on the same cores`,
    );
  }
  if (!process.env.DATABASE_URL) console.log('postgres: skipped (set DATABASE_URL to measure on Postgres)');
}
