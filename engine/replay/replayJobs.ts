/**
 * Replay jobs: start (or plan, for a dry run), pause, resume, cancel, and redrive of discarded
 * failures. The runner (replayRunner.ts) delivers them.
 *
 * Job states:
 *   PENDING → RUNNING          a process claimed the job (and claims it again after a crash)
 *   RUNNING ⇄ PAUSED           pauseReplay / resumeReplay (resume goes through PENDING)
 *   RUNNING → SUCCEEDED        every range delivered (a dry run is SUCCEEDED at once)
 *   RUNNING → FAILED           the job cannot go on (its stream or function was deleted)
 *   PENDING/RUNNING/PAUSED → CANCELLED   cancelReplay
 * Any other transition is refused with CONFLICT.
 */
import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { AuditLog } from '../audit.ts';
import type { DatabaseHandle } from '../db.ts';
import { compileFilterPatterns } from '../delivery/filterPatterns.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import type { FunctionCatalog } from '../functions/functionCatalog.ts';
import type { MappingCatalog } from '../mappings/mappingCatalog.ts';
import type { Position, RecordReader } from '../records/readRecords.ts';
import { failures, replayCursors, replayJobs, shards } from '../schema.ts';
import { shardIdOf } from '../streams/model.ts';
import { formatSequenceNumber, parseSequenceNumber } from '../streams/sequenceNumbers.ts';
import { type StreamCatalog, toShardInfo } from '../streams/streamCatalog.ts';
import { type PlannedRange, countRange, describePosition, scopeShards, windowEnd, windowStart } from './windowPlan.ts';

export type ReplayState = 'PENDING' | 'RUNNING' | 'PAUSED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
type JobRow = typeof replayJobs.$inferSelect;
export type ReplaySettings = JobRow['settings'];

export interface ReplayInput {
  streamName: string;
  from: Position;
  to?: Position | null;
  shardIds?: string[] | null;
  mappingId?: string | null;
  functionName?: string | null;
  batchSize?: number | null;
  filterPatterns?: string[] | null;
  ratePerSecond?: number | null;
  dryRun?: boolean | null;
}

export interface ReplayJobView {
  id: string;
  state: ReplayState;
  streamName: string;
  functionName: string;
  mappingId: string | null;
  from: string;
  to: string | null;
  totalRecords: number | null;
  totalBytes: number | null;
  deliveredRecords: number;
  failedRecords: number;
  dryRun: boolean;
  shards: { shardId: string; cursorSequenceNumber: string | null; delivered: number; done: boolean; total: number }[];
  requestedBy: string | null;
  createdAt: Date;
  finishedAt: Date | null;
  error: string | null;
  ratePerSecond: number | null;
}

/** Settings of a replay to a function without a mapping: retries are bounded so a replay ends. */
const FUNCTION_DEFAULTS: ReplaySettings = {
  batchSize: 100, filterPatterns: [], bisectBatchOnFunctionError: true, maximumRetryAttempts: 3,
  maximumRecordAgeSeconds: -1, reportBatchItemFailures: false, onFailureUrl: null,
};

export const replayNotFound = (id: string) => new ShardlineError('REPLAY_NOT_FOUND', `Replay job ${id} does not exist.`);

/** The most failures one redrive names (without ids it takes every discard not yet redriven). */
export const MAX_REDRIVE_IDS = 10_000;

