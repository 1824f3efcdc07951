/**
 * The replay runner: runs replay jobs in this process, through the same delivery path as live
 * mappings (batchDelivery.ts) but with the job's own cursors, so live checkpoints never move.
 *
 * Like leases, a job has an owner, an expiry and an epoch: a process claims PENDING jobs (and
 * RUNNING ones whose owner stopped renewing), renews them every heartbeat, and every progress
 * write is fenced by the epoch — pause and cancel bump it, so the process running the job stops
 * at its next step and a job survives the death of its process, resuming at its cursors.
 *
 * A job runs in its own lane: one batch in flight, ranges in shard order (a parent shard's range
 * before its children's), at most ratePerSecond records a second, so it never starves the live
 * mappings of the function.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED.
 */
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { type BatchSink, type DeliveryDeps, type Progress, deliverBatch } from '../delivery/batchDelivery.ts';
import { formBatch } from '../delivery/batchForming.ts';
import { compileFilterPatterns } from '../delivery/filterPatterns.ts';
import { type LaneRecord, readLane } from '../delivery/laneReader.ts';
import { coerceError } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { failures, invocations, replayCursors, replayJobs, shards } from '../schema.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import { toShardInfo } from '../streams/streamCatalog.ts';

type JobRow = typeof replayJobs.$inferSelect;
type CursorRow = typeof replayCursors.$inferSelect;

export interface ReplayRunnerOptions { leaseTtlMs: number; heartbeatMs: number; maxJobs: number }

