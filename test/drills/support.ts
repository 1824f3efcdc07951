/**
 * What the fault drills share: engine processes (`shardline worker` / `shardline serve`) started
 * as real child processes, and the judge — an HTTP function on 127.0.0.1 whose own log of what it
 * received and acknowledged decides whether anything was lost, reordered or served twice at once.
 *
 * The judge knows which process sent each invocation without any help from the engine: it
 * looks the peer of each TCP connection up in /proc (the client socket's inode, then which
 * process holds it), so the engine under test is exactly the one that ships.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, type Socket, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { after, before } from 'node:test';
import postgres from 'postgres';
import { type TestEngine, backends, openTestEngine } from '../harness.ts';

const execFileAsync = promisify(execFile);

export const ROOT = new URL('../..', import.meta.url).pathname;

/** The Postgres the drills run on; they are skipped without it. */
export const DATABASE_URL = process.env.DATABASE_URL;
export const skipWithoutPostgres = DATABASE_URL ? false : 'needs DATABASE_URL (the drills run on a real Postgres)';

export interface EngineProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | string>;
  kill: (signal?: NodeJS.Signals) => Promise<number | string>;
}

/** Starts `shardline <command>` as a child process with the given environment on top of ours. */
export function startShardline(command: 'worker' | 'serve', env: Record<string, string>, label: string = command): EngineProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/shardline.ts', command], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const echo = process.env.SHARDLINE_DRILL_VERBOSE === '1';
  child.stdout!.on('data', (d) => { output += d; if (echo) process.stderr.write(`[${label} ${child.pid}] ${d}`); });
  child.stderr!.on('data', (d) => { output += d; if (echo) process.stderr.write(`[${label} ${child.pid}] ${d}`); });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Environment of an engine process on `databaseUrl` with short lease timings. */
export function engineEnv(databaseUrl: string, timings: { leaseTtlSeconds: number; heartbeatMs: number; idlePollMs?: number }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    SHARDLINE_LEASE_TTL_SECONDS: String(timings.leaseTtlSeconds),
    SHARDLINE_HEARTBEAT_MS: String(timings.heartbeatMs),
    SHARDLINE_IDLE_POLL_MS: String(timings.idlePollMs ?? 100),
    ...extra,
  };
}

/** Awaits a condition, polling every `everyMs`, bounded. */
export async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false, message: string, timeoutMs: number, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms: ${message}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** One invocation as the judge saw it. */
export interface Invocation {
  /**
   * The engine process that sent it; undefined when none of the known processes holds the
   * connection any more (one killed as it connected): counted apart from every process.
   */
  pid: number | undefined;
  shardId: string;
  records: { key: string; n: number; seq: string }[];
  /** performance.now() when the request arrived, and when it was answered or its connection dropped. */
  start: number;
  end: number | undefined;
  /** True once the function answered 200: the batch is acknowledged. */
  acked: boolean;
}

export interface JudgeOptions {
  /** How long the function takes per batch, in ms (random in [min, max]). */
  delayMs?: [number, number];
  /** The processes whose invocations are attributed; asked at every new connection. */
  pids?: () => number[];
}

/**
 * The judge: a Kinesis-event HTTP function whose records' data is "<key>:<n>". It logs every
 * invocation, acknowledges with `null` after a short random delay, and answers the questions
 * the drills ask of its log.
 */
export class Judge {
  readonly log: Invocation[] = [];
  /** Invocations the judge could not read (should stay empty). */
  readonly malformed: string[] = [];
  /** Sequence numbers acknowledged, per shard. */
  readonly acked = new Map<string, Set<string>>();
  readonly #server: Server;
  readonly #peers = new WeakMap<Socket, number | undefined>();
  url = '';