export class ReplayJobs {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly streams: StreamCatalog,
    private readonly reader: RecordReader,
    private readonly mappings: MappingCatalog,
    private readonly functions: FunctionCatalog,
    private readonly audit: AuditLog,
    private readonly events: EngineEvents,
    private readonly ctx: { region: string; accountId: string },
  ) {}

  async start(input: ReplayInput, actor: string): Promise<ReplayJobView> {
    const stream = await this.streams.get(input.streamName);
    const mapping = input.mappingId ? await this.mappings.get(input.mappingId) : undefined;
    if (mapping && mapping.streamId !== stream.id) {
      throw invalidArgument(`mappingId ${mapping.id} reads another stream than ${stream.name}.`);
    }
    const functionName = input.functionName ?? mapping?.functionName;
    if (!functionName) throw invalidArgument('Give mappingId (deliver with a mapping\'s function and settings) or functionName.');
    await this.functions.get(functionName);
    const settings: ReplaySettings = mapping ? {
      batchSize: mapping.batchSize, filterPatterns: mapping.filterPatterns,
      bisectBatchOnFunctionError: mapping.bisectBatchOnFunctionError, maximumRetryAttempts: mapping.maximumRetryAttempts,
      // A replay exists to deliver old records: none is discarded for its age (as in a redrive).
      maximumRecordAgeSeconds: -1,
      reportBatchItemFailures: mapping.functionResponseTypes.includes('ReportBatchItemFailures'), onFailureUrl: mapping.onFailureUrl,
      // Replayed events have the live ones' shape: windows included.
      tumblingWindowSeconds: mapping.tumblingWindowSeconds,
    } : { ...FUNCTION_DEFAULTS };
    if (input.batchSize != null) {
      const max = 10_000; // Kinesis and DynamoDB alike (§4.2)
      if (!Number.isInteger(input.batchSize) || input.batchSize < 1 || input.batchSize > max) {
        throw invalidArgument(`batchSize must be an integer between 1 and ${max}, got ${input.batchSize}.`);
      }
      settings.batchSize = input.batchSize;
    }
    if (input.filterPatterns != null) settings.filterPatterns = input.filterPatterns;
    const filters = compileFilterPatterns(settings.filterPatterns, stream.kind, 'filterPatterns');
    if (input.ratePerSecond != null && (!Number.isInteger(input.ratePerSecond) || input.ratePerSecond < 1 || input.ratePerSecond > 1_000_000)) {
      throw invalidArgument(`ratePerSecond must be an integer between 1 and 1000000, got ${input.ratePerSecond}.`);
    }
    // A window that ends before it starts is a mistake in the request, not an empty window.
    if (input.from.type === 'AT_TIMESTAMP' && input.to?.type === 'AT_TIMESTAMP' && input.from.timestamp && input.to.timestamp
      && input.to.timestamp.getTime() < input.from.timestamp.getTime()) {
      throw invalidArgument(`to.timestamp (${input.to.timestamp.toISOString()}) is before from.timestamp (${input.from.timestamp.toISOString()}).`);
    }
    const fromSeq = (input.from.type === 'AT_SEQUENCE_NUMBER' || input.from.type === 'AFTER_SEQUENCE_NUMBER') && input.from.sequenceNumber
      ? parseSequenceNumber(input.from.sequenceNumber, 'from.sequenceNumber') : undefined;
    const toSeq = input.to?.type === 'AT_SEQUENCE_NUMBER' && input.to.sequenceNumber
      ? parseSequenceNumber(input.to.sequenceNumber, 'to.sequenceNumber') : undefined;
    if (fromSeq !== undefined && toSeq !== undefined && toSeq < fromSeq) {
      throw invalidArgument(`to.sequenceNumber (${input.to!.sequenceNumber}) is before from.sequenceNumber (${input.from.sequenceNumber}).`);
    }
    const scope = await scopeShards(this.reader, stream, input.shardIds);
    const starts = await windowStart(this.reader, scope, input.from);
    const ends = await windowEnd(this.handle, this.reader, scope, input.to);
    // The shards are counted at once (on Postgres, over several connections).
    const ranges: PlannedRange[] = await Promise.all(scope.map(async (shard) => {
      const afterSeq = starts.get(shard.key)!;
      const endSeq = ends.get(shard.key)!;
      const { total, bytes } = await countRange(this.handle, stream, shard, afterSeq, endSeq, filters, this.ctx);
      return { shard, afterSeq, endSeq, total, bytes };
    }));
    const dryRun = input.dryRun ?? false;
    const id = randomUUID();
    await this.handle.transaction(async (tx) => {
      await tx.insert(replayJobs).values({
        id, streamId: stream.id, functionName, mappingId: mapping?.id ?? null,
        fromSpec: describePosition(input.from), toSpec: input.to ? describePosition(input.to) : null,
        settings, ratePerSecond: input.ratePerSecond ?? null, dryRun,
        state: dryRun ? 'SUCCEEDED' : 'PENDING',
        totalRecords: ranges.reduce((sum, r) => sum + r.total, 0),
        totalBytes: ranges.reduce((sum, r) => sum + r.bytes, 0),
        requestedBy: actor, finishedAt: dryRun ? sql`now()` : null,
      });
      if (ranges.length > 0) {
        await tx.insert(replayCursors).values(ranges.map((r, idx) => ({
          jobId: id, idx, shardKey: r.shard.key, afterSeq: r.afterSeq, endSeq: r.endSeq, total: r.total, done: dryRun || r.total === 0,
        })));
      }
      await this.audit.record('replay.start', `replay:${id}`, { ...input, from: describePosition(input.from), to: input.to ? describePosition(input.to) : null }, actor, tx);
    });
    this.events.emit('replays', { jobId: id });
    return this.get(id);
  }

  /** Re-delivers the records of discarded failures as a replay job; marks them redriven by it. */
  async redrive(mappingId: string, failureIds: string[] | null | undefined, functionName: string | null | undefined, actor: string): Promise<ReplayJobView> {
    const mapping = await this.mappings.get(mappingId);
    const stream = await this.mappings.streamOf(mapping);
    const target = functionName ?? mapping.functionName;
    await this.functions.get(target);
    if (failureIds && failureIds.length > MAX_REDRIVE_IDS) {
      throw new ShardlineError('LIMIT_EXCEEDED', `failureIds holds ${failureIds.length} ids; a redrive takes at most ${MAX_REDRIVE_IDS}.`);
    }
    const ids = failureIds?.map((id) => {
      // Past 15 digits it is no id of ours (and would be out of bigint's range for the query).
      if (!/^\d{1,15}$/.test(id)) throw new ShardlineError('FAILURE_NOT_FOUND', `Failure ${id} does not exist.`);
      return Number(id);
    });
    // The candidates, counted below; the transaction at the end takes those still free.
    const rows = await this.handle.db.select().from(failures).where(and(
      eq(failures.mappingId, mappingId),
      inArray(failures.kind, ['RETRIES_EXHAUSTED', 'RECORD_EXPIRED']),
      // One array parameter: a list of ids as parameters would run out of them past 65,535.
      ids ? sql`${failures.id} = any(${sql.param(ids)}::bigint[])` : isNull(failures.redrivenBy),
    )).orderBy(asc(failures.id));
    if (ids) {
      const found = new Set(rows.map((r) => r.id));
      const missing = ids.filter((id) => !found.has(id));
      if (missing.length > 0) {
        const named = missing.length > 10 ? `${missing.slice(0, 10).join(', ')} and ${missing.length - 10} more` : missing.join(', ');
        throw new ShardlineError('FAILURE_NOT_FOUND', `Failure ${named} is not a discarded batch of mapping ${mappingId}.`);
      }
    }
    const id = randomUUID();
    const settings: ReplaySettings = {
      // The mapping's filter: the discarded batches held only the records it let through.
      batchSize: mapping.batchSize, filterPatterns: mapping.filterPatterns, bisectBatchOnFunctionError: mapping.bisectBatchOnFunctionError,
      maximumRetryAttempts: mapping.maximumRetryAttempts === -1 ? FUNCTION_DEFAULTS.maximumRetryAttempts : mapping.maximumRetryAttempts,
      maximumRecordAgeSeconds: -1, reportBatchItemFailures: mapping.functionResponseTypes.includes('ReportBatchItemFailures'),
      onFailureUrl: mapping.onFailureUrl, tumblingWindowSeconds: mapping.tumblingWindowSeconds,
    };
    const ranges: { failureId: number; shardKey: number; afterSeq: bigint; endSeq: bigint; lane: number; lanes: number; total: number }[] = [];
    const shardRows = await this.handle.db.select().from(shards).where(eq(shards.streamId, stream.id));
    // Counted as the runner delivers: the failed lane's records only (the range holds the other
    // lanes' records in between), and only those the filters pass.
    const filters = compileFilterPatterns(settings.filterPatterns, stream.kind);
    for (const f of rows) {
      const shard = shardRows.find((s) => s.key === f.shardKey);
      if (!shard) continue;
      const { total } = await countRange(this.handle, stream, toShardInfo(shard), f.firstSeq - 1n, f.lastSeq, filters, this.ctx, { index: f.lane, count: f.lanes });
      ranges.push({ failureId: f.id, shardKey: f.shardKey, afterSeq: f.firstSeq - 1n, endSeq: f.lastSeq, lane: f.lane, lanes: f.lanes, total });
    }
    // Retention trims the oldest first: a batch is whole while its first record is kept.
    const kept = ranges.length === 0 ? [] : await this.handle.query<{ id: unknown }>(sql`
      select f.id from unnest(${sql.param(ranges.map((r) => r.failureId))}::bigint[], ${sql.param(ranges.map((r) => r.shardKey))}::bigint[],
                              ${sql.param(ranges.map((r) => String(r.afterSeq + 1n)))}::text[]) as f(id, k, first_seq)
       where exists (select 1 from records r where r.shard_key = f.k and r.seq = f.first_seq::bigint
                        and r.arrived_at >= now() - make_interval(hours => ${stream.retentionHours}::int))`);
    const keptIds = new Set(kept.map((r) => Number(r.id)));
    await this.handle.transaction(async (tx) => {
      // Taking the failures and marking them is one step: a concurrent redrive waits on these
      // rows, then finds them redriven and leaves them, so each discard goes to one job. Named
      // ids are taken even when redriven already (an explicit redrive again); they were counted
      // above, outside the transaction, as reading records takes a while.
      const locked = rows.length === 0 ? [] : await tx.select({ id: failures.id }).from(failures).where(and(
        sql`${failures.id} = any(${sql.param(rows.map((r) => r.id))}::bigint[])`,
        ids ? undefined : isNull(failures.redrivenBy),
      )).orderBy(asc(failures.id)).for('update');
      const taken = locked.map((r) => r.id);
      const takenIds = new Set(taken);
      const mine = ranges.filter((r) => takenIds.has(r.failureId));
      const partlyGone = mine.filter((r) => !keptIds.has(r.failureId)).map((r) => r.failureId);
      await tx.insert(replayJobs).values({
        id, streamId: stream.id, functionName: target, mappingId, settings, dryRun: false, state: 'PENDING',
        fromSpec: taken.length > 0 ? `REDRIVE ${taken.join(',')}` : 'REDRIVE none', toSpec: null, redriveOf: taken,
        totalRecords: mine.reduce((sum, r) => sum + r.total, 0), requestedBy: actor,
        error: partlyGone.length > 0 ? `Records of failure ${partlyGone.join(', ')} are past the stream's retention and cannot be redriven.` : null,
      });
      // In slices: each row is nine parameters, and a statement holds at most 65,535.
      for (let from = 0; from < mine.length; from += 1000) {
        await tx.insert(replayCursors).values(mine.slice(from, from + 1000).map((r, i) => ({
          jobId: id, idx: from + i, shardKey: r.shardKey, afterSeq: r.afterSeq, endSeq: r.endSeq, laneIndex: r.lane, laneCount: r.lanes, total: r.total, done: r.total === 0,
        })));
      }
      if (taken.length > 0) await tx.update(failures).set({ redrivenBy: id }).where(sql`${failures.id} = any(${sql.param(taken)}::bigint[])`);
      await this.audit.record('failures.redrive', `mapping:${mappingId}`, { failureIds: taken, functionName: target, replayId: id }, actor, tx);
    });
    this.events.emit('replays', { jobId: id });
    return this.get(id);
  }

  pause(id: string, actor: string) {
    return this.#transition(id, ['PENDING', 'RUNNING'], 'PAUSED', 'replay.pause', actor);
  }

  resume(id: string, actor: string) {
    return this.#transition(id, ['PAUSED'], 'PENDING', 'replay.resume', actor);
  }

  cancel(id: string, actor: string) {
    return this.#transition(id, ['PENDING', 'RUNNING', 'PAUSED'], 'CANCELLED', 'replay.cancel', actor);
  }

  async #transition(id: string, from: ReplayState[], to: ReplayState, action: string, actor: string): Promise<ReplayJobView> {
    const current = await this.#row(id);
    if (!from.includes(current.state)) {
      throw new ShardlineError('CONFLICT', `Replay ${id} is ${current.state}; ${action.split('.')[1]} needs it ${from.join(' or ')}.`);
    }
    await this.handle.transaction(async (tx) => {
      const updated = await tx.update(replayJobs).set({
        state: to,
        ...(to === 'CANCELLED' ? { finishedAt: sql`now()` } : {}),
        // Handing the job back: the epoch bump fences the process running it.
        ...(to !== 'PENDING' ? {} : { owner: null, expiresAt: null }),
        epoch: sql`${replayJobs.epoch} + 1`,
      }).where(and(eq(replayJobs.id, id), inArray(replayJobs.state, from))).returning({ id: replayJobs.id });
      if (updated.length === 0) throw new ShardlineError('CONFLICT', `Replay ${id} changed state meanwhile; try again.`);
      await this.audit.record(action, `replay:${id}`, null, actor, tx);
    });
    this.events.emit('replays', { jobId: id, stateChanged: true });
    return this.get(id);
  }

  async #row(id: string): Promise<JobRow> {
    const [row] = await this.handle.db.select().from(replayJobs).where(eq(replayJobs.id, id));
    if (!row) throw replayNotFound(id);
    return row;
  }

  async find(id: string): Promise<ReplayJobView | undefined> {
    const [row] = await this.handle.db.select().from(replayJobs).where(eq(replayJobs.id, id));
    return row ? this.#view(row) : undefined;
  }

  async get(id: string): Promise<ReplayJobView> {
    return this.#view(await this.#row(id));
  }

  async list(state?: ReplayState | null): Promise<ReplayJobView[]> {
    const rows = await this.handle.db.select().from(replayJobs)
      .where(state ? eq(replayJobs.state, state) : undefined).orderBy(sql`${replayJobs.createdAt} desc`).limit(500);
    return this.#views(rows);
  }

  async #view(row: JobRow): Promise<ReplayJobView> {
    return (await this.#views([row]))[0]!;
  }

  /** The views of some jobs, their cursors read in one query (a list polled by dashboards). */
  async #views(rows: JobRow[]): Promise<ReplayJobView[]> {
    if (rows.length === 0) return [];
    const all = await this.handle.db.select({ c: replayCursors, shardIndex: shards.shardIndex }).from(replayCursors)
      .innerJoin(shards, eq(shards.key, replayCursors.shardKey))
      .where(sql`${replayCursors.jobId} = any(${sql.param(rows.map((r) => r.id))}::text[])`)
      .orderBy(asc(replayCursors.jobId), asc(replayCursors.idx));
    const byJob = new Map<string, typeof all>();
    for (const entry of all) {
      const list = byJob.get(entry.c.jobId) ?? [];
      list.push(entry);
      byJob.set(entry.c.jobId, list);
    }
    const names = new Map<number, string | undefined>();
    for (const streamId of new Set(rows.map((r) => r.streamId))) names.set(streamId, (await this.streams.findById(streamId))?.name);
    return rows.map((row) => this.#viewOf(row, byJob.get(row.id) ?? [], names.get(row.streamId)));
  }

  #viewOf(row: JobRow, cursors: { c: typeof replayCursors.$inferSelect; shardIndex: number }[], streamName: string | undefined): ReplayJobView {
    const byShard = new Map<number, ReplayJobView['shards'][number]>();
    for (const { c, shardIndex } of cursors) {
      const entry = byShard.get(shardIndex) ?? { shardId: shardIdOf(shardIndex), cursorSequenceNumber: null, delivered: 0, done: true, total: 0 };
      entry.delivered += c.delivered;
      entry.total += c.total;
      entry.done &&= c.done;
      if (c.cursorSeq !== null) entry.cursorSequenceNumber = formatSequenceNumber(c.cursorSeq);
      byShard.set(shardIndex, entry);
    }
    return {
      id: row.id, state: row.state, streamName: streamName ?? '(deleted)', functionName: row.functionName,
      mappingId: row.mappingId, from: row.fromSpec, to: row.toSpec, totalRecords: row.totalRecords, totalBytes: row.totalBytes,
      deliveredRecords: row.deliveredRecords, failedRecords: row.failedRecords, dryRun: row.dryRun,
      shards: [...byShard.values()], requestedBy: row.requestedBy, createdAt: row.createdAt, finishedAt: row.finishedAt,
      error: row.error, ratePerSecond: row.ratePerSecond,
    };
  }
}
