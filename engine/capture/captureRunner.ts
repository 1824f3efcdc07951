/**
 * The capture runner: runs capture sources in this process. Any engine process may run any
 * source; the source row is its lease (owner, expiry, epoch, as for replay jobs): each heartbeat
 * renews this process's sources and claims unowned or expired ones up to maxSources
 * (SHARDLINE_MAX_CAPTURE_SOURCES); a source no slot is free for stays STARTING, and says in
 * lastError that it waits, until some process claims it. A source
 * whose renewal fails (stopped, or taken over after this process stalled) is stopped here; every
 * write of a run checks the epoch in its transaction, so two processes never both store a page.
 * When a process dies, its sources expire and another process resumes them at their stored
 * positions.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { coerceError } from '../errors.ts';
import { TickLoop } from '../tickLoop.ts';
import type { EngineEvents } from '../events.ts';
import { DynamodbStreamsSource } from './dynamodbStreamsSource.ts';
import { KinesisSource } from './kinesisSource.ts';
import type { SourceAddress, SourceClient, SourceClientOptions } from './sourceClient.ts';
import { SourceRun, type SourceRunOptions, type SourceSettings } from './sourceRun.ts';

export interface CaptureRunnerOptions extends SourceRunOptions {
  leaseTtlMs: number;
  heartbeatMs: number;
  /** Sources this process runs at once (SHARDLINE_MAX_CAPTURE_SOURCES). */
  maxSources: number;
}

export const DEFAULT_CAPTURE_OPTIONS: Omit<CaptureRunnerOptions, 'leaseTtlMs' | 'heartbeatMs'> = {
  idlePollMs: 1000,
  discoveryMs: 10_000,
  minBackoffMs: 500,
  maxBackoffMs: 30_000,
  requestTimeoutMs: 30_000,
  maxSources: 16,
};

/** The lastError of a source waiting for a free slot: a claim clears it (by this prefix). */
const WAITING = 'waiting for a free slot:';
const waitingNote = (max: number) =>
  `${WAITING} this process runs at most ${max} capture source${max === 1 ? '' : 's'} (SHARDLINE_MAX_CAPTURE_SOURCES), all taken.`;

export const createSourceClient = (address: SourceAddress, options: SourceClientOptions): SourceClient =>
  (address.kind === 'KINESIS' ? new KinesisSource(address, options) : new DynamodbStreamsSource(address, options));

interface ClaimedRow {
  id: string; epoch: unknown; kind: 'KINESIS' | 'DYNAMODB'; endpoint: string | null; region: string; source_stream: string;
  starting_position: SourceSettings['startingPosition']; starting_ms: number; state: SourceSettings['state'];
  stream_id: unknown; stream_name: string;
}