  constructor(private readonly options: JudgeOptions = {}) {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error) => {
        // A malformed invocation is the engine's fault: answer 400 and let the drill see it.
        this.malformed.push(String(error));
        if (!res.headersSent) res.writeHead(400).end();
      });
    });
    this.#server.on('connection', (socket) => this.#peers.set(socket, this.#identify(socket)));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const invocation: Invocation = { pid: this.#peers.get(req.socket), shardId: '', records: [], start: performance.now(), end: undefined, acked: false };
    const finish = () => { invocation.end ??= performance.now(); };
    res.once('close', finish);
    let text = '';
    try {
      for await (const chunk of req) text += chunk;
    } catch {
      return finish(); // the sender went away mid-request (killed): nothing was received
    }
    const event = JSON.parse(text) as { Records: { eventID: string; kinesis: { data: string; sequenceNumber: string } }[] };
    invocation.shardId = event.Records[0]!.eventID.split(':')[0]!;
    invocation.records = event.Records.map((r) => {
      const [key, n] = Buffer.from(r.kinesis.data, 'base64').toString().split(':');
      return { key: key!, n: Number(n), seq: r.kinesis.sequenceNumber };
    });
    this.log.push(invocation);
    const [min, max] = this.options.delayMs ?? [0, 0];
    if (max > 0) await new Promise((r) => setTimeout(r, min + Math.random() * (max - min)));
    if (req.socket.destroyed) return finish();
    // Acknowledged from here on: the log says so before the engine can act on the answer.
    let acked = this.acked.get(invocation.shardId);
    if (!acked) this.acked.set(invocation.shardId, (acked = new Set()));
    for (const r of invocation.records) acked.add(r.seq);
    invocation.acked = true;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('null', finish);
  }

  /** Which known process holds the other end of this connection (Linux /proc). */
  #identify(socket: Socket): number | undefined {
    const pids = this.options.pids?.() ?? [];
    if (pids.length === 0) return undefined;
    const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
    const local = hex(socket.remotePort!);
    const remote = hex(socket.localPort!);
    let inode: string | undefined;
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[1]?.endsWith(`:${local}`) && f[2]?.endsWith(`:${remote}`)) inode = f[9];
      }
    }
    if (!inode) return undefined;
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid;
        } catch {
          // the descriptor closed meanwhile
        }
      }
    }
    return undefined;
  }

  /** Distinct records seen ("key:n"). */
  uniqueRecords(): number {
    return new Set(this.log.flatMap((i) => i.records.map((r) => `${r.key}:${r.n}`))).size;
  }

  /** Deliveries beyond the first of each record. */
  duplicates(): number {
    return this.log.reduce((sum, i) => sum + i.records.length, 0) - this.uniqueRecords();
  }

  /**
   * Checkpoints against the log: every record of a shard at or before the shard's checkpoint
   * must have been acknowledged (a checkpoint is never ahead of an acknowledged batch).
   */
  assertCheckpointsBehindAcks(checkpoints: { shardId: string; checkpointSequenceNumber: string | null }[], written: Written, when: string): void {
    for (const c of checkpoints) {
      if (!c.checkpointSequenceNumber) continue;
      const acked = this.acked.get(c.shardId) ?? new Set<string>();
      const skipped = written.inShard(c.shardId).filter((seq) => seq <= c.checkpointSequenceNumber! && !acked.has(seq));
      assert.equal(skipped.length, 0,
        `${when}: ${c.shardId} checkpoint ${c.checkpointSequenceNumber} is ahead of the function's acknowledgements (${skipped.length} record(s) at or before it never acknowledged, first ${skipped[0]})`);
    }
  }

  /**
   * Every written record reached the function, and per key the first deliveries came in the
   * order the records were written (sequence order). Returns the number of records checked.
   */
  assertAllDeliveredInOrder(written: Written): number {
    const firstSeen = new Map<string, string[]>();
    const seen = new Set<string>();
    for (const i of this.log) {
      for (const r of i.records) {
        if (seen.has(r.seq)) continue;
        seen.add(r.seq);
        let list = firstSeen.get(r.key);
        if (!list) firstSeen.set(r.key, (list = []));
        list.push(r.seq);
      }
    }
    const missing = written.all().filter((w) => !seen.has(w.seq));
    assert.equal(missing.length, 0, `${missing.length} acknowledged write(s) never reached the function, e.g. ${JSON.stringify(missing.slice(0, 3))}`);
    for (const [key, seqs] of firstSeen) {
      const sorted = [...seqs].sort();
      assert.deepEqual(seqs, sorted, `records of ${key} first reached the function out of order`);
    }
    return written.all().length;
  }

  /** How often a shard's next invocation came from another process than its previous one. */
  handovers(): number {
    const last = new Map<string, number | undefined>();
    let n = 0;
    for (const i of [...this.log].sort((a, b) => a.start - b.start)) {
      if (last.has(i.shardId) && last.get(i.shardId) !== i.pid) {
        n++;
        if (process.env.SHARDLINE_DRILL_VERBOSE === '2') {
          const prev = [...this.log].filter((x) => x.shardId === i.shardId && x.start < i.start && x.pid !== i.pid).sort((a, b) => b.start - a.start)[0]!;
          console.log(`handover ${i.shardId}: ${prev.pid} [${prev.start.toFixed(0)}, ${prev.end?.toFixed(0)}] acked=${prev.acked} ${prev.records[0]?.seq.slice(-5)}..${prev.records.at(-1)?.seq.slice(-5)} -> ${i.pid} at ${i.start.toFixed(0)} ${i.records[0]?.seq.slice(-5)}`);
        }
      }
      last.set(i.shardId, i.pid);
    }
    return n;
  }

  /**
   * Fencing, as the function saw it: per shard, no two invocations from different processes
   * were in flight at the same time. Returns the number of invocations compared.
   */
  assertNoOverlapAcrossProcesses(): number {
    const byShard = new Map<string, Invocation[]>();
    for (const i of this.log) {
      let list = byShard.get(i.shardId);
      if (!list) byShard.set(i.shardId, (list = []));
      list.push(i);
    }
    for (const [shardId, list] of byShard) {
      list.sort((a, b) => a.start - b.start);
      for (let x = 0; x < list.length; x++) {
        for (let y = x + 1; y < list.length && list[y]!.start < (list[x]!.end ?? Infinity); y++) {
          assert.equal(list[y]!.pid, list[x]!.pid,
            `${shardId}: process ${list[x]!.pid} and process ${list[y]!.pid} had batches in flight at once ` +
            `(${list[x]!.records[0]?.seq}… from ${list[x]!.start.toFixed(0)} to ${list[x]!.end?.toFixed(0)} ms, ${list[y]!.records[0]?.seq}… from ${list[y]!.start.toFixed(0)} ms)`);
        }
      }
    }
    return this.log.length;
  }
}

