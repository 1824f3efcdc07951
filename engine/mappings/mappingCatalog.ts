/**
 * Event source mappings: create, update, delete, look up — with AWS Lambda's parameter ranges,
 * defaults and validation (aws-semantics §4.2). An invalid input is rejected whole with
 * INVALID_ARGUMENT naming the field and its range, and nothing is written. Every update bumps
 * `version`, which running lanes compare to pick the change up without a restart.
 */
import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { compileFilterPatterns } from '../delivery/filterPatterns.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { eventSourceMappings, functions, leases } from '../schema.ts';
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
  if (input.batchSize != null) out.batchSize = range('batchSize', input.batchSize, 1, kind === 'KINESIS' ? 10_000 : 1000);
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

function validateUrl(value: string): string {
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
    const [existing] = await this.handle.db.select({ id: eventSourceMappings.id }).from(eventSourceMappings)
      .where(and(eq(eventSourceMappings.streamId, stream.id), eq(eventSourceMappings.functionName, input.functionName)));
    if (existing) {
      throw new ShardlineError('CONFLICT',
        `A mapping of stream ${stream.name} to function ${input.functionName} already exists (${existing.id}); update or delete it.`);
    }
    const [row] = await this.handle.db.insert(eventSourceMappings).values({
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
    return toMappingInfo(row!);
  }

  async update(id: string, input: MappingUpdate): Promise<MappingInfo> {
    const current = await this.get(id);
    const stream = await this.streamOf(current);
    if (input.functionName != null) await this.#requireFunction(input.functionName);
    const settings = validateSettings(stream.kind, input);
    if (input.functionName != null) settings.functionName = input.functionName;
    const [row] = await this.handle.db.update(eventSourceMappings)
      .set({ ...settings, version: sql`${eventSourceMappings.version} + 1`, updatedAt: sql`now()` })
      .where(eq(eventSourceMappings.id, id)).returning();
    if (!row) throw mappingNotFound(id);
    if (settings.parallelizationFactor !== undefined && settings.parallelizationFactor !== current.parallelizationFactor) {
      // Lanes are keyed by partition-key hash modulo the factor: a new factor starts new lanes
      // from the slowest lane's checkpoint of each shard, so no record is skipped.
      await this.handle.query(sql`
        with slowest as (
          select distinct on (shard_key) shard_key, checkpoint_seq, checkpoint_ordinal, state
            from leases where mapping_id = ${id} order by shard_key, checkpoint_seq asc nulls first)
        insert into leases (mapping_id, shard_key, lane, state, checkpoint_seq, checkpoint_ordinal)
        select ${id}, s.shard_key, l.lane, case when s.state = 'SHARD_END' then 'SHARD_END' else 'IDLE' end, s.checkpoint_seq, s.checkpoint_ordinal
          from slowest s cross join generate_series(0, ${settings.parallelizationFactor}::int - 1) as l(lane)
        on conflict (mapping_id, shard_key, lane) do nothing`);
      await this.handle.query(sql`delete from leases where mapping_id = ${id} and lane >= ${settings.parallelizationFactor}::int`);
    }
    return toMappingInfo(row);
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
