/**
 * Capture sources: start (or resume), stop, list, and the per-shard capture lag. Starting a
 * source creates its local stream at once (status CREATING, no shards): the name is taken, and
 * the runner that claims the source gives the stream the source's shards as it meets them.
 * Starting again a stopped source of the same stream resumes it where it stopped.
 */
import { randomUUID } from 'node:crypto';
import { asc, eq, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { captureShards, captureSources, shards, streams } from '../schema.ts';
import { STREAM_NAME, type StreamKind, shardIdOf } from '../streams/model.ts';
import { type StreamCatalog, isUniqueViolation } from '../streams/streamCatalog.ts';

export type CaptureState = 'STARTING' | 'RUNNING' | 'RETRYING' | 'STOPPED';
export type CaptureStartingPosition = 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';

export interface CaptureInput {
  kind?: StreamKind | null;
  /** The source service's endpoint; absent: AWS's own for the region. */
  endpoint?: string | null;
  region?: string | null;
  /** Kinesis: stream name or ARN; DynamoDB Streams: the stream ARN. */
  stream: string;
  /** The local stream; default the source stream's (Kinesis) or table's (DynamoDB) name. */
  into?: string | null;
  from?: CaptureStartingPosition | null;
  timestamp?: Date | null;
}

export interface CaptureSourceInfo {
  id: string;
  kind: StreamKind;
  endpoint: string | null;
  region: string;
  sourceStream: string;
  streamName: string;
  startingPosition: CaptureStartingPosition;
  startingTimestamp: Date;
  state: CaptureState;
  lastError: string | null;
  lastErrorAt: Date | null;
  recordsCaptured: number;
  owner: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface CaptureShardLag {
  sourceShardId: string;
  /** The local shard, once created (after its parents were read to their end). */
  shardId: string | null;
  parentShardId: string | null;
  adjacentParentShardId: string | null;
  state: 'WAITING_FOR_PARENT' | 'READING' | 'SHARD_END';
  lastSequenceNumber: string | null;
  millisBehindLatest: number | null;
  recordsCaptured: number;
  updatedAt: Date;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const KINESIS_ARN = /^arn:aws[a-z-]*:kinesis:[^:]*:\d{12}:stream\/([a-zA-Z0-9_.-]{1,128})$/;
const DYNAMODB_STREAM_ARN = /^arn:aws[a-z-]*:dynamodb:[^:]*:\d{12}:table\/([a-zA-Z0-9_.-]{3,255})\/stream\/\S+$/;

export const captureNotFound = (id: string) => new ShardlineError('CAPTURE_NOT_FOUND', `Capture source "${id}" does not exist.`);

/** The local stream name a source maps to by default, or an INVALID_ARGUMENT naming the field. */
function validate(input: CaptureInput, defaultRegion: string) {
  const kind = input.kind ?? 'KINESIS';
  let defaultInto: string;
  if (kind === 'KINESIS') {
    const arn = KINESIS_ARN.exec(input.stream);
    if (!arn && !STREAM_NAME.test(input.stream)) {
      throw invalidArgument(`stream must be a Kinesis stream name (1–128 characters of [a-zA-Z0-9_.-]) or stream ARN, got "${input.stream.slice(0, 140)}".`);
    }
    defaultInto = arn ? arn[1]! : input.stream;
  } else {
    const arn = DYNAMODB_STREAM_ARN.exec(input.stream);
    if (!arn) {
      throw invalidArgument(`stream must be a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>), got "${input.stream.slice(0, 140)}".`);
    }
    defaultInto = arn[1]!.slice(0, 128);
  }
  const into = input.into ?? defaultInto;
  if (!STREAM_NAME.test(into)) throw invalidArgument(`into must be 1–128 characters of [a-zA-Z0-9_.-], got "${into.slice(0, 140)}".`);
  const endpoint = input.endpoint ?? null;
  if (endpoint !== null) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw invalidArgument(`endpoint must be an http:// or https:// URL, got "${endpoint.slice(0, 200)}".`);
    }
  }
  const region = input.region ?? defaultRegion;
  if (!REGION.test(region)) throw invalidArgument(`region must look like us-east-1, got "${region.slice(0, 40)}".`);
  const from = input.from ?? 'TRIM_HORIZON';
  if (from === 'AT_TIMESTAMP') {
    if (!input.timestamp) throw invalidArgument('timestamp is required when from is AT_TIMESTAMP.');
    if (kind === 'DYNAMODB') throw invalidArgument('from AT_TIMESTAMP is not available for DYNAMODB sources: DynamoDB Streams has no such iterator (use TRIM_HORIZON or LATEST).');
    if (input.timestamp.getTime() > Date.now()) throw invalidArgument(`timestamp must not be in the future, got ${input.timestamp.toISOString()}.`);
  } else if (input.timestamp) {
    throw invalidArgument(`timestamp applies only when from is AT_TIMESTAMP (from is ${from}).`);
  }
  return { kind, into, endpoint, region, from, timestamp: from === 'AT_TIMESTAMP' ? input.timestamp! : null };
}

type SourceRow = typeof captureSources.$inferSelect;

const toInfo = (row: SourceRow, streamName: string): CaptureSourceInfo => ({
  id: row.id,
  kind: row.kind,
  endpoint: row.endpoint,
  region: row.region,
  sourceStream: row.sourceStream,
  streamName,
  startingPosition: row.startingPosition,
  startingTimestamp: row.startingTimestamp,
  state: row.state,
  lastError: row.lastError,
  lastErrorAt: row.lastErrorAt,
  recordsCaptured: row.recordsCaptured,
  owner: row.owner,
  createdAt: row.createdAt,
  updatedAt: row.updatedAt,
});

export class CaptureSources {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly catalog: StreamCatalog,
    private readonly defaultRegion: string,
  ) {}

  /** Starts a capture source, or resumes the stopped one whose local stream is `into`. */
  async start(input: CaptureInput): Promise<{ source: CaptureSourceInfo; resumed: boolean }> {
    const v = validate(input, this.defaultRegion);
    const result = await this.handle.transaction(async (tx) => {
      const local = await this.catalog.find(v.into, tx);
      if (local) {
        const [existing] = await tx.select().from(captureSources).where(eq(captureSources.streamId, local.id)).for('update');
        if (!existing) {
          throw new ShardlineError('STREAM_EXISTS', `Stream "${v.into}" already exists and is not the target of a capture source; choose another local stream (into).`);
        }
        if (existing.kind !== v.kind || existing.sourceStream !== input.stream) {
          throw new ShardlineError('CONFLICT',
            `Stream "${v.into}" is the target of capture source ${existing.id}, which captures ${existing.kind} stream "${existing.sourceStream}"; choose another local stream (into).`);
        }
        if (existing.state !== 'STOPPED') {
          throw new ShardlineError('CONFLICT', `Capture source ${existing.id} into "${v.into}" is already running (state ${existing.state}); stop it first.`);
        }
        const [row] = await tx.update(captureSources).set({
          endpoint: v.endpoint, region: v.region, state: 'STARTING', owner: null, expiresAt: null,
          epoch: sql`${captureSources.epoch} + 1`, lastError: null, lastErrorAt: null, updatedAt: sql`now()`,
        }).where(eq(captureSources.id, existing.id)).returning();
        return { row: row!, resumed: true };
      }
      const [stream] = await tx.insert(streams).values({
        name: v.into, kind: v.kind, status: 'CREATING', retentionHours: 24,
        viewType: v.kind === 'DYNAMODB' ? 'NEW_AND_OLD_IMAGES' : null, nextShardIndex: 0,
      }).returning();
      const [row] = await tx.insert(captureSources).values({
        id: randomUUID(),
        kind: v.kind,
        endpoint: v.endpoint,
        region: v.region,
        sourceStream: input.stream,
        streamId: stream!.id,
        startingPosition: v.from,
        startingTimestamp: v.timestamp ?? sql`now()`,
        state: 'STARTING',
      }).returning();
      return { row: row!, resumed: false };
    }).catch((raw) => {
      if (isUniqueViolation(raw)) throw new ShardlineError('STREAM_EXISTS', `Stream "${v.into}" already exists.`);
      throw raw;
    });
    return { source: toInfo(result.row, v.into), resumed: result.resumed };
  }

  /** Stops a source: the process running it stops at its next step (the epoch bump fences its writes). */
  async stop(id: string): Promise<CaptureSourceInfo> {
    await this.handle.query(sql`
      update capture_sources set state = 'STOPPED', owner = null, expires_at = null, epoch = epoch + 1, updated_at = now()
       where id = ${id} and state <> 'STOPPED'`);
    return this.get(id);
  }

  async find(id: string): Promise<CaptureSourceInfo | undefined> {
    const [row] = await this.handle.db.select({ source: captureSources, streamName: streams.name }).from(captureSources)
      .innerJoin(streams, eq(streams.id, captureSources.streamId)).where(eq(captureSources.id, id));
    return row ? toInfo(row.source, row.streamName) : undefined;
  }

  async get(id: string): Promise<CaptureSourceInfo> {
    const source = await this.find(id);
    if (!source) throw captureNotFound(id);
    return source;
  }

  async list(): Promise<CaptureSourceInfo[]> {
    const rows = await this.handle.db.select({ source: captureSources, streamName: streams.name }).from(captureSources)
      .innerJoin(streams, eq(streams.id, captureSources.streamId)).orderBy(asc(captureSources.createdAt), asc(captureSources.id));
    return rows.map((r) => toInfo(r.source, r.streamName));
  }

  /** One row per source shard met: its local shard, position, records captured and MillisBehindLatest. */
  async lag(id: string): Promise<CaptureShardLag[]> {
    const rows = await this.handle.db.select({ c: captureShards, shardIndex: shards.shardIndex }).from(captureShards)
      .leftJoin(shards, eq(shards.key, captureShards.shardKey))
      .where(eq(captureShards.sourceId, id)).orderBy(asc(captureShards.sourceShardId));
    return rows.map(({ c, shardIndex }) => ({
      sourceShardId: c.sourceShardId,
      shardId: shardIndex === null ? null : shardIdOf(shardIndex),
      parentShardId: c.parentShardId,
      adjacentParentShardId: c.adjacentParentShardId,
      state: c.state,
      lastSequenceNumber: c.lastSequenceNumber,
      millisBehindLatest: c.millisBehindLatest,
      recordsCaptured: c.recordsCaptured,
      updatedAt: c.updatedAt,
    }));
  }
}

/**
 * The shards of a capture's local stream follow the source: resharding or rolling them over
 * here would break the mirror, so those operations are refused with CONFLICT.
 */
export async function refuseCaptureTarget(handle: DatabaseHandle, tx: Database, stream: { id: number; name: string }, operation: string): Promise<void> {
  const [row] = await handle.query<{ id: string }>(sql`select id from capture_sources where stream_id = ${stream.id}`, tx);
  if (row) {
    throw new ShardlineError('CONFLICT',
      `Stream "${stream.name}" is the local stream of capture source ${row.id}: its shards follow the source stream, so ${operation} is not allowed on it.`);
  }
}
