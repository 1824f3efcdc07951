/**
 * A lane: the reader of one (mapping, shard, lane) lease while this process holds it. One batch
 * is in flight at a time, so a lane's batches reach the function in sequence order and a failed
 * batch is retried before anything after it.
 *
 * States (mirrored into the lease row for the lag figures):
 *   WAITING_FOR_PARENT  the shard's parent or adjacent parent is not yet read to its end
 *   IDLE                caught up; waits for a wake-up (new records) or the fallback poll; a
 *                       wake-up heard while busy ends the next wait at once
 *   PROCESSING          a batch is with the function (batchDelivery.ts)
 *   RETRYING            the head batch failed and waits to be retried; the back-off ends early
 *                       only when the lane stops, never for new records
 *   SHARD_END           a closed shard read to its end; the lane ends
 * The lane ends too when the mapping is disabled or deleted, or the lease is lost.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import type { EngineEvents } from '../events.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import type { MappingCatalog, MappingInfo } from '../mappings/mappingCatalog.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { type BatchSink, type DeliveryDeps, type Progress, closeWindow, deliverBatch } from './batchDelivery.ts';
import { ENVELOPE_BYTES, type FormedBatch, formBatch } from './batchForming.ts';
import { compileFilterPatterns } from './filterPatterns.ts';
import { type LaneRecord, readLane } from './laneReader.ts';
import type { Lease, LeaseState, LeaseTable } from './leaseTable.ts';
import { commitStep } from './stepCommit.ts';
import { STATE_LIMIT_BYTES, firstWindow, stateBytes, stateReserveBytes, windowStartOf } from './tumblingWindows.ts';
import { toShardInfo } from '../streams/streamCatalog.ts';
import { shards } from '../schema.ts';
import { eq } from 'drizzle-orm';

export interface LaneDeps extends DeliveryDeps {
  handle: DatabaseHandle;
  leases: LeaseTable;
  mappings: MappingCatalog;
  streams: StreamCatalog;
  /** How long an idle lane waits for a wake-up before it looks again. */
  idlePollMs: number;
  events: EngineEvents;
  onError: (error: Error) => void;
}

/** How long a lane trusts what it read of its mapping, stream and shard (changes invalidate at once). */
const CONTEXT_TTL_MS = 1000;
/** A window closes this long after its end, so a record that committed late still joins it. */
const WINDOW_CLOSE_GRACE_MS = 1000;
/** A filtered batch reads on through at most this many records (or batchSize) to fill up, as AWS's 10,000-record reads. */
const FILTER_SCAN_RECORDS = 10_000;

export class Lane {
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly #deliveryDeps: LaneDeps;
  /** Aborted by stop(): ends a back-off in progress. */
  readonly #stopping = new AbortController();
  /** Woken while not asleep, since the last read began. */
  #wokenAwake = false;
  #lease: Lease;
  #cached: { mapping: MappingInfo; stream: StreamInfo; shard: ShardInfo; at: number } | undefined;
  /** Bumped by invalidate(): a context read across it is not kept. */
  #contextVersion = 0;
  /** The stream this lane reads, once known (wake-ups are per stream). */
  streamId: number | undefined;
  readonly done: Promise<void>;

  /** `after`: an earlier lane of the same lease still finishing here; this one starts once it has. */
  constructor(
    private readonly deps: LaneDeps,
    lease: Lease,
    after?: Promise<void>,
  ) {
    this.#lease = lease;
    // Retry and throttle back-offs end early when the lane stops (never on new records or other
    // mappings' changes): a stopping engine hands its leases back without waiting them out.
    this.#deliveryDeps = { ...deps, sleep: (ms) => delay(ms, undefined, { signal: this.#stopping.signal }).catch(() => {}) };
    this.done = (async () => {
      await after;
      await this.#run();
    })().catch((error) => deps.onError(error instanceof Error ? error : new Error(String(error))));
  }

  get lease(): Lease {
    return this.#lease;
  }

