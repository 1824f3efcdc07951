/**
 * Event source mappings: create, update, delete, look up — with AWS Lambda's parameter ranges,
 * defaults and validation (aws-semantics §4.2). An invalid input is rejected whole with
 * INVALID_ARGUMENT naming the field and its range, and nothing is written. Every update bumps
 * `version`, which running lanes compare to pick the change up without a restart.
 */
import { randomUUID } from 'node:crypto';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { compileFilterPatterns } from '../delivery/filterPatterns.ts';
import { MAX_URL_LENGTH } from '../functions/functionCatalog.ts';
import { ShardlineError, invalidArgument, streamNotFound } from '../errors.ts';
import { eventSourceMappings, functions, leases, streams } from '../schema.ts';
import { recordCheckpointMoves } from './checkpointMoves.ts';
import { LOCAL_ACTOR } from '../audit.ts';
import type { StreamInfo } from '../streams/model.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';

export type StartingPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
type MappingRow = typeof eventSourceMappings.$inferSelect;

export interface MappingInfo {
  id: string;
  streamId: number;
  functionName: string;
  state: 'ENABLED' | 'DISABLED';
  enabled: boolean;
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  startingPosition: StartingPosition;
  startingPositionTimestamp: Date | null;
  parallelizationFactor: number;
  bisectBatchOnFunctionError: boolean;
  maximumRetryAttempts: number;
  maximumRecordAgeSeconds: number;
  functionResponseTypes: string[];
  filterPatterns: string[];
  tumblingWindowSeconds: number;
  onFailureUrl: string | null;
  version: number;
  createdAt: Date;
}

export interface MappingInput {
  streamName: string;
  functionName: string;
  enabled?: boolean | null;
  batchSize?: number | null;
  maximumBatchingWindowSeconds?: number | null;
  startingPosition?: string | null;
  startingPositionTimestamp?: Date | null;
  parallelizationFactor?: number | null;
  bisectBatchOnFunctionError?: boolean | null;
  maximumRetryAttempts?: number | null;
  maximumRecordAgeSeconds?: number | null;
  functionResponseTypes?: string[] | null;
  filterPatterns?: string[] | null;
  tumblingWindowSeconds?: number | null;
  onFailureUrl?: string | null;
}

type Settable = Omit<MappingInput, 'streamName' | 'startingPosition' | 'startingPositionTimestamp'>;
export type MappingUpdate = { [K in keyof Settable]?: Settable[K] | null };

export function toMappingInfo(row: MappingRow): MappingInfo {
  return {
    id: row.id,
    streamId: row.streamId,
    functionName: row.functionName,
    state: row.enabled ? 'ENABLED' : 'DISABLED',
    enabled: row.enabled,
    batchSize: row.batchSize,
    maximumBatchingWindowSeconds: row.maximumBatchingWindowSeconds,
    startingPosition: row.startingPosition,
    startingPositionTimestamp: row.startingPositionTimestamp,
    parallelizationFactor: row.parallelizationFactor,
    bisectBatchOnFunctionError: row.bisectBatchOnFunctionError,
    maximumRetryAttempts: row.maximumRetryAttempts,
    maximumRecordAgeSeconds: row.maximumRecordAgeSeconds,
    functionResponseTypes: row.functionResponseTypes,
    filterPatterns: row.filterPatterns,
    tumblingWindowSeconds: row.tumblingWindowSeconds,
    onFailureUrl: row.onFailureUrl,
    version: row.version,
    createdAt: row.createdAt,
  };
}

