/**
 * Scenario "fanout": what one failure event costs the server to push to 1,000 graphql-ws
 * subscribers, with no delivery running beside it (bench/subscribers.ts measures the two
 * together). EVENTS failure events of two rows each are raised as the engine raises them, one
 * every GAP_MS, to SUBSCRIBERS `failures` subscriptions over as many sockets (the clients of
 * bench/subscriberClients.ts, in a child process). Figures: this process's CPU per message
 * sent, and the delay from the rows' time to their receipt (p50 / p99).
 *
 * Raw baseline, same run: the same messages (the same JSON, each socket's own subscription id)
 * written by a plain `ws` server to as many plain `ws` clients, the two rows of an event in
 * one write per socket: the floor of any WebSocket fan-out on this machine, most of it the
 * kernel's cost of a write to each socket.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { buildApp } from '../api/app.ts';
import { openTestEngine } from '../test/harness.ts';
import { fmt, sleep } from './common.ts';
import type { Report } from './subscriberClients.ts';

const SUBSCRIBERS = Number(process.env.BENCH_FANOUT_SUBSCRIBERS ?? 1000);
const EVENTS = Number(process.env.BENCH_FANOUT_EVENTS ?? 100);
const GAP_MS = Number(process.env.BENCH_FANOUT_GAP_MS ?? 100);
const ROOT = new URL('..', import.meta.url).pathname;

type Asked = (message: object, answer: string) => Promise<any>;

function child(script: ChildProcess): Asked {
  const waiting = new Map<string, (m: unknown) => void>();
  script.on('message', (m: { type: string }) => {
    waiting.get(m.type)?.(m);
    waiting.delete(m.type);
  });
  return (message, answer) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fanout: no ${answer} from a child`)), 120_000);
    waiting.set(answer, (m) => { clearTimeout(timer); resolve(m); });
    script.send(message);
  });
}

const cpuSeconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;

/** shardline: the engine's failure events through the failures feed, the API and graphql-ws. */
async function throughShardline(): Promise<{ usPerMessage: number; messages: number; p50: number; p99: number }> {
  const t = await openTestEngine({ name: 'pglite' });
  const app = buildApp({ engine: t.engine });
  const clients = fork(join(ROOT, 'bench/subscriberClients.ts'), [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = child(clients);
  try {
    const { engine } = t;
    await engine.start();
    const url = await app.start(0, '127.0.0.1');
    await engine.catalog.create({ name: 'fanout', shardCount: 1 });
    await engine.createFunction({ name: 'fanout-fn', url: 'http://127.0.0.1:9/never-called' });
    const mapping = await engine.createMapping({ streamName: 'fanout', functionName: 'fanout-fn', startingPosition: 'TRIM_HORIZON', enabled: false });
    const [shard] = await engine.catalog.shards(await engine.catalog.get('fanout'), 'OPEN');
    await ask({ type: 'start', url, subscribers: SUBSCRIBERS, sockets: SUBSCRIBERS, kinds: ['failures'] }, 'ready');
    let id = 1;
    const raise = () => {
      const at = new Date();
      const rows = (['FUNCTION_ERROR', 'RETRIES_EXHAUSTED'] as const).map((kind) => ({
        id: id++, mappingId: mapping.id, kind, shardKey: shard!.key, firstSeq: 1n, lastSeq: 10n, recordCount: 10, attempt: 1,
        message: 'failing on purpose', at, destinationRecord: null, redrivenBy: null, lane: 0, lanes: 1,
      }));
      engine.events.emit('failures', { mappingId: mapping.id, ids: rows.map((r) => r.id), rows });
    };
    for (let i = 0; i < 5; i++) { raise(); await sleep(GAP_MS); } // warm-up
    await sleep(500);
    const from = Date.now();
    const before = process.cpuUsage();
    for (let i = 0; i < EVENTS; i++) { raise(); await sleep(GAP_MS); }
    const cpu = cpuSeconds(process.cpuUsage(before));
    let report: Report;
    const deadline = Date.now() + 20_000;
    do {
      await sleep(250);
      report = await ask({ type: 'report', from, to: Date.now() }, 'report');
    } while (report.failures.count < EVENTS * 2 * SUBSCRIBERS && Date.now() < deadline);
    return { usPerMessage: (cpu / report.failures.count) * 1e6, messages: report.failures.count, p50: report.failures.p50, p99: report.failures.p99 };
  } finally {
    clients.send({ type: 'stop' });
    await app.stop();
    await t.close();
  }
}

/** The raw floor: a plain ws server writing the same messages to plain ws clients. */
const RAW_CLIENTS = `
const WebSocket = require('ws');
const delays = [];
let open = 0;
process.on('message', (m) => {
  if (m.type === 'start') {
    for (let i = 0; i < m.sockets; i++) {
      const socket = new WebSocket(m.url);
      socket.on('open', () => { if (++open === m.sockets) process.send({ type: 'ready' }); });
      socket.on('message', (data) => { const at = JSON.parse(String(data)).payload.data.failures.failure.at; delays.push(Date.now() - Date.parse(at)); });
    }
  } else if (m.type === 'report') {
    process.send({ type: 'report', count: delays.length, delays: delays.filter((_, i) => i % 10 === 0) });
  } else if (m.type === 'stop') process.exit(0);
});`;

async function rawFloor(): Promise<{ usPerMessage: number; messages: number; p50: number; p99: number }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as { port: number }).port;
  const sockets: { socket: WebSocket; prefix: string }[] = [];
  server.on('connection', (socket) => sockets.push({ socket, prefix: `{"id":${JSON.stringify(crypto.randomUUID())},"type":"next","payload":` }));
  const clients = spawn(process.execPath, ['-e', RAW_CLIENTS], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ask = child(clients);
  try {
    await ask({ type: 'start', url: `ws://127.0.0.1:${port}`, sockets: SUBSCRIBERS }, 'ready');
    let id = 1;
    const raise = () => {
      const at = new Date().toISOString();
      const payloads = ['FUNCTION_ERROR', 'RETRIES_EXHAUSTED'].map((kind) => JSON.stringify({ data: { failures: { failure: { id: String(id++), at, kind } } } }));
      for (const { socket, prefix } of sockets) {
        const raw = (socket as unknown as { _socket: import('node:net').Socket })._socket;
        raw.cork();
        for (const payload of payloads) socket.send(`${prefix}${payload}}`);
        raw.uncork();
      }
    };
    for (let i = 0; i < 5; i++) { raise(); await sleep(GAP_MS); }
    await sleep(500);
    const warm = (await ask({ type: 'report' }, 'report')).count as number;
    const before = process.cpuUsage();
    for (let i = 0; i < EVENTS; i++) { raise(); await sleep(GAP_MS); }
    const cpu = cpuSeconds(process.cpuUsage(before));
    let answer: { count: number; delays: number[] };
    const deadline = Date.now() + 20_000;
    do {
      await sleep(250);
      answer = await ask({ type: 'report' }, 'report');
    } while (answer.count - warm < EVENTS * 2 * SUBSCRIBERS && Date.now() < deadline);
    const messages = answer.count - warm;
    const delays = answer.delays.slice(Math.ceil(warm / 10)).sort((a, b) => a - b);
    return { usPerMessage: (cpu / messages) * 1e6, messages, p50: percentile(delays, 0.5), p99: percentile(delays, 0.99) };
  } finally {
    clients.send({ type: 'stop' });
    for (const { socket } of sockets) socket.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
}

export async function fanoutScenario(): Promise<void> {
  console.log(`fanout: ${fmt(EVENTS)} failure events of 2 rows, one every ${GAP_MS} ms, to ${fmt(SUBSCRIBERS)} graphql-ws subscribers (one socket each, clients in a child process); raw: a plain ws server writing the same messages`);
  const ours = await throughShardline();
  const raw = await rawFloor();
  const line = (name: string, f: typeof ours) =>
    `${name.padEnd(10)} ${f.usPerMessage.toFixed(1).padStart(5)} µs CPU per message (${fmt(f.messages)} messages)   delay p50 ${f.p50.toFixed(0)} ms p99 ${f.p99.toFixed(0)} ms`;
  console.log(`fanout     ${line('shardline', ours)}`);
  console.log(`fanout     ${line('raw ws', raw)}   ratio of CPU per message ${(ours.usPerMessage / raw.usPerMessage).toFixed(2)}`);
}
