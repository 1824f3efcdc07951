/**
 * The replay runner: runs replay jobs in this process, through the same delivery path as live
 * mappings (batchDelivery.ts) but with the job's own cursors, so live checkpoints never move.
 *
 * Like leases, a job has an owner, an expiry and an epoch: a process claims PENDING jobs (and
 * RUNNING ones whose owner stopped renewing), renews them every heartbeat, and every progress
 * write is fenced by the epoch — pause and cancel bump it, so the process running the job stops
 * at its next step and a job survives the death of its process, resuming at its cursors.
 * A run also stops before its next invocation when its job was paused, cancelled or taken
 * elsewhere meanwhile: the heartbeat (and, in this process, the pause or cancel itself) ends its
 * waits, and after each wait the job is read again. A run whose stream was deleted ends FAILED.
 *
 * A job runs in its own lane: one batch in flight (the next pages are read meanwhile), ranges in
 * shard order (a parent shard's range before its children's), at most ratePerSecond records a
 * second, so it never starves the live mappings of the function. A job with its mapping's
 * tumbling windows forms them within each range: the open window and its state are kept in the
 * cursor row, and the range's end (or a later window's record) closes it with a final invocation.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import { type Database, type DatabaseHandle, isDatabaseUnavailable } from '../db.ts';
import { type BatchSink, type DeliveryDeps, type Progress, closeWindow, deliverBatch } from '../delivery/batchDelivery.ts';
import { formBatch } from '../delivery/batchForming.ts';
import { compileFilterPatterns } from '../delivery/filterPatterns.ts';
import { type LaneRecord, readLane } from '../delivery/laneReader.ts';
import { STATE_RESERVE_BYTES, firstWindow } from '../delivery/tumblingWindows.ts';
import { FAILED_ROWS, stepLogCtes, storedFailures } from '../delivery/stepCommit.ts';
import { ReadAhead } from './readAhead.ts';
import { ShardlineError, coerceError } from '../errors.ts';
import { TickLoop } from '../tickLoop.ts';
import type { EngineEvents } from '../events.ts';
import { replayCursors, replayJobs, shards } from '../schema.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import { toShardInfo } from '../streams/streamCatalog.ts';

type JobRow = typeof replayJobs.$inferSelect;
/** Why a run was halted: its job left it (paused, cancelled, claimed again), or its stream was deleted. */
type HaltReason = 'LEFT' | 'STREAM_DELETED';
/** What a run needs to know of its job's row to go on. */
interface JobLook { state: string; owner: string | null; epoch: unknown; stream_live: boolean }
/** The columns of a JobLook, of `replay_jobs j`. */
const JOB_LOOK = sql`j.state, j.owner, j.epoch, exists (select 1 from streams s where s.id = j.stream_id and s.deleted_at is null) as stream_live`;
/** A range's open tumbling window as committed so far, and the last record done with. */
interface RangeWindow { open: { start: Date; state: unknown } | null; lastSeq: bigint }
type CursorRow = typeof replayCursors.$inferSelect;

export interface ReplayRunnerOptions { leaseTtlMs: number; heartbeatMs: number; maxJobs: number }

/** Pages a replay lane reads ahead of the batch it delivers (one read in flight at a time). */
const READ_AHEAD_PAGES = 2;

/** The error of a job whose stream was deleted (named unless its row was purged already). */
const streamDeleted = (name: string | undefined) => `The stream ${name ? `"${name}" ` : ''}of this replay was deleted.`;

/** Progress events of a job at most this often (watchers coalesce to 100 ms anyway); the last is never dropped. */
const PROGRESS_EVENT_MS = 100;