function range(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${field} must be an integer between ${min} and ${max}, got ${value}.`);
  }
  return value;
}

/** Validates the settable parameters shared by create and update; returns the normalised values. */
function validateSettings(kind: StreamInfo['kind'], input: MappingUpdate): Partial<typeof eventSourceMappings.$inferInsert> {
  const out: Partial<typeof eventSourceMappings.$inferInsert> = {};
  if (input.batchSize != null) out.batchSize = range('batchSize', input.batchSize, 1, 10_000);
  if (input.maximumBatchingWindowSeconds != null) {
    out.maximumBatchingWindowSeconds = range('maximumBatchingWindowSeconds', input.maximumBatchingWindowSeconds, 0, 300);
  }
  if (input.parallelizationFactor != null) out.parallelizationFactor = range('parallelizationFactor', input.parallelizationFactor, 1, 10);
  if (input.maximumRetryAttempts != null) out.maximumRetryAttempts = range('maximumRetryAttempts', input.maximumRetryAttempts, -1, 10_000);
  if (input.maximumRecordAgeSeconds != null) {
    const age = input.maximumRecordAgeSeconds;
    if (!(age === -1 || (Number.isInteger(age) && age >= 60 && age <= 604_800))) {
      throw invalidArgument(`maximumRecordAgeSeconds must be -1 or an integer between 60 and 604800, got ${age}.`);
    }
    out.maximumRecordAgeSeconds = age;
  }
  if (input.tumblingWindowSeconds != null) {
    out.tumblingWindowSeconds = range('tumblingWindowSeconds', input.tumblingWindowSeconds, 0, 900);
  }
  if (input.functionResponseTypes != null) {
    for (const type of input.functionResponseTypes) {
      if (type !== 'ReportBatchItemFailures') {
        throw invalidArgument(`functionResponseTypes may only contain ReportBatchItemFailures, got ${type}.`);
      }
    }
    out.functionResponseTypes = [...new Set(input.functionResponseTypes)];
  }
  if (input.filterPatterns != null) {
    compileFilterPatterns(input.filterPatterns, kind, 'filterPatterns');
    out.filterPatterns = input.filterPatterns;
  }
  if (input.onFailureUrl !== undefined) out.onFailureUrl = input.onFailureUrl === null ? null : validateUrl(input.onFailureUrl);
  if (input.bisectBatchOnFunctionError != null) out.bisectBatchOnFunctionError = input.bisectBatchOnFunctionError;
  if (input.enabled != null) out.enabled = input.enabled;
  return out;
}

/** One mapping per stream and function, as AWS: CONFLICT when the stream already has one to it (its row locked by the caller). */
async function refuseSecondMapping(tx: Database, stream: StreamInfo, functionName: string): Promise<void> {
  const [existing] = await tx.select({ id: eventSourceMappings.id }).from(eventSourceMappings)
    .where(and(eq(eventSourceMappings.streamId, stream.id), eq(eventSourceMappings.functionName, functionName)));
  if (existing) {
    throw new ShardlineError('CONFLICT',
      `A mapping of stream ${stream.name} to function ${functionName} already exists (${existing.id}); update or delete it.`);
  }
}

function validateUrl(value: string): string {
  if (value.length > MAX_URL_LENGTH) throw invalidArgument(`onFailureUrl must be at most ${MAX_URL_LENGTH} characters, got ${value.length}.`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(`onFailureUrl must be an absolute http:// or https:// URL, got "${value.slice(0, 200)}".`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidArgument(`onFailureUrl must use http:// or https://, got ${url.protocol}.`);
  }
  if (url.username || url.password) throw invalidArgument('onFailureUrl must not carry credentials (user:password@).');
  return value;
}

export const mappingNotFound = (id: string) =>
  new ShardlineError('MAPPING_NOT_FOUND', `Event source mapping ${id} does not exist.`);