/** What producers were told was written: per record its key, number, shard and sequence number. */
export class Written {
  readonly #records: { key: string; n: number; shardId: string; seq: string }[] = [];
  readonly #byShard = new Map<string, string[]>();

  add(record: { key: string; n: number; shardId: string; seq: string }): void {
    this.#records.push(record);
    let list = this.#byShard.get(record.shardId);
    if (!list) this.#byShard.set(record.shardId, (list = []));
    list.push(record.seq);
  }

  all() {
    return this.#records;
  }

  inShard(shardId: string): string[] {
    return this.#byShard.get(shardId) ?? [];
  }

  get count(): number {
    return this.#records.length;
  }
}

/** Prints a drill's figures where the test reporter shows them. */
export function report(name: string, figures: Record<string, string | number>): void {
  const line = Object.entries(figures).map(([k, v]) => `${k}: ${v}`).join(', ');
  console.log(`# drill ${name} — ${line}`);
}

export interface PutOutcome { failedRecordCount: number; records: { shardId?: string | null; sequenceNumber?: string | null; errorCode?: string | null }[] }

/**
 * A producer writing "<key>:<n>" records in a loop until stopped, one call at a time (so each
 * key's records are written in order). Every record the put reports as written joins `written`;
 * a failed call or record is counted, and its records are not (they were not acknowledged).
 */