export class ReplayRunner {
  readonly #running = new Map<string, { epoch: number; done: Promise<void> }>();
  #state: 'STOPPED' | 'RUNNING' | 'STOPPING' = 'STOPPED';
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #off: (() => void) | undefined;

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly streams: StreamCatalog,
    private readonly deps: DeliveryDeps & { onError: (error: Error) => void },
    private readonly events: EngineEvents,
    readonly owner: string,
    private readonly options: ReplayRunnerOptions,
  ) {}

  async start(): Promise<void> {
    if (this.#state !== 'STOPPED') return;
    this.#state = 'RUNNING';
    this.#off = this.events.on('replays', () => this.#poke());
    await this.#tick();
    this.#schedule();
  }

  async stop(): Promise<void> {
    if (this.#state !== 'RUNNING') return;
    this.#state = 'STOPPING';
    clearTimeout(this.#timer);
    this.#off?.();
    await this.#ticking;
    await Promise.all([...this.#running.values()].map((r) => r.done));
    // Hand unfinished jobs back so another process picks them up at once.
    await this.handle.query(sql`update replay_jobs set owner = null, expires_at = null where owner = ${this.owner} and state = 'RUNNING'`)
      .catch((raw) => this.deps.onError(coerceError(raw)));
    this.#state = 'STOPPED';
  }

  #poke(): void {
    if (this.#state !== 'RUNNING') return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#beat(), 0);
  }

  #schedule(): void {
    if (this.#state === 'RUNNING') this.#timer = setTimeout(() => this.#beat(), this.options.heartbeatMs);
  }

  #beat(): void {
    if (this.#state !== 'RUNNING' || this.#ticking) return;
    this.#ticking = this.#tick().catch((raw) => this.deps.onError(coerceError(raw))).finally(() => {
      this.#ticking = undefined;
      this.#schedule();
    });
  }

  async #tick(): Promise<void> {
    const ttl = this.options.leaseTtlMs / 1000;
    await this.handle.query(sql`
      update replay_jobs set expires_at = now() + make_interval(secs => ${ttl}::float8)
       where owner = ${this.owner} and state = 'RUNNING'`);
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
      const done = this.#run(id, Number(epoch))
        .catch((raw) => this.deps.onError(coerceError(raw)))
        .finally(() => this.#running.delete(id));
      this.#running.set(id, { epoch: Number(epoch), done });
      this.events.emit('replays', { jobId: id });
    }
  }

  /** True while this process still holds the job at this epoch. */
  async #holds(tx: Database, id: string, epoch: number): Promise<boolean> {
    const rows = await this.handle.query(sql`
      select 1 from replay_jobs where id = ${id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING' for update`, tx);
    return rows.length === 1;
  }

  async #run(id: string, epoch: number): Promise<void> {
    const [job] = await this.handle.db.select().from(replayJobs).where(eq(replayJobs.id, id));
    if (!job) return;
    const stream = await this.streams.findById(job.streamId);
    if (!stream) return this.#finish(job, epoch, 'FAILED', 'The stream of this replay has been deleted.');
    const filters = compileFilterPatterns(job.settings.filterPatterns, stream.kind);
    const cursors = await this.handle.db.select({ c: replayCursors, shard: shards }).from(replayCursors)
      .innerJoin(shards, eq(shards.key, replayCursors.shardKey))
      .where(and(eq(replayCursors.jobId, id), eq(replayCursors.done, false)))
      .orderBy(asc(shards.shardIndex), asc(replayCursors.idx));
    const settings = {
      functionName: job.functionName,
      bisectBatchOnFunctionError: job.settings.bisectBatchOnFunctionError,
      maximumRetryAttempts: job.settings.maximumRetryAttempts,
      maximumRecordAgeSeconds: job.settings.maximumRecordAgeSeconds,
      reportBatchItemFailures: job.settings.reportBatchItemFailures,
      onFailureUrl: job.settings.onFailureUrl,
    };
    const rate = job.ratePerSecond;
    const started = Date.now();
    let sent = 0;
    const stopped = () => this.#state !== 'RUNNING';
    try {
      for (const { c, shard: shardRow } of cursors) {
        const shard = toShardInfo(shardRow);
        let position = c.cursorSeq ?? c.afterSeq;
        for (;;) {
          if (stopped()) return;
          const limit = rate ? Math.min(job.settings.batchSize, rate) : job.settings.batchSize;
          const page = await readLane(this.handle, stream, shard, { index: 0, count: 1 }, position, limit, c.endSeq);
          if (page.length === 0) {
            if (!(await this.#advance(job, epoch, c, null, true))) return;
            break;
          }
          const batch = formBatch(stream, filters, page, this.deps);
          if (batch.records.length === 0) {
            if (!(await this.#advance(job, epoch, c, batch.pageEnd, false))) return;
            position = batch.pageEnd.seq;
            continue;
          }
          if (rate) {
            const wait = started + (sent / rate) * 1000 - Date.now();
            if (wait > 0) await this.deps.sleep(wait);
          }
          sent += batch.records.length;
          const result = await deliverBatch(this.deps, settings,
            { stream, shard, records: batch.records, eventRecords: batch.eventRecords, pageEnd: batch.pageEnd },
            this.#sink(job, epoch, c, batch.records), stopped);
          if (result !== 'DONE') return;
          position = batch.pageEnd.seq;
        }
      }
      await this.#finish(job, epoch, 'SUCCEEDED', job.error);
    } catch (raw) {
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

  #sink(job: JobRow, epoch: number, c: CursorRow, records: LaneRecord[]): BatchSink {
    let counted = c.cursorSeq ?? c.afterSeq;
    const logMappingId = job.mappingId ?? `replay:${job.id}`;
    return {
      commit: async (progress: Progress) => {
        const discarded = progress.failures
          .filter((f) => f.kind === 'RETRIES_EXHAUSTED' || f.kind === 'RECORD_EXPIRED')
          .reduce((sum, f) => sum + f.recordCount, 0);
        const doneCount = progress.done
          ? records.filter((r) => r.seq > counted && r.seq <= progress.done!.seq).length
          : 0;
        let failureIds: number[] = [];
        const ok = await this.handle.transaction(async (tx) => {
          if (!(await this.#holds(tx, job.id, epoch))) return false;
          await tx.update(replayJobs).set({
            deliveredRecords: sql`${replayJobs.deliveredRecords} + ${Math.max(0, doneCount - discarded)}`,
            failedRecords: sql`${replayJobs.failedRecords} + ${discarded}`,
          }).where(eq(replayJobs.id, job.id));
          if (progress.done) {
            await tx.update(replayCursors).set({
              cursorSeq: progress.done.seq,
              delivered: sql`${replayCursors.delivered} + ${Math.max(0, doneCount - discarded)}`,
            }).where(and(eq(replayCursors.jobId, job.id), eq(replayCursors.idx, c.idx)));
          }
          if (progress.invocation) {
            await tx.insert(invocations).values({ mappingId: logMappingId, shardKey: c.shardKey, lane: 0, replayId: job.id, ...progress.invocation });
          }
          if (progress.failures.length > 0) {
            failureIds = (await tx.insert(failures)
              .values(progress.failures.map((f) => ({ mappingId: logMappingId, shardKey: c.shardKey, ...f })))
              .returning({ id: failures.id })).map((r) => r.id);
          }
          return true;
        });
        if (ok && failureIds.length > 0) this.events.emit('failures', { mappingId: logMappingId, ids: failureIds });
        if (ok && progress.done) counted = progress.done.seq;
        if (ok) this.events.emit('replays', { jobId: job.id });
        return ok;
      },
    };
  }

  async #finish(job: JobRow, epoch: number, state: 'SUCCEEDED' | 'FAILED', error: string | null): Promise<void> {
    const rows = await this.handle.query(sql`
      update replay_jobs set state = ${state}, finished_at = now(), error = ${error}, owner = null, expires_at = null
       where id = ${job.id} and owner = ${this.owner} and epoch = ${epoch} and state = 'RUNNING' returning 1`);
    if (rows.length > 0) this.events.emit('replays', { jobId: job.id });
  }
}