export class MappingCatalog {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly streams: StreamCatalog,
  ) {}

  async create(input: MappingInput): Promise<MappingInfo> {
    const stream = await this.streams.get(input.streamName);
    await this.#requireFunction(input.functionName);
    const startingPosition = (input.startingPosition ?? 'LATEST') as StartingPosition;
    if (!['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'].includes(startingPosition)) {
      throw invalidArgument(`startingPosition must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got ${startingPosition}.`);
    }
    if (startingPosition === 'AT_TIMESTAMP') {
      if (stream.kind !== 'KINESIS') throw invalidArgument('startingPosition AT_TIMESTAMP applies to KINESIS streams only.');
      if (!input.startingPositionTimestamp) throw invalidArgument('startingPositionTimestamp is required with startingPosition AT_TIMESTAMP.');
      if (input.startingPositionTimestamp.getTime() > Date.now()) {
        throw invalidArgument('startingPositionTimestamp must not be in the future.');
      }
    } else if (input.startingPositionTimestamp) {
      throw invalidArgument('startingPositionTimestamp is only allowed with startingPosition AT_TIMESTAMP.');
    }
    const settings = validateSettings(stream.kind, input);
    // The stream's row locked: concurrent creates and updates of its mappings take turns, so two
    // cannot both find no mapping to this function and both make one.
    const row = await this.handle.transaction(async (tx) => {
      const [live] = await tx.select({ id: streams.id }).from(streams).where(and(eq(streams.id, stream.id), isNull(streams.deletedAt))).for('update');
      if (!live) throw streamNotFound(stream.name);
      await refuseSecondMapping(tx, stream, input.functionName);
      const [inserted] = await tx.insert(eventSourceMappings).values({
        id: randomUUID(),
        streamId: stream.id,
        functionName: input.functionName,
        enabled: true,
        batchSize: 100,
        maximumBatchingWindowSeconds: 0,
        startingPosition,
        startingPositionTimestamp: input.startingPositionTimestamp ?? null,
        parallelizationFactor: 1,
        bisectBatchOnFunctionError: false,
        maximumRetryAttempts: -1,
        maximumRecordAgeSeconds: -1,
        functionResponseTypes: [],
        filterPatterns: [],
        tumblingWindowSeconds: 0,
        onFailureUrl: null,
        ...settings,
      }).returning();
      return inserted!;
    });
    return toMappingInfo(row);
  }

  async update(id: string, input: MappingUpdate): Promise<MappingInfo> {
    const current = await this.get(id);
    const stream = await this.streamOf(current);
    if (input.functionName != null) await this.#requireFunction(input.functionName);
    const settings = validateSettings(stream.kind, input);
    if (input.functionName != null) settings.functionName = input.functionName;
    // One transaction, the mapping's row locked first: a heartbeat making leases (createLeases)
    // sees the new factor only with its lanes already in place, and concurrent updates take turns.
    const row = await this.handle.transaction(async (tx) => {
      const [locked] = await tx.select({ factor: eventSourceMappings.parallelizationFactor, tumbling: eventSourceMappings.tumblingWindowSeconds })
        .from(eventSourceMappings).where(eq(eventSourceMappings.id, id)).for('update');
      if (!locked) throw mappingNotFound(id);
      if (input.functionName != null && input.functionName !== current.functionName) {
        await tx.select({ id: streams.id }).from(streams).where(eq(streams.id, stream.id)).for('update');
        await refuseSecondMapping(tx, stream, input.functionName);
      }
      const [updated] = await tx.update(eventSourceMappings)
        .set({ ...settings, version: sql`${eventSourceMappings.version} + 1`, updatedAt: sql`now()` })
        .where(eq(eventSourceMappings.id, id)).returning();
      const relane = settings.parallelizationFactor !== undefined && settings.parallelizationFactor !== locked.factor;
      const rewindow = settings.tumblingWindowSeconds !== undefined && settings.tumblingWindowSeconds !== locked.tumbling;
      if (relane || rewindow) {
        await this.#restartOpenWindows(tx, id, relane
          ? `parallelizationFactor ${locked.factor} -> ${settings.parallelizationFactor}`
          : `tumblingWindowSeconds ${locked.tumbling} -> ${settings.tumblingWindowSeconds}`);
      }
      if (relane) await this.#relane(tx, id, locked.factor, settings.parallelizationFactor!);
      return updated!;
    });
    return toMappingInfo(row);
  }

  /**
   * A lane's open tumbling window holds state counting the window's records so far. A new
   * factor regroups the keys, and a new window length moves the bounds: that state no longer
   * belongs to any window. Each lane with an open window goes back to the last record before
   * the window's start, so the window's records come again and are counted afresh (at least
   * once, never lost from an aggregate), fenced like a seek and written to the ledger.
   */
  async #restartOpenWindows(tx: Database, id: string, reason: string): Promise<void> {
    const moved = await this.handle.query<{ shard_key: unknown; lane: number; from_seq: string | null; to_seq: string | null }>(sql`
      with open as (
        select o.shard_key, o.lane, o.checkpoint_seq, b.seq, b.ordinal from leases o
          left join lateral (
            select r.seq, r.ordinal from records r
             where r.shard_key = o.shard_key and r.arrived_at < o.window_start
             order by r.seq desc limit 1) b on true
         where o.mapping_id = ${id} and o.window_start is not null
      )
      update leases l
         set checkpoint_seq = case when o.checkpoint_seq is null or (o.seq is not null and o.seq >= o.checkpoint_seq) then l.checkpoint_seq else o.seq end,
             checkpoint_ordinal = case when o.checkpoint_seq is null or (o.seq is not null and o.seq >= o.checkpoint_seq) then l.checkpoint_ordinal else coalesce(o.ordinal, 0) end,
             checkpoint_is_start = false, window_start = null, window_state = null,
             owner = null, expires_at = null, epoch = l.epoch + 1
        from open o
       where l.mapping_id = ${id} and l.shard_key = o.shard_key and l.lane = o.lane
      returning l.shard_key, l.lane, o.checkpoint_seq::text as from_seq, l.checkpoint_seq::text as to_seq`, tx);
    await recordCheckpointMoves(tx, id, moved.filter((m) => m.from_seq !== m.to_seq), `${reason}: open tumbling window restarted`, LOCAL_ACTOR);
  }

  /**
   * Lanes are keyed by partition-key hash modulo the factor, so a new factor gives each lane
   * other keys: every lane of a shard, old and new, starts again from the slowest lane's
   * checkpoint of that shard. Nothing is skipped (records a faster lane had done may be
   * delivered again: at least once). As a seek does, each lease's epoch is bumped and its
   * owner cleared, so a batch in flight can no longer write its checkpoint. A shard still
   * waiting for its parents keeps waiting; one done on every lane stays done.
   */
  async #relane(tx: Database, id: string, from: number, to: number): Promise<void> {
    const moved = await this.handle.query<{ shard_key: unknown; lane: number; from_seq: string | null; to_seq: string | null }>(sql`
      with old as (
        -- The lanes of the factor being replaced: none beyond it can be there, but if one were,
        -- its checkpoint would not be a lane's of this factor.
        select shard_key, lane, state, checkpoint_seq, checkpoint_ordinal, checkpoint_is_start, epoch from leases
         where mapping_id = ${id} and lane < ${from}::int for update
      ), per_shard as (
        select distinct on (shard_key) shard_key, checkpoint_seq, checkpoint_ordinal, checkpoint_is_start,
               case when bool_and(state = 'SHARD_END') over s then 'SHARD_END'
                    when bool_or(state = 'WAITING_FOR_PARENT') over s then 'WAITING_FOR_PARENT'
                    else 'IDLE' end as state,
               max(epoch) over s as epoch
          from old window s as (partition by shard_key)
         order by shard_key, checkpoint_seq asc nulls first, checkpoint_is_start asc
      ), written as (
        insert into leases (mapping_id, shard_key, lane, state, checkpoint_seq, checkpoint_ordinal, checkpoint_is_start, epoch)
        select ${id}, p.shard_key, l.lane, p.state, p.checkpoint_seq, p.checkpoint_ordinal, p.checkpoint_is_start, p.epoch + 1
          from per_shard p cross join generate_series(0, ${to}::int - 1) as l(lane)
        on conflict (mapping_id, shard_key, lane) do update
           set state = excluded.state, checkpoint_seq = excluded.checkpoint_seq, checkpoint_ordinal = excluded.checkpoint_ordinal,
               checkpoint_is_start = excluded.checkpoint_is_start,
               owner = null, expires_at = null, epoch = leases.epoch + 1, consecutive_failures = 0,
               window_state = null, window_start = null
        returning shard_key, lane, checkpoint_seq
      )
      select w.shard_key, w.lane, o.checkpoint_seq::text as from_seq, w.checkpoint_seq::text as to_seq
        from written w left join old o on o.shard_key = w.shard_key and o.lane = w.lane`, tx);
    await this.handle.query(sql`delete from leases where mapping_id = ${id} and lane >= ${to}::int`, tx);
    // Every lane's row, moved or not: restoreCheckpoints must see that the lanes changed here.
    await recordCheckpointMoves(tx, id, moved, `parallelizationFactor ${from} -> ${to}`, LOCAL_ACTOR);
  }

  async delete(id: string): Promise<boolean> {
    const deleted = await this.handle.db.delete(eventSourceMappings).where(eq(eventSourceMappings.id, id)).returning({ id: eventSourceMappings.id });
    if (deleted.length === 0) throw mappingNotFound(id);
    await this.handle.db.delete(leases).where(eq(leases.mappingId, id));
    return true;
  }

  async find(id: string): Promise<MappingInfo | undefined> {
    const [row] = await this.handle.db.select().from(eventSourceMappings).where(eq(eventSourceMappings.id, id));
    return row ? toMappingInfo(row) : undefined;
  }

  async get(id: string): Promise<MappingInfo> {
    const mapping = await this.find(id);
    if (!mapping) throw mappingNotFound(id);
    return mapping;
  }

  async list(streamName?: string | null): Promise<MappingInfo[]> {
    const stream = streamName == null ? undefined : await this.streams.get(streamName);
    const rows = await this.handle.db.select().from(eventSourceMappings)
      .where(stream ? eq(eventSourceMappings.streamId, stream.id) : undefined).orderBy(eventSourceMappings.createdAt);
    return rows.map(toMappingInfo);
  }

  async streamOf(mapping: MappingInfo): Promise<StreamInfo> {
    const stream = await this.streams.findById(mapping.streamId);
    if (!stream) throw new ShardlineError('STREAM_NOT_FOUND', `The stream of mapping ${mapping.id} has been deleted.`);
    return stream;
  }

  async #requireFunction(name: string): Promise<void> {
    const [row] = await this.handle.db.select({ name: functions.name }).from(functions).where(eq(functions.name, name));
    if (!row) throw new ShardlineError('FUNCTION_NOT_FOUND', `Function "${name}" does not exist.`);
  }
}