export class CaptureRunner {
  readonly #runs = new Map<string, { epoch: number; run: SourceRun }>();
  readonly #loop: TickLoop;
  #off: (() => void) | undefined;

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly events: EngineEvents,
    readonly owner: string,
    private readonly options: CaptureRunnerOptions,
    private readonly onError: (error: Error) => void,
    private readonly createClient: (address: SourceAddress, options: SourceClientOptions) => SourceClient = createSourceClient,
  ) {
    this.#loop = new TickLoop(() => this.#tick(), options.heartbeatMs, onError);
  }

  async start(): Promise<void> {
    if (!this.#loop.start()) return;
    // A source started or stopped here is picked up (or let go) at once, not at the next heartbeat.
    this.#off = this.events.on('captures', (event) => {
      if (!this.#runs.has(event.sourceId) || event.remote) this.#loop.poke();
    });
    await this.#loop.first().catch((raw) => this.onError(coerceError(raw)));
  }

  async stop(): Promise<void> {
    this.#off?.();
    if (!(await this.#loop.halt())) return;
    for (const { run } of this.#runs.values()) run.stop();
    await Promise.all([...this.#runs.values()].map(({ run }) => run.done));
    // Hand the sources back so another process resumes them at once.
    await this.handle.query(sql`update capture_sources set owner = null, expires_at = null where owner = ${this.owner}`)
      .catch((raw) => this.onError(coerceError(raw)));
    this.#loop.stopped();
  }

  /** Stops this process's run of a source (stopCapture: it was stopped here). */
  release(id: string): void {
    this.#runs.get(id)?.run.stop();
  }

  /** Ids of the sources this process runs now. */
  running(): string[] {
    return [...this.#runs.keys()];
  }

  async #tick(): Promise<void> {
    const ttl = this.options.leaseTtlMs / 1000;
    const held = await this.handle.query<{ id: string; epoch: unknown }>(sql`
      update capture_sources set expires_at = now() + make_interval(secs => ${ttl}::float8)
       where owner = ${this.owner} and state <> 'STOPPED' and expires_at > now()
      returning id, epoch`);
    const holds = new Set(held.map((r) => `${r.id}/${Number(r.epoch)}`));
    for (const [id, { epoch, run }] of this.#runs) {
      if (!holds.has(`${id}/${epoch}`) || run.stopped) run.stop();
    }
    if (!this.#loop.running) return;
    const room = this.options.maxSources - this.#runs.size;
    if (room > 0) await this.#claim(room, ttl);
    if (this.#runs.size >= this.options.maxSources) await this.#noteWaiting();
  }

  /** Sources no process runs, beyond this one's maximum, say so rather than sit in STARTING with no word. */
  async #noteWaiting(): Promise<void> {
    const note = waitingNote(this.options.maxSources);
    const waiting = await this.handle.query<{ id: string }>(sql`
      update capture_sources set state = 'STARTING', last_error = ${note}, last_error_at = now(), updated_at = now()
       where state <> 'STOPPED' and (owner is null or expires_at < now())
         and (last_error is distinct from ${note} or state <> 'STARTING')
      returning id`);
    for (const { id } of waiting) this.events.emit('captures', { sourceId: id });
  }

  async #claim(room: number, ttl: number): Promise<void> {
    const claimed = await this.handle.query<ClaimedRow>(sql`
      with candidates as (
        select id from capture_sources
         where state <> 'STOPPED' and (owner is null or expires_at < now())
         order by created_at limit ${room}::int for update skip locked)
      update capture_sources c set owner = ${this.owner}, epoch = c.epoch + 1,
             expires_at = now() + make_interval(secs => ${ttl}::float8),
             last_error = case when c.last_error like ${`${WAITING}%`} then null else c.last_error end,
             last_error_at = case when c.last_error like ${`${WAITING}%`} then null else c.last_error_at end
        from candidates, streams st
       where c.id = candidates.id and st.id = c.stream_id
      returning c.id, c.epoch, c.kind, c.endpoint, c.region, c.source_stream, c.starting_position,
                (extract(epoch from c.starting_timestamp) * 1000)::float8 as starting_ms, c.state, c.stream_id, st.name as stream_name`);
    for (const row of claimed) {
      const epoch = Number(row.epoch);
      const previous = this.#runs.get(row.id);
      previous?.run.stop();
      const run = new SourceRun({ handle: this.handle, events: this.events, onError: this.onError, createClient: this.createClient },
        this.options, { sourceId: row.id, owner: this.owner, epoch }, {
          id: row.id, kind: row.kind, endpoint: row.endpoint, region: row.region, sourceStream: row.source_stream,
          startingPosition: row.starting_position, startingTimestamp: new Date(Number(row.starting_ms)), state: row.state,
          stream: { id: Number(row.stream_id), name: row.stream_name },
        });
      this.#runs.set(row.id, { epoch, run });
      void (async () => {
        await previous?.run.done;
        await run.done;
        if (this.#runs.get(row.id)?.run === run) this.#runs.delete(row.id);
      })();
      this.events.emit('captures', { sourceId: row.id });
    }
  }
}