export class ReplayRunner {
  readonly #running = new Map<string, { epoch: number; done: Promise<void>; halt: AbortController }>();
  readonly #progress = new Map<string, { at: number; timer: NodeJS.Timeout | undefined }>();
  readonly #loop: TickLoop;
  #off: (() => void) | undefined;
  /** Aborted by stop(): ends the runs' waits. */
  #halting: AbortController | undefined;

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly streams: StreamCatalog,
    private readonly deps: DeliveryDeps & { onError: (error: Error) => void },
    private readonly events: EngineEvents,
    readonly owner: string,
    private readonly options: ReplayRunnerOptions,
  ) {
    this.#loop = new TickLoop(() => this.#tick(), options.heartbeatMs, deps.onError);
  }

  /**
   * A run's wait (retry back-off, up to 7.5 s, or rate wait): it ends when the runner stops, so
   * stop() hands the jobs back without waiting them out, or when the run is halted.
   */
  #sleep(ms: number, halt: AbortSignal): Promise<void> {
    const stopping = this.#halting?.signal;
    if (!stopping || stopping.aborted || halt.aborted) return Promise.resolve();
    // Listeners taken off again when the wait ends (AbortSignal.any would keep one per wait on
    // the runner's signal for as long as the runner lives).
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stopping.removeEventListener('abort', done);
        halt.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopping.addEventListener('abort', done);
      halt.addEventListener('abort', done);
    });
  }

  async start(): Promise<void> {
    if (!this.#loop.start()) return;
    this.#halting = new AbortController();
    // New jobs and jobs handed back wake the runner; the progress of its own jobs does not. A
    // change to a job running here (paused or cancelled, here or elsewhere) wakes it too: the
    // heartbeat halts the run.
    const offReplays = this.events.on('replays', (e) => {
      if (!this.#running.has(e.jobId) || e.stateChanged || e.remote) this.#loop.poke();
    });
    const offResync = this.events.on('resync', () => this.#loop.poke()); // jobs created elsewhere, unheard
    this.#off = () => { offReplays(); offResync(); };
    await this.#loop.first();
  }

  async stop(): Promise<void> {
    this.#off?.();
    if (!(await this.#loop.halt())) return;
    this.#halting?.abort();
    await Promise.all([...this.#running.values()].map((r) => r.done));
    // Hand unfinished jobs back so another process picks them up at once.
    await this.handle.query(sql`update replay_jobs set owner = null, expires_at = null where owner = ${this.owner} and state = 'RUNNING'`)
      .catch((raw) => this.deps.onError(coerceError(raw)));
    this.#loop.stopped();
  }

  async #tick(): Promise<void> {
    const ttl = this.options.leaseTtlMs / 1000;
    // Only the jobs running here: one whose run ended without finishing it (its database went
    // away mid-step) must expire, so that a claim takes it again. A run whose job was not renewed
    // at its epoch (paused, cancelled, claimed elsewhere), or whose stream was deleted, is
    // halted: its waits end and it invokes nothing more.
    const running = [...this.#running.entries()];
    if (running.length > 0) {
      const renewed = await this.handle.query<JobLook & { id: string }>(sql`
        update replay_jobs j set expires_at = now() + make_interval(secs => ${ttl}::float8)
         where owner = ${this.owner} and state = 'RUNNING' and id = any(${sql.param(running.map(([id]) => id))}::text[])
        returning j.id, ${JOB_LOOK}`);
      for (const [id, entry] of running) this.#judge(entry.halt, entry.epoch, renewed.find((r) => r.id === id));
    }
    const room = this.options.maxJobs - this.#running.size;
    if (room <= 0) return;
    const claimed = await this.handle.query<{ id: string; epoch: unknown }>(sql`
      with candidates as (
        select id from replay_jobs
         where not dry_run and (state = 'PENDING' or (state = 'RUNNING' and (owner is null or expires_at < now())))
         order by created_at limit ${room}::int for update skip locked)
      update replay_jobs j set state = 'RUNNING', owner = ${this.owner}, epoch = j.epoch + 1,
             expires_at = now() + make_interval(secs => ${ttl}::float8)
        from candidates c where j.id = c.id
      returning j.id, j.epoch`);
    for (const { id, epoch } of claimed) {
      // A job claimed again (paused and resumed, or its lease expired) while an older run of it
      // still finishes here: that run's writes are fenced by the epoch, and its end must not
      // remove the new run's entry or progress.
      const previous = this.#running.get(id);
      previous?.halt.abort('LEFT' satisfies HaltReason);
      const entry = { epoch: Number(epoch), done: Promise.resolve(), halt: new AbortController() };
      entry.done = (async () => {
        await previous?.done;
        await this.#run(id, entry.epoch, entry.halt);
      })()
        .catch((raw) => this.deps.onError(coerceError(raw)))
        .finally(() => {
          if (this.#running.get(id) !== entry) return;
          this.#running.delete(id);
          this.#flushProgress(id);
          this.#loop.poke(); // a slot is free
        });
      this.#running.set(id, entry);
      this.events.emit('replays', { jobId: id });
    }
  }

  /** Halts a run unless its job's row (absent: not held) shows it still held at this epoch, with its stream. */
  #judge(halt: AbortController, epoch: number, row: JobLook | undefined): void {
    if (halt.signal.aborted) return;
    if (!row || row.state !== 'RUNNING' || row.owner !== this.owner || Number(row.epoch) !== epoch) halt.abort('LEFT' satisfies HaltReason);
    else if (!row.stream_live) halt.abort('STREAM_DELETED' satisfies HaltReason);
  }

  async #look(id: string): Promise<JobLook | undefined> {
    const [row] = await this.handle.query<JobLook>(sql`
      select ${JOB_LOOK} from replay_jobs j where j.id = ${id}`);
    return row;
  }

  /** True while this process still holds the job at this epoch. */
  async #holds(tx: Database, id: string, epoch: number): Promise<boolean> {
    const rows = await this.handle.query(sql`
      select 1 from replay_jobs where id = ${id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING' for update`, tx);
    return rows.length === 1;
  }

  async #run(id: string, epoch: number, halt: AbortController): Promise<void> {
    const [job] = await this.handle.db.select().from(replayJobs).where(eq(replayJobs.id, id));
    if (!job) return;
    const stream = await this.streams.findById(job.streamId);
    if (!stream) {
      const [row] = await this.handle.query<{ name: string }>(sql`select name from streams where id = ${job.streamId}`);
      return this.#finish(job, epoch, 'FAILED', streamDeleted(row?.name));
    }
    const filters = compileFilterPatterns(job.settings.filterPatterns, stream.kind);
    const cursors = await this.handle.db.select({ c: replayCursors, shard: shards }).from(replayCursors)
      .innerJoin(shards, eq(shards.key, replayCursors.shardKey))
      .where(and(eq(replayCursors.jobId, id), eq(replayCursors.done, false)))
      .orderBy(asc(shards.shardIndex), asc(replayCursors.idx));
    const settings = {
      functionName: job.functionName,
      bisectBatchOnFunctionError: job.settings.bisectBatchOnFunctionError,
      maximumRetryAttempts: job.settings.maximumRetryAttempts,
      // Replays exist to deliver old records: none ages out, also in a job stored before that rule.
      maximumRecordAgeSeconds: -1,
      reportBatchItemFailures: job.settings.reportBatchItemFailures,
      onFailureUrl: job.settings.onFailureUrl,
    };
    const rate = job.ratePerSecond;
    const started = Date.now();
    let sent = 0;
    // After a wait the job is read again (once) before the next invocation: a pause or cancel
    // meanwhile may not have halted the run yet (from another process, between heartbeats).
    let waited = false;
    const sleep = async (ms: number) => {
      await this.#sleep(ms, halt.signal);
      waited = true;
    };
    const deps = { ...this.deps, sleep };
    const stopped = async () => {
      if (waited && this.#loop.running) {
        waited = false;
        this.#judge(halt, epoch, await this.#look(id));
      }
      if (halt.signal.reason === ('STREAM_DELETED' satisfies HaltReason)) throw new ShardlineError('STREAM_NOT_FOUND', streamDeleted(stream.name));
      return !this.#loop.running || halt.signal.aborted;
    };
    const tumblingMs = (job.settings.tumblingWindowSeconds ?? 0) * 1000;
    try {
      for (const { c, shard: shardRow } of cursors) {
        const shard = toShardInfo(shardRow);
        const limit = rate ? Math.min(job.settings.batchSize, rate) : job.settings.batchSize;
        const pages = new ReadAhead(
          (after) => readLane(this.handle, stream, shard, { index: c.laneIndex, count: c.laneCount }, after, limit, c.endSeq)
            .then((page) => {
              if (page.length === 0) return { batch: undefined };
              if (tumblingMs === 0) return { batch: formBatch(stream, filters, page, this.deps) };
              // As a live lane cuts its pages, except that a range's end ends its window (as a shard end would).
              const { records, start, end, laterFollows } = firstWindow(page, tumblingMs);
              // The state is known only when the batch goes out: room for AWS's largest is kept.
              const batch = formBatch(stream, filters, records, this.deps, STATE_RESERVE_BYTES);
              return { batch, window: { start, end, final: !batch.cut && (laterFollows || (page.length < limit && !page.cut)) } };
            }),
          c.cursorSeq ?? c.afterSeq, READ_AHEAD_PAGES);
        // Tumbling windows: the range's open window (kept in its cursor row) and its last record.
        const range: RangeWindow = {
          open: c.windowStart ? { start: c.windowStart, state: c.windowState ?? {} } : null,
          lastSeq: c.cursorSeq ?? c.afterSeq,
        };
        const close = async () => !range.open || (await closeWindow(deps, settings, {
          stream, shard, lastSeq: range.lastSeq,
          window: { start: range.open.start, end: new Date(range.open.start.getTime() + tumblingMs), state: range.open.state },
        }, this.#sink(job, epoch, c, [], range), stopped)) === 'DONE';
        try {
          for (;;) {
            if (await stopped()) return;
            const { batch, window } = await pages.next();
            if (!batch) {
              if (!(await close())) return;
              if (!(await this.#advance(job, epoch, c, null, true))) return;
              break;
            }
            if (window && range.open && range.open.start.getTime() !== window.start && !(await close())) return;
            if (batch.records.length === 0) {
              if (!(await this.#advance(job, epoch, c, batch.pageEnd, false))) return;
              continue;
            }
            if (rate) {
              const wait = started + (sent / rate) * 1000 - Date.now();
              if (wait > 0) await sleep(wait);
              if (await stopped()) return;
            }
            sent += batch.records.length;
            const state = window && range.open?.start.getTime() === window.start ? range.open.state : {};
            const result = await deliverBatch(deps, settings, {
              stream, shard, records: batch.records, eventRecords: batch.eventRecords, pageEnd: batch.pageEnd,
              ...(window ? { window: { start: new Date(window.start), end: new Date(window.end), state, final: window.final } } : {}),
            }, this.#sink(job, epoch, c, batch.records, range), stopped);
            if (result !== 'DONE') return;
          }
        } finally {
          await pages.close();
        }
      }
      // Its stream deleted meanwhile, the job read records being purged: it did not succeed.
      if (!(await this.streams.findById(job.streamId))) throw new ShardlineError('STREAM_NOT_FOUND', streamDeleted(stream.name));
      await this.#finish(job, epoch, 'SUCCEEDED', job.error);
    } catch (raw) {
      // A lost connection is no fault of the job: it goes back, unfinished, to be claimed again
      // (here or elsewhere) and resumes at its cursors. Left owned, it expires for the same end.
      if (isDatabaseUnavailable(raw)) {
        await this.handle.query(sql`
          update replay_jobs set owner = null, expires_at = null
           where id = ${job.id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING'`).catch(() => {});
        throw raw;
      }
      const error = coerceError(raw);
      await this.#finish(job, epoch, 'FAILED', error.message);
    }
  }

  /** Moves a cursor past records that need no invocation (filtered out), or marks it done. */
  async #advance(job: JobRow, epoch: number, c: CursorRow, to: LaneRecord | null, done: boolean): Promise<boolean> {
    const ok = await this.handle.transaction(async (tx) => {
      if (!(await this.#holds(tx, job.id, epoch))) return false;
      await tx.update(replayCursors).set({ ...(to ? { cursorSeq: to.seq } : {}), done })
        .where(and(eq(replayCursors.jobId, job.id), eq(replayCursors.idx, c.idx)));
      return true;
    });
    if (ok) this.events.emit('replays', { jobId: job.id });
    return ok;
  }

  /**
   * Persists a step of a batch in one prepared statement (a single round trip, atomic as a transaction):
   * the job's counters, fenced by owner and epoch (a pause or cancel bumps the epoch, so the
   * update finds no row and nothing else is written), the cursor, the invocation and any
   * failure rows.
   */
  #sink(job: JobRow, epoch: number, c: CursorRow, records: LaneRecord[], range: RangeWindow): BatchSink {
    // Records of this batch already counted as delivered: those up to the cursor.
    const start = c.cursorSeq ?? c.afterSeq;
    let counted = 0;
    while (counted < records.length && records[counted]!.seq <= start) counted++;
    const logMappingId = job.mappingId ?? `replay:${job.id}`;
    return {
      commit: async (progress: Progress) => {
        const discarded = progress.failures
          .filter((f) => f.kind === 'RETRIES_EXHAUSTED' || f.kind === 'RECORD_EXPIRED')
          .reduce((sum, f) => sum + f.recordCount, 0);
        let upTo = counted;
        if (progress.done) while (upTo < records.length && records[upTo]!.seq <= progress.done.seq) upTo++;
        const delivered = Math.max(0, upTo - counted - discarded);
        const held = sql`exists (select 1 from held)`;
        const steps = [sql`
          held as (
            update replay_jobs set delivered_records = delivered_records + ${delivered}::int, failed_records = failed_records + ${discarded}::int
             where id = ${job.id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING'
            returning id)`];
        const window = progress.window;
        if (progress.done || window) {
          // One update of the cursor row: two in one statement would leave only one in effect.
          const sets = [sql`delivered = delivered + ${delivered}::int`];
          if (progress.done) sets.push(sql`cursor_seq = ${String(progress.done.seq)}::bigint`);
          if (window === 'CLOSE') sets.push(sql`window_start = null, window_state = null`);
          else if (window) sets.push(sql`window_start = ${window.start.toISOString()}::timestamptz, window_state = ${JSON.stringify(window.state ?? {})}::jsonb`);
          steps.push(sql`
          moved as (
            update replay_cursors set ${sql.join(sets, sql`, `)}
             where job_id = ${job.id} and idx = ${c.idx}::int and ${held})`);
        }
        const owner = { mappingId: logMappingId, shardKey: c.shardKey, lane: c.laneIndex, lanes: c.laneCount, replayId: job.id };
        steps.push(stepLogCtes(owner, progress, held));
        const [row] = await this.handle.prepared<{ held: unknown; failed: unknown }>(sql`
          with ${sql.join(steps, sql`,`)}
          select (select count(*) from held)::int as held, ${FAILED_ROWS} as failed`);
        const ok = Number(row?.held ?? 0) === 1;
        if (ok && progress.failures.length > 0) {
          const stored = storedFailures(owner, progress, row!.failed);
          this.events.emit('failures', { mappingId: logMappingId, ids: stored.ids, ...(stored.rows ? { rows: stored.rows } : {}) });
        }
        if (ok && progress.done) {
          counted = upTo;
          range.lastSeq = progress.done.seq;
        }
        if (ok && window) range.open = window === 'CLOSE' ? null : { start: window.start, state: window.state ?? {} };
        if (ok) this.#progressed(job.id);
        return ok;
      },
    };
  }

  /** A progress event for watchers, coalesced per job to one every PROGRESS_EVENT_MS. */
  #progressed(jobId: string): void {
    let entry = this.#progress.get(jobId);
    if (!entry) this.#progress.set(jobId, (entry = { at: 0, timer: undefined }));
    if (entry.timer) return;
    const emit = () => {
      entry.timer = undefined;
      entry.at = Date.now();
      this.events.emit('replays', { jobId });
    };
    const wait = entry.at + PROGRESS_EVENT_MS - Date.now();
    if (wait <= 0) emit();
    else entry.timer = setTimeout(emit, wait);
  }

  /** Emits a job's pending progress event now (its run ended). */
  #flushProgress(jobId: string): void {
    const entry = this.#progress.get(jobId);
    this.#progress.delete(jobId);
    if (entry?.timer) {
      clearTimeout(entry.timer);
      this.events.emit('replays', { jobId });
    }
  }

  async #finish(job: JobRow, epoch: number, state: 'SUCCEEDED' | 'FAILED', error: string | null): Promise<void> {
    const rows = await this.handle.query(sql`
      update replay_jobs set state = ${state}, finished_at = now(), error = ${error}, owner = null, expires_at = null
       where id = ${job.id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING' returning 1`);
    if (rows.length > 0) this.events.emit('replays', { jobId: job.id });
  }
}
