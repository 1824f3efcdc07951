/**
 * The subscribers of bench/subscribers.ts, run in a child process of their own (as browsers
 * would be elsewhere: their JSON parsing is not charged to the engine's process, though on a
 * 2-core machine they still share its CPUs). Spoken to over IPC:
 *
 *   parent → { type: 'start', url, subscribers, sockets, kinds }   open `sockets` graphql-ws clients
 *            and `subscribers` subscribers spread over them, each subscribed to `lag` and
 *            `failures` (or only the kinds given), with no arguments: every mapping, as the
 *            dashboard does
 *   child  → { type: 'ready' }                               every subscriber has its first lag update
 *   parent → { type: 'report', from, to }                    figures of the lag updates received in [from, to]
 *                                                            (epoch ms) and of the failure rows recorded then
 *   child  → { type: 'report', … }                           see Report below
 *   parent → { type: 'cpu' }                                 this process's CPU time so far (µs, process.cpuUsage()),
 *   child  → { type: 'cpu', user, system, loopDelay }        and its event-loop delay since the last such
 *                                                            question (ms: p99 and max), which delays receipts
 *   parent → { type: 'stop' }                                close every client and exit
 *
 * A sample is Date.now() at receipt minus the event's own time: the failure row's `at` (set by
 * the database in the transaction that recorded it), or the lag update's `at` (when the server
 * read the figures). Both clocks are this machine's.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface Report {
  type: 'report';
  lag: { count: number; p50: number; p99: number; max: number };
  failures: { count: number; p50: number; p99: number; max: number };
  /** Distinct failure rows (recorded in the window) each subscriber received: the fewest and the most. */
  failureRowsPerSubscriber: { min: number; max: number };
  /** The failure rows whose last receipt came latest after their `at`: the first and last receipt's delay (ms), and when the row was recorded. */
  slowestRows: { id: string; first: number; last: number; recordedAt: number }[];
  errors: string[];
}

type Message =
  | { type: 'start'; url: string; subscribers: number; sockets: number; kinds: ('lag' | 'failures')[] }
  | { type: 'report'; from: number; to: number }
  | { type: 'cpu' }
  | { type: 'stop' };

interface Sample { at: number; delay: number }

const LAG = 'subscription { lag { mappingId recordsBehind maxIteratorAgeMs at shards { shardId recordsBehind iteratorAgeMs } } }';
const FAILURES = 'subscription { failures { streamName functionName failure { id kind mappingId shardId recordCount attempt message at } } }';

const CONNECT_WAVE = 100;
const clients: Client[] = [];
const lagSamples: Sample[] = [];
const failureSamples: (Sample & { subscriber: number; id: string; recordedAt: number })[] = [];
const errors: string[] = [];

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function figures(samples: Sample[]) {
  const sorted = samples.map((s) => s.delay).sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? Number.NaN };
}

async function start(url: string, subscribers: number, sockets: number, kinds: ('lag' | 'failures')[]): Promise<void> {
  // In waves, each connected before the next opens: a thousand at once can miss the server's
  // 3 s connection_init deadline on a busy machine.
  for (let i = 0; i < sockets; i += CONNECT_WAVE) {
    const wave: Promise<void>[] = [];
    for (let j = i; j < Math.min(sockets, i + CONNECT_WAVE); j++) {
      const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
      wave.push(new Promise<void>((resolve) => client.on('connected', () => resolve())));
      clients.push(client);
    }
    await Promise.all(wave);
  }
  const firstLag: Promise<void>[] = [];
  for (let s = 0; s < subscribers; s++) {
    const client = clients[s % sockets]!;
    const fail = (error: unknown) => {
      if (errors.length < 20) errors.push(error instanceof Error ? error.message : JSON.stringify(error));
    };
    if (kinds.includes('lag')) firstLag.push(new Promise<void>((resolve) => {
      client.subscribe<{ lag: { at: string } }>({ query: LAG }, {
        next: (value) => {
          const now = Date.now();
          if (value.data) lagSamples.push({ at: now, delay: now - Date.parse(value.data.lag.at) });
          else fail(value.errors);
          resolve();
        },
        error: fail,
        complete: () => {},
      });
    }));
    if (kinds.includes('failures')) client.subscribe<{ failures: { failure: { id: string; at: string } } }>({ query: FAILURES }, {
      next: (value) => {
        const now = Date.now();
        if (value.data) {
          const { id, at } = value.data.failures.failure;
          failureSamples.push({ at: now, delay: now - Date.parse(at), subscriber: s, id, recordedAt: Date.parse(at) });
        } else fail(value.errors);
      },
      error: fail,
      complete: () => {},
    });
  }
  await Promise.all(firstLag);
  // Without lag subscriptions nothing confirms the failures ones: give the server time to set them up.
  if (!kinds.includes('lag')) await new Promise((resolve) => setTimeout(resolve, 3000));
}

function report(from: number, to: number, subscribers: number): Report {
  const inWindow = <T extends Sample>(samples: T[]) => samples.filter((s) => s.at >= from && s.at <= to);
  // Failures: the rows recorded in the window, whenever they arrived.
  const failures = failureSamples.filter((f) => f.recordedAt >= from && f.recordedAt <= to);
  const perSubscriber = Array.from({ length: subscribers }, () => new Set<string>());
  for (const f of failures) perSubscriber[f.subscriber]!.add(f.id);
  const sizes = perSubscriber.map((ids) => ids.size);
  const rows = new Map<string, { id: string; first: number; last: number; recordedAt: number }>();
  for (const f of failures) {
    const row = rows.get(f.id);
    if (!row) rows.set(f.id, { id: f.id, first: f.delay, last: f.delay, recordedAt: f.recordedAt });
    else {
      row.first = Math.min(row.first, f.delay);
      row.last = Math.max(row.last, f.delay);
    }
  }
  return {
    type: 'report',
    slowestRows: [...rows.values()].sort((a, b) => b.last - a.last).slice(0, 5),
    lag: figures(inWindow(lagSamples)),
    failures: figures(failures),
    failureRowsPerSubscriber: { min: Math.min(...sizes), max: Math.max(...sizes) },
    errors,
  };
}

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

let subscriberCount = 0;
process.on('message', (message: Message) => {
  if (message.type === 'start') {
    subscriberCount = message.subscribers;
    start(message.url, message.subscribers, message.sockets, message.kinds).then(
      () => process.send!({ type: 'ready' }),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  } else if (message.type === 'report') {
    process.send!(report(message.from, message.to, subscriberCount));
  } else if (message.type === 'cpu') {
    process.send!({ type: 'cpu', ...process.cpuUsage(), loopDelay: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 } });
    loopDelay.reset();
  } else {
    void Promise.all(clients.map((c) => c.dispose())).finally(() => process.exit(0));
  }
});