  /** Waiting for its shard's parents to be read to their end. */
  get waitingForParent(): boolean {
    return this.#lease.state === 'WAITING_FOR_PARENT';
  }

  /** New records may be there (or a parent ended): look now instead of at the next poll. */
  wake(): void {
    // Not asleep (reading, invoking): the next sleep returns at once, or records committed
    // just after a read found none would wait a whole idle poll.
    if (this.#wake) this.#wake();
    else this.#wokenAwake = true;
  }

  /** The mapping changed (in this or another process): read it again before the next step. */
  invalidate(): void {
    this.#cached = undefined;
    this.#contextVersion++;
    this.wake();
  }

  /**
   * The mapping, stream and shard this lane works for, read at most every CONTEXT_TTL_MS (and
   * at once after invalidate()), so a busy lane does not re-read them for every batch.
   * Undefined when the lane should end: mapping deleted or disabled, lane beyond the
   * parallelization factor, stream or shard gone.
   */
  async #context(): Promise<{ mapping: MappingInfo; stream: StreamInfo; shard: ShardInfo } | undefined> {
    const cached = this.#cached;
    if (cached && Date.now() - cached.at < CONTEXT_TTL_MS) return cached;
    const version = this.#contextVersion;
    const mapping = await this.deps.mappings.find(this.#lease.mappingId);
    if (!mapping || !mapping.enabled) return undefined;
    if (this.#lease.lane >= mapping.parallelizationFactor) {
      // A lane beyond the factor (made by a heartbeat that read the factor just before it was
      // lowered) serves nothing: it goes, so nobody claims it again or waits for it to end.
      await this.deps.handle.query(sql`
        delete from leases l using event_source_mappings m
         where m.id = l.mapping_id and l.mapping_id = ${this.#lease.mappingId} and l.shard_key = ${this.#lease.shardKey}
           and l.lane = ${this.#lease.lane} and l.lane >= m.parallelization_factor`);
      return undefined;
    }
    this.streamId = mapping.streamId;
    const stream = await this.deps.streams.findById(mapping.streamId);
    const shard = stream && (await this.#shard());
    if (!stream || !shard) return undefined;
    const context = { mapping, stream, shard, at: Date.now() };
    // Invalidated during the read (the mapping changed): used this once, read again next time.
    if (version === this.#contextVersion) this.#cached = context;
    return context;
  }

  stop(): void {
    this.#stopped = true;
    this.#stopping.abort();
    this.wake();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped || this.#wokenAwake) {
        this.#wokenAwake = false;
        return resolve();
      }
      const timer = setTimeout(() => { this.#wake = undefined; resolve(); }, ms);
      this.#wake = () => { clearTimeout(timer); this.#wake = undefined; resolve(); };
    });
  }

  async #run(): Promise<void> {
    const { deps } = this;
    while (!this.#stopped) {
      // What this pass reads (context, then records) sees whatever a wake-up so far announced.
      this.#wokenAwake = false;
      const context = await this.#context();
      if (!context) return;
      const { mapping, stream } = context;
      let { shard } = context;

      if (this.#lease.state === 'WAITING_FOR_PARENT') {
        if (!(await this.#parentsDone(shard))) {
          await this.#sleep(deps.idlePollMs);
          continue;
        }
        if (!(await this.#save({ state: 'IDLE' }))) return;
      }

      const settings = {
        functionName: mapping.functionName,
        bisectBatchOnFunctionError: mapping.bisectBatchOnFunctionError,
        maximumRetryAttempts: mapping.maximumRetryAttempts,
        maximumRecordAgeSeconds: mapping.maximumRecordAgeSeconds,
        reportBatchItemFailures: mapping.functionResponseTypes.includes('ReportBatchItemFailures'),
        onFailureUrl: mapping.onFailureUrl,
      };
      const tumblingMs = mapping.tumblingWindowSeconds * 1000;
      const open = this.#lease.windowStart;
      const read = await readLane(deps.handle, stream, shard,
        { index: this.#lease.lane, count: mapping.parallelizationFactor }, this.#lease.checkpointSeq, mapping.batchSize);
      // Full: as many records as asked for, or as the byte budget let in; more may follow.
      const readFull = read.length === mapping.batchSize || read.cut;
      let page: LaneRecord[] = read;

      // Tumbling windows: close the open window once it has ended and holds no more records
      // (a later window's record arrived, the shard ended, or its end passed while idle).
      if (tumblingMs > 0 && open) {
        const openEnd = open.getTime() + tumblingMs;
        const nextIsLater = page.length > 0 && windowStartOf(page[0]!.arrivalMs, tumblingMs) > open.getTime();
        const endedIdle = page.length === 0 && (Date.now() >= openEnd + WINDOW_CLOSE_GRACE_MS || shard.closedAt !== null);
        // A state over 1 MB whose early end did not run (the lane stopped or lost its lease
        // between the batch that answered it and the final invocation): the window ends first.
        const overgrown = stateBytes(this.#lease.windowState) > STATE_LIMIT_BYTES;
        if (nextIsLater || endedIdle || overgrown) {
          if (!(await this.#save({ state: 'PROCESSING', durable: false }))) return;
          const result = await closeWindow(this.#deliveryDeps, settings, {
            stream, shard, window: { start: open, end: new Date(openEnd), state: this.#lease.windowState },
            lastSeq: this.#lease.checkpointSeq ?? 0n, terminatedEarly: overgrown,
          }, this.#sink(mapping.parallelizationFactor), this.#stoppedOrChanged(mapping));
          if (result === 'LOST') return;
          continue;
        }
        if (page.length === 0) {
          await this.#sleep(Math.min(deps.idlePollMs, Math.max(1, openEnd + WINDOW_CLOSE_GRACE_MS - Date.now())));
          continue;
        }
      }

      if (page.length === 0 && shard.closedAt === null) {
        // Idle: look whether the shard has closed since (a reshard or a rollover).
        shard = (await this.#shard()) ?? shard;
        context.shard = shard;
        // Read again before ending: a record may have committed after the empty read and before
        // the close (which waits for the shard's writers). Once the close is seen, a read sees all.
        if (shard.closedAt !== null) continue;
      }
      if (page.length === 0) {
        if (shard.closedAt !== null) {
          await this.#save({ state: 'SHARD_END' });
          return;
        }
        await this.#sleep(deps.idlePollMs);
        continue;
      }

      let window: { start: Date; end: Date; state: unknown; final: boolean } | undefined;
      if (tumblingMs > 0) {
        const { records: inWindow, start, end, laterFollows } = firstWindow(page, tumblingMs);
        const rest = laterFollows || (!readFull && (Date.now() >= end + WINDOW_CLOSE_GRACE_MS || shard.closedAt !== null));
        page = inWindow;
        window = {
          start: new Date(start), end: new Date(end),
          state: open && open.getTime() === start ? this.#lease.windowState : {},
          final: rest,
        };
      }

      let batch = this.#formBatch(stream, mapping, page, window ? stateReserveBytes(window.state) : 0);
      if (!window && mapping.filterPatterns.length > 0) {
        batch = await this.#fillFiltered(stream, shard, mapping, readFull, batch);
      }
      if (window && batch.cut) window.final = false;
      if (batch.records.length === 0) {
        // Everything on the page was filtered out: checkpoint past it without invoking.
        if (!(await this.#save({ state: 'IDLE', checkpoint: batch.pageEnd }))) return;
        continue;
      }
      const windowMs = mapping.maximumBatchingWindowSeconds * 1000;
      const waited = Date.now() - batch.records[0]!.arrivalMs;
      if (windowMs > 0 && batch.records.length < mapping.batchSize && !batch.cut && waited < windowMs && shard.closedAt === null && !window?.final) {
        await this.#sleep(Math.min(windowMs - waited, deps.idlePollMs));
        continue;
      }

      // The fence before any invocation: a lease taken from this process since it was read
      // (stolen, or expired and claimed) makes this write fail, and nothing is invoked.
      if (!(await this.#save({ state: 'PROCESSING', durable: false }))) return;
      const result = await deliverBatch(this.#deliveryDeps, settings, {
        stream, shard, records: batch.records, eventRecords: batch.eventRecords, pageEnd: batch.pageEnd,
        ...(window ? { window } : {}),
      }, this.#sink(mapping.parallelizationFactor), this.#stoppedOrChanged(mapping));
      if (result === 'LOST') return;
    }
  }

  /**
   * Asked by a batch before each of its steps: true when the lane stops or, after the first
   * step, when the mapping was disabled, deleted or updated since the batch was formed. The
   * batch then ends without moving the checkpoint and the loop re-reads the mapping, so a
   * failing batch stops retrying when disabled and a retrying lane picks up new settings.
   */
  #stoppedOrChanged(mapping: MappingInfo): () => Promise<boolean> {
    let first = true;
    return async () => {
      if (this.#stopped) return true;
      if (first) {
        first = false;
        return false;
      }
      const current = await this.deps.mappings.find(mapping.id);
      const changed = current?.version !== mapping.version;
      if (changed) this.#cached = undefined;
      return changed;
    };
  }

  /** Filters the page, then cuts it at the 6 MB payload limit. */
  #formBatch(stream: StreamInfo, mapping: MappingInfo, page: LaneRecord[], reserveBytes: number) {
    return formBatch(stream, compileFilterPatterns(mapping.filterPatterns, stream.kind), page, this.deps, reserveBytes);
  }

  /**
   * Filters run before batching (§4.8): while they leave the batch short of batchSize and the
   * page read was full, the records after it are read and filtered into the batch, up to
   * FILTER_SCAN_RECORDS examined, so sparse matches still make full batches. Only the matching
   * records are kept, so memory stays within one read and one payload.
   */
  async #fillFiltered(stream: StreamInfo, shard: ShardInfo, mapping: MappingInfo, pageFull: boolean, first: FormedBatch): Promise<FormedBatch> {
    const filters = compileFilterPatterns(mapping.filterPatterns, stream.kind);
    const lane = { index: this.#lease.lane, count: mapping.parallelizationFactor };
    let batch = first;
    let full = pageFull;
    let scanned = first.examined;
    while (full && !batch.cut && batch.records.length < mapping.batchSize && scanned < Math.max(FILTER_SCAN_RECORDS, mapping.batchSize) && !this.#stopped) {
      const page = await readLane(this.deps.handle, stream, shard, lane, batch.pageEnd.seq, mapping.batchSize);
      if (page.length === 0) break;
      full = page.length === mapping.batchSize || page.cut;
      const more = formBatch(stream, filters, page, this.deps, batch.bytes - ENVELOPE_BYTES, mapping.batchSize - batch.records.length, batch.records.length);
      if (more.examined === 0) return { ...batch, cut: true }; // the payload is full
      scanned += more.examined;
      batch = {
        records: [...batch.records, ...more.records],
        eventRecords: [...batch.eventRecords, ...more.eventRecords],
        pageEnd: more.pageEnd,
        cut: more.cut,
        bytes: more.bytes,
        examined: batch.examined + more.examined,
      };
    }
    return batch;
  }

  /** `lanes`: the mapping's parallelizationFactor, which this lane's number is one of (failure rows keep it). */
  #sink(lanes: number): BatchSink {
    return {
      commit: async (progress: Progress) => {
        const lease = this.#lease;
        // A batch with more to deliver after this step stays PROCESSING, so it is not stolen mid-batch.
        const state: LeaseState = progress.retrying ? 'RETRYING' : progress.pending ? 'PROCESSING' : 'IDLE';
        // A discard moves the checkpoint past records nobody acknowledged: the ledger keeps it.
        const discard = progress.failures.find((f) => f.kind === 'RETRIES_EXHAUSTED' || f.kind === 'RECORD_EXPIRED');
        const { saved, failures: stored } = await commitStep(this.deps.handle, this.deps.leases, lease, {
          state,
          ...(progress.done ? { checkpoint: { seq: progress.done.seq, ordinal: progress.done.ordinal } } : {}),
          consecutiveFailures: progress.consecutiveFailures,
          ...(progress.iteratorAgeMs !== undefined ? { iteratorAgeMs: progress.iteratorAgeMs } : {}),
          invoked: progress.invocation !== undefined,
          ...(progress.window === undefined ? {} : { window: progress.window === 'CLOSE' ? null : progress.window }),
        }, {
          ...(progress.invocation ? { invocation: progress.invocation } : {}),
          failures: progress.failures,
          ...(discard && progress.done ? {
            ledger: { fromSeq: lease.checkpointSeq, toSeq: progress.done.seq, reason: `discard ${discard.kind} ${discard.recordCount} record(s)` },
          } : {}),
        }, lanes);
        if (saved) {
          this.deps.events.emit('leases', { mappingId: lease.mappingId });
          if (stored.ids.length > 0) {
            // The rows ride along, so the failures feed need not read them back.
            this.deps.events.emit('failures', { mappingId: lease.mappingId, ids: stored.ids, ...(stored.rows ? { rows: stored.rows } : {}) });
          }
          this.#lease = {
            ...this.#lease,
            state,
            ...(progress.done ? { checkpointSeq: progress.done.seq, checkpointOrdinal: progress.done.ordinal } : {}),
            ...(progress.window === undefined ? {} : progress.window === 'CLOSE'
              ? { windowStart: null, windowState: null }
              : { windowStart: progress.window.start, windowState: progress.window.state }),
          };
        }
        return saved;
      },
    };
  }

  async #save(progress: { state: LeaseState; checkpoint?: LaneRecord; durable?: boolean }): Promise<boolean> {
    const lease = this.#lease;
    const ok = await this.deps.leases.save(lease, {
      state: progress.state,
      ...(progress.durable === false ? { durable: false } : {}),
      ...(progress.checkpoint ? { checkpoint: { seq: progress.checkpoint.seq, ordinal: progress.checkpoint.ordinal } } : {}),
    });
    if (ok) {
      this.#lease = {
        ...lease,
        state: progress.state,
        ...(progress.checkpoint ? { checkpointSeq: progress.checkpoint.seq, checkpointOrdinal: progress.checkpoint.ordinal } : {}),
      };
      // Figures changed (a filtered page checkpointed, a parent done, a shard ended): lag
      // subscribers hear it now. PROCESSING marks go with their step's event.
      if (progress.durable !== false) {
        this.deps.events.emit('leases', { mappingId: lease.mappingId, ...(progress.state === 'SHARD_END' ? { shardEnded: true } : {}) });
      }
    }
    return ok;
  }

  async #shard(): Promise<ShardInfo | undefined> {
    const [row] = await this.deps.handle.db.select().from(shards).where(eq(shards.key, this.#lease.shardKey));
    return row ? toShardInfo(row) : undefined;
  }

  /** True when every lane of the parent and adjacent parent shards is at SHARD_END for this mapping. */
  async #parentsDone(shard: ShardInfo): Promise<boolean> {
    const [row] = await this.deps.handle.query<{ pending: number }>(sql`
      select count(*)::int as pending
        from shards child
        join shards p on p.stream_id = child.stream_id and p.shard_index in (child.parent_index, child.adjacent_parent_index)
        join event_source_mappings m on m.id = ${this.#lease.mappingId}
        left join leases l on l.mapping_id = m.id and l.shard_key = p.key and l.lane < m.parallelization_factor
       where child.key = ${shard.key} and (l.state is null or l.state <> 'SHARD_END')`);
    return (row?.pending ?? 1) === 0;
  }
}