export function startProducer(
  put: (records: { partitionKey: string; data: string }[]) => Promise<PutOutcome>,
  keys: string[],
  written: Written,
  options: { perCall: number; pauseMs: number; onError?: (error: unknown) => void },
) {
  const next = new Map(keys.map((k) => [k, 0]));
  let cursor = 0;
  let stopped = false;
  const stats = { calls: 0, failedCalls: 0, failedRecords: 0 };
  const loop = (async () => {
    while (!stopped) {
      const batch = Array.from({ length: options.perCall }, () => {
        const key = keys[cursor++ % keys.length]!;
        const n = next.get(key)!;
        next.set(key, n + 1);
        return { key, n };
      });
      stats.calls++;
      try {
        const result = await put(batch.map((r) => ({ partitionKey: r.key, data: Buffer.from(`${r.key}:${r.n}`).toString('base64') })));
        result.records.forEach((entry, i) => {
          if (entry.sequenceNumber && entry.shardId) written.add({ ...batch[i]!, shardId: entry.shardId, seq: entry.sequenceNumber });
          else stats.failedRecords++;
        });
      } catch (error) {
        stats.failedCalls++;
        options.onError?.(error);
      }
      if (options.pauseMs > 0) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  })();
  return { stats, stop: async () => { stopped = true; await loop; } };
}

/**
 * A Postgres cluster of the drill's own: initdb into a temporary folder, its own free port,
 * started and restarted with pg_ctl, so restarting it disturbs nothing else on the machine.
 * Runs as the postgres user (initdb refuses root).
 */
export class ThrowawayPostgres {
  /** SHARDLINE_PG_BIN, or the newest server under /usr/lib/postgresql (Debian's layout). */
  static readonly BIN = process.env.SHARDLINE_PG_BIN ?? newestPostgresBin();
  readonly dir: string;
  port = 0;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'shardline-pg-'));
    chmodSync(this.dir, 0o777);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/shardline`;
  }

  /** Runs a Postgres binary as the postgres user, without blocking this process's event loop. */
  async #run(args: string[]): Promise<void> {
    const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
    const [command, ...rest] = [...asPostgres, ...args];
    await execFileAsync(command!, rest, { cwd: this.dir, encoding: 'utf8' });
  }

  async start(): Promise<void> {
    this.port = await freePort();
    await this.#run([`${ThrowawayPostgres.BIN}/initdb`, '-D', `${this.dir}/data`, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    await this.#run([`${ThrowawayPostgres.BIN}/pg_ctl`, '-D', `${this.dir}/data`, '-l', `${this.dir}/log`, '-w', '-t', '60',
      '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=200`, 'start']);
    const admin = postgres(`postgres://postgres@127.0.0.1:${this.port}/postgres`, { max: 1, onnotice: () => {} });
    await admin.unsafe('create database shardline');
    await admin.end();
  }

  /** pg_ctl restart: `fast` disconnects every client cleanly, `immediate` is a crash (recovery at start). */
  async restart(mode: 'fast' | 'immediate'): Promise<void> {
    await this.#run([`${ThrowawayPostgres.BIN}/pg_ctl`, '-D', `${this.dir}/data`, '-l', `${this.dir}/log`, '-w', '-t', '60', '-m', mode, 'restart']);
  }

  async stop(): Promise<void> {
    try {
      await this.#run([`${ThrowawayPostgres.BIN}/pg_ctl`, '-D', `${this.dir}/data`, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function newestPostgresBin(): string {
  let versions: string[] = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // not Debian's layout: SHARDLINE_PG_BIN says where
  }
  return `/usr/lib/postgresql/${versions[0] ?? '15'}/bin`;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `shardline serve` on an ephemeral port; resolves with its GraphQL URL once it listens. */
export async function startServe(env: Record<string, string>, label = 'serve'): Promise<EngineProcess & { url: string }> {
  const p = startShardline('serve', { PORT: '0', HOST: '127.0.0.1', ...env }, label);
  const url = await until(() => /shardline serving (http:\/\/\S+)/.exec(p.output())?.[1] ?? (p.child.exitCode !== null ? 'exited' : undefined),
    'shardline serve listening', 60_000, 50);
  if (url === 'exited') throw new Error(`shardline serve exited: ${p.output()}`);
  return { ...p, url };
}

/** A GraphQL request over HTTP: the status and the parsed body (null when it was not JSON). */
export async function graphql(url: string, query: string, variables: Record<string, unknown> = {}): Promise<{ status: number; body: any; text: string }> {
  // Bounded: a request stuck across a fault fails the call (its records unacknowledged) instead of holding the drill.
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the caller reports it
  }
  return { status: response.status, body, text };
}

/**
 * The stage most drills share, registered as the describe block's before/after: an engine on a
 * fresh Postgres database that only writes and inspects (it delivers nothing), the judge
 * (when `judge` options are given), and the processes to kill when the drill ends.
 */
export function drillStage(options: { judge?: { delayMs: [number, number] } } = {}) {
  const processes: EngineProcess[] = [];
  const judge = options.judge ? new Judge({ delayMs: options.judge.delayMs, pids: () => processes.map((p) => p.pid) }) : undefined;
  const stage = {
    processes,
    judge: judge as Judge,
    t: undefined as unknown as TestEngine,
  };
  before(async () => {
    stage.t = await openTestEngine(backends.find((b) => b.name === 'postgres')!, { delivery: false });
    await stage.t.engine.notifier.start();
    await judge?.start();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill()));
    await judge?.stop();
    await stage.t?.close();
  });
  return stage;
}

