/**
 * The engine: composes the store's role nouns around one database handle. api/ and cli/ use
 * only this object; the engine never imports from api/.
 *
 *   catalog      streams and shards (streams/streamCatalog.ts)
 *   resharding   split, merge, updateShardCount (streams/resharding.ts)
 *   reader       record ranges and positions (records/readRecords.ts)
 *   housekeeper  retention trim, partitions, DYNAMODB shard rollover, purge of deleted streams
 *   functions    function targets; invoker calls them (HTTP or in-process module)
 *   mappings     event source mappings; poller delivers them (leases, lanes, batches)
 *   tags         tags of KINESIS streams (the Kinesis API's tag operations)
 *   captures     capture sources; captureRunner tails them into local streams (capture/)
 *   tokens       API tokens, scopes and authentication (auth/)
 *   throughput   AWS's per-shard rate limits for streams that enforce them, in this process (streams/shardThroughput.ts)
 */
import { lastIssuedSequence } from './streams/sequenceNumbers.ts';
import type { Config } from './config.ts';
import { type DatabaseHandle, openDatabase } from './db.ts';
import { writeItems, type ItemChange } from './dynamodb/writeItems.ts';
import { EngineEvents } from './events.ts';
import { Housekeeper } from './housekeeper.ts';
import { migrate } from './migrate.ts';
import { Notifier } from './notifier.ts';
import { AuditLog, LOCAL_ACTOR } from './audit.ts';
import { ApiTokens } from './auth/apiTokens.ts';
import { WriteRateLimiter } from './auth/writeRateLimiter.ts';
import { seekMapping } from './mappings/seek.ts';
import { listCheckpointMoves } from './mappings/checkpointLedgerView.ts';
import { restoreCheckpoints } from './mappings/restoreCheckpoints.ts';
import { ShortMemo } from './shortMemo.ts';
import { recordHistory } from './observability/recordHistory.ts';
import { FeedCounts } from './observability/feedCounts.ts';
import type { Position } from './records/readRecords.ts';
import { type ReplayInput, ReplayJobs } from './replay/replayJobs.ts';
import { ReplayRunner } from './replay/replayRunner.ts';
import { MetricsSampler } from './metrics/metricsSampler.ts';
import { AlertEvaluator } from './alerts/alertEvaluator.ts';
import { AlertRules } from './alerts/alertRules.ts';
import type { ShardInfo, StreamInfo, StreamKind, ViewType } from './streams/model.ts';
import { importRecords } from './records/importRecords.ts';
import { type PutRecordInput, putRecords } from './records/putRecords.ts';
import { COMBINE_LIMITS, StreamAppender } from './records/streamAppender.ts';
import { RecentRecords } from './records/recentRecords.ts';
import { type KinesisJsonRead, type ShardPosition, readShardKinesisJson } from './records/shardReads.ts';
import { RecordReader } from './records/readRecords.ts';
import { Resharding } from './streams/resharding.ts';
import { listFailures, listInvocations } from './delivery/deliveryLog.ts';
import { mappingLag } from './delivery/lag.ts';
import { DEFAULT_POLLER_OPTIONS, Poller, type PollerOptions } from './delivery/poller.ts';
import { ShardlineError } from './errors.ts';
import { FunctionCatalog } from './functions/functionCatalog.ts';
import { Invoker } from './functions/invoker.ts';
import { MappingCatalog, type MappingInput, type MappingUpdate } from './mappings/mappingCatalog.ts';
import { eventSourceMappings } from './schema.ts';
import { eq, sql } from 'drizzle-orm';
import { StreamCatalog } from './streams/streamCatalog.ts';
import { StreamTags } from './streams/tags.ts';
import { ShardThroughput } from './streams/shardThroughput.ts';
import { type CaptureInput, CaptureSources } from './capture/captureSources.ts';
import { CaptureRunner, type CaptureRunnerOptions, DEFAULT_CAPTURE_OPTIONS } from './capture/captureRunner.ts';

export type EngineOptions = Pick<Config, 'region' | 'accountId' | 'dynamoShardRolloverMs' | 'housekeepingIntervalMs' | 'trimBatchSize' | 'functionsDir'> & {
  /** SHARDLINE_RECENT_RECORDS_MB in bytes; 0 turns the memory off. (Default: 128 MiB) */
  recentRecordsBytes?: number;
  /** Where background and per-shard failures are reported. (Default: console.error) */
  onError?: (error: Error) => void;
  /** Lease and polling settings of delivery, or false for a process that does not deliver. */
  delivery?: Partial<PollerOptions> | false;
  /** Step of the metrics history sampler (engine/metrics/metricsSampler.ts). (Default: 10 s) */
  metricsStepMs?: number;
  /** How often alert rules are evaluated. (Default: 1000 ms) */
  alertIntervalMs?: number;
  /** Capture sources: polling, discovery, backoff, timeouts and maxSources (SHARDLINE_MAX_CAPTURE_SOURCES) (engine/capture/captureRunner.ts). */
  capture?: Partial<Omit<CaptureRunnerOptions, 'leaseTtlMs' | 'heartbeatMs'>>;
  /** SHARDLINE_ADMIN_TOKEN: bootstraps authentication (engine/auth/apiTokens.ts). */
  adminToken?: string;
  /** Write requests per second per token; 0 = unlimited. (Default: 100) */
  writeRequestsPerSecond?: number;
  /** Clock of the per-shard throughput buckets, epoch ms. (Default: Date.now) */
  throughputClock?: () => number;
};

export class Engine {
  readonly events = new EngineEvents();
  readonly catalog: StreamCatalog;
  readonly resharding: Resharding;
  readonly reader: RecordReader;
  readonly housekeeper: Housekeeper;
  readonly functions: FunctionCatalog;
  readonly invoker: Invoker;
  readonly mappings: MappingCatalog;
  readonly poller: Poller | undefined;
  readonly notifier: Notifier;
  readonly audit: AuditLog;
  readonly replays: ReplayJobs;
  readonly replayRunner: ReplayRunner | undefined;
  /** Metrics history: sampled while delivery runs; read by metrics(). */
  readonly metricsSampler: MetricsSampler;
  readonly alerts: AlertRules;
  readonly alertEvaluator: AlertEvaluator | undefined;
  readonly tags: StreamTags;
  readonly captures: CaptureSources;
  /** Runs capture sources in this process (with delivery; a process that does not deliver does not capture). */
  readonly captureRunner: CaptureRunner | undefined;
  /** API tokens and authentication. */
  readonly tokens: ApiTokens;
  readonly writeLimiter: WriteRateLimiter;
  /** Per-shard throughput limits of streams with enforceThroughput (per process, in memory). */
  readonly throughput: ShardThroughput;
  readonly #onError: (error: Error) => void;
  /** putRecords' appends, concurrent calls' rows for a shard sharing a statement. */
  readonly #appender: StreamAppender;
  /** The newest records this process wrote to each shard, for tail reads. */
  readonly recentRecords: RecentRecords;
  /** Subscribers per feed in this process, and the events dropped for those that fell behind. */
  readonly feedCounts = new FeedCounts();

  constructor(
    readonly handle: DatabaseHandle,
    readonly options: EngineOptions,
  ) {
    this.#onError = options.onError ?? ((error) => {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      console.error(`shardline: ${error.message}${cause ? ` (${cause})` : ''}`);
    });
    this.catalog = new StreamCatalog(handle, options);
    this.recentRecords = new RecentRecords(options.recentRecordsBytes ?? DEFAULT_RECENT_RECORDS_BYTES);
    this.#appender = new StreamAppender(handle, COMBINE_LIMITS, this.recentRecords);
    this.resharding = new Resharding(handle, this.catalog, (stream) =>
      this.events.emit('shards', { streamId: stream.id, streamName: stream.name }));
    this.reader = new RecordReader(handle, this.catalog);
    this.tags = new StreamTags(handle, this.catalog);
    this.housekeeper = new Housekeeper(handle, this.catalog, this.events, { ...options, onError: this.#onError });
    this.functions = new FunctionCatalog(handle, { functionsDir: options.functionsDir });
    this.invoker = new Invoker({ functionsDir: options.functionsDir, region: options.region, accountId: options.accountId });
    this.mappings = new MappingCatalog(handle, this.catalog);
    this.notifier = new Notifier(handle, this.events, this.#onError);
    this.audit = new AuditLog(handle);
    this.tokens = new ApiTokens(handle, this.events, this.audit, { adminToken: options.adminToken });
    this.writeLimiter = new WriteRateLimiter(options.writeRequestsPerSecond ?? 100);
    this.throughput = new ShardThroughput(options.throughputClock);
    this.metricsSampler = new MetricsSampler(handle, { stepMs: options.metricsStepMs, onError: this.#onError });
    this.alerts = new AlertRules(handle, this.mappings);
    this.replays = new ReplayJobs(handle, this.catalog, this.reader, this.mappings, this.functions, this.audit, this.events, options);
    this.poller = options.delivery === false ? undefined : new Poller({
      handle,
      mappings: this.mappings,
      streams: this.catalog,
      functions: this.functions,
      invoker: this.invoker,
      region: options.region,
      accountId: options.accountId,
      onError: this.#onError,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      postOnFailure: (url, body) => this.#postOnFailure(url, body),
    }, this.events, { ...DEFAULT_POLLER_OPTIONS, ...(options.delivery || {}) });
    const delivery = { ...DEFAULT_POLLER_OPTIONS, ...(options.delivery || {}) };
    this.replayRunner = this.poller === undefined ? undefined : new ReplayRunner(handle, this.catalog, {
      functions: this.functions, invoker: this.invoker, region: options.region, accountId: options.accountId,
      postOnFailure: this.#postOnFailure, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), onError: this.#onError,
    }, this.events, this.poller.owner, { leaseTtlMs: delivery.leaseTtlMs, heartbeatMs: delivery.heartbeatMs, maxJobs: 4 });
    this.alertEvaluator = this.poller === undefined ? undefined
      : new AlertEvaluator(handle, this.events, options.alertIntervalMs ?? 1000, this.#onError);
    this.captures = new CaptureSources(handle, this.catalog, options.region);
    this.captureRunner = this.poller === undefined ? undefined : new CaptureRunner(handle, this.events, this.poller.owner, {
      ...DEFAULT_CAPTURE_OPTIONS, ...options.capture, leaseTtlMs: delivery.leaseTtlMs, heartbeatMs: delivery.heartbeatMs,
    }, this.#onError);
  }

  /** POSTs an on-failure record to a mapping's onFailureUrl; problems are reported, not thrown. */
  readonly #postOnFailure = async (url: string, body: Record<string, unknown>): Promise<void> => {
    try {
      const response = await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      await response.arrayBuffer();
      if (!response.ok) this.#onError(new Error(`onFailureUrl ${url} answered ${response.status}.`));
    } catch (raw) {
      this.#onError(new Error(`POST to onFailureUrl ${url} failed: ${(raw as Error).message}`));
    }
  };

  // Operator actions: each is written to the audit log with its actor.

  async createStream(input: {
    name: string; kind?: StreamKind | null; shardCount: number; retentionHours?: number | null; viewType?: ViewType | null;
    enforceThroughput?: boolean | null;
  }, actor = LOCAL_ACTOR) {
    const stream = await this.catalog.create(input);
    await this.audit.record('stream.create', `stream:${stream.name}`, input, actor);
    return stream;
  }

  /**
   * Deletes a stream no mapping reads (CONFLICT otherwise, as deleteFunction): a mapping's
   * stream is never null, and one left without it would break every listing of mappings.
   */
  async deleteStream(name: string, actor = LOCAL_ACTOR) {
    const deleted = await this.catalog.delete(name, async (tx, stream) => {
      const [user] = await tx.select({ id: eventSourceMappings.id }).from(eventSourceMappings)
        .where(eq(eventSourceMappings.streamId, stream.id)).limit(1);
      if (user) throw new ShardlineError('CONFLICT', `Stream "${name}" is read by event source mapping ${user.id}; delete the mapping first.`);
    });
    await this.audit.record('stream.delete', `stream:${name}`, null, actor);
    return deleted;
  }

  async updateRetention(name: string, retentionHours: number, actor = LOCAL_ACTOR) {
    const stream = await this.catalog.updateRetention(name, retentionHours);
    await this.audit.record('stream.updateRetention', `stream:${name}`, { retentionHours }, actor);
    return stream;
  }

  async addStreamTags(name: string, tags: { key: string; value: string }[], actor = LOCAL_ACTOR) {
    await this.tags.add(name, tags);
    await this.audit.record('stream.addTags', `stream:${name}`, { tags }, actor);
  }

  async removeStreamTags(name: string, keys: string[], actor = LOCAL_ACTOR) {
    await this.tags.remove(name, keys);
    await this.audit.record('stream.removeTags', `stream:${name}`, { keys }, actor);
  }

  async updateStreamThroughput(name: string, enforceThroughput: boolean, actor = LOCAL_ACTOR) {
    const stream = await this.catalog.updateThroughput(name, enforceThroughput);
    await this.audit.record('stream.updateThroughput', `stream:${name}`, { enforceThroughput }, actor);
    return stream;
  }

  async splitShard(streamName: string, shardId: string, newStartingHashKey: string, actor = LOCAL_ACTOR) {
    const stream = await this.resharding.splitShard(streamName, shardId, newStartingHashKey);
    await this.audit.record('stream.splitShard', `stream:${streamName}`, { shardId, newStartingHashKey }, actor);
    return stream;
  }

  async mergeShards(streamName: string, shardId: string, adjacentShardId: string, actor = LOCAL_ACTOR) {
    const stream = await this.resharding.mergeShards(streamName, shardId, adjacentShardId);
    await this.audit.record('stream.mergeShards', `stream:${streamName}`, { shardId, adjacentShardId }, actor);
    return stream;
  }

  async updateShardCount(streamName: string, targetShardCount: number, actor = LOCAL_ACTOR) {
    const stream = await this.resharding.updateShardCount(streamName, targetShardCount);
    await this.audit.record('stream.updateShardCount', `stream:${streamName}`, { targetShardCount }, actor);
    return stream;
  }

  async seekMapping(id: string, position: Position, shardIds?: string[] | null, actor = LOCAL_ACTOR) {
    await seekMapping(this.handle, this.mappings, this.catalog, this.audit, id, position, shardIds, actor);
    this.#recentLag.forget(id); // the answer shows the checkpoints moved, not a read shared from before
    this.events.emit('mappings', { mappingId: id });
    return this.mappings.get(id);
  }

  /** Puts a mapping's checkpoints back where the ledger says they stood at `at` (an undo for a bad seek). */
  async restoreCheckpoints(id: string, at: Date, actor = LOCAL_ACTOR) {
    await restoreCheckpoints(this.handle, this.mappings, this.audit, id, at, actor);
    this.#recentLag.forget(id);
    this.events.emit('mappings', { mappingId: id });
    return this.mappings.get(id);
  }

  startReplay(input: ReplayInput, actor = LOCAL_ACTOR) {
    return this.replays.start(input, actor);
  }

  redriveFailures(mappingId: string, failureIds?: string[] | null, functionName?: string | null, actor = LOCAL_ACTOR) {
    return this.replays.redrive(mappingId, failureIds, functionName, actor);
  }

  /** Starts a capture source (or resumes the stopped one into the same local stream). */
  async startCapture(input: CaptureInput, actor = LOCAL_ACTOR) {
    const { source, resumed } = await this.captures.start(input);
    await this.audit.record(resumed ? 'capture.resume' : 'capture.start', `capture:${source.id}`, input, actor);
    this.events.emit('captures', { sourceId: source.id });
    return source;
  }

  async stopCapture(id: string, actor = LOCAL_ACTOR) {
    const source = await this.captures.stop(id);
    this.captureRunner?.release(id);
    await this.audit.record('capture.stop', `capture:${id}`, null, actor);
    this.events.emit('captures', { sourceId: id });
    return source;
  }

  async createFunction(input: Parameters<FunctionCatalog['create']>[0], actor = LOCAL_ACTOR) {
    const fn = await this.functions.create(input);
    await this.audit.record('function.create', `function:${fn.name}`, input, actor);
    return fn;
  }

  /** Deletes a function that no mapping uses. */
  async deleteFunction(name: string, actor = LOCAL_ACTOR): Promise<boolean> {
    const [user] = await this.handle.db.select({ id: eventSourceMappings.id }).from(eventSourceMappings)
      .where(eq(eventSourceMappings.functionName, name)).limit(1);
    if (user) throw new ShardlineError('CONFLICT', `Function "${name}" is used by event source mapping ${user.id}; delete the mapping first.`);
    const deleted = await this.functions.delete(name);
    await this.audit.record('function.delete', `function:${name}`, null, actor);
    return deleted;
  }

  async createAlertRule(input: Parameters<AlertRules['create']>[0], actor = LOCAL_ACTOR) {
    const rule = await this.alerts.create(input);
    await this.audit.record('alertRule.create', `alertRule:${rule.id}`, input, actor);
    return rule;
  }

  async deleteAlertRule(id: string, actor = LOCAL_ACTOR): Promise<boolean> {
    const resolved = await this.alerts.delete(id);
    for (const alertId of resolved) this.events.emit('alerts', { alertId });
    await this.audit.record('alertRule.delete', `alertRule:${id}`, null, actor);
    return true;
  }

  async createMapping(input: MappingInput, actor = LOCAL_ACTOR) {
    const mapping = await this.mappings.create(input);
    await this.audit.record('mapping.create', `mapping:${mapping.id}`, input, actor);
    this.events.emit('mappings', { mappingId: mapping.id });
    return mapping;
  }

  async updateMapping(id: string, input: MappingUpdate, actor = LOCAL_ACTOR) {
    const mapping = await this.mappings.update(id, input);
    this.#recentLag.forget(id); // a new factor moves lanes and checkpoints
    await this.audit.record('mapping.update', `mapping:${id}`, input, actor);
    this.events.emit('mappings', { mappingId: id });
    return mapping;
  }

  async deleteMapping(id: string, actor = LOCAL_ACTOR) {
    const deleted = await this.mappings.delete(id);
    await this.audit.record('mapping.delete', `mapping:${id}`, null, actor);
    this.events.emit('mappings', { mappingId: id });
    return deleted;
  }

  /** Moves of a mapping's checkpoints other than ordinary advances (seeks, discards), newest first. */
  checkpointMoves(mappingId: string, first?: number) {
    return listCheckpointMoves(this.handle, mappingId, first);
  }

  /** The highest sequence value handed out so far: no record has a later one. */
  lastIssuedSequence(): Promise<bigint> {
    return lastIssuedSequence(this.handle);
  }

  /** Every delivery attempt of one record by a mapping: invocations and failures covering it. */
  async recordHistory(mappingId: string, shardId: string, sequenceNumber: string) {
    const mapping = await this.mappings.get(mappingId);
    return recordHistory(this.handle, this.catalog, await this.mappings.streamOf(mapping), mappingId, shardId, sequenceNumber);
  }

  lag(mappingId: string) {
    return mappingLag(this.handle, mappingId);
  }

  readonly #recentLag = new ShortMemo<Awaited<ReturnType<typeof mappingLag>>>(250);

  /**
   * lag(), shared by every caller within 250 ms: what dashboards and lag subscribers read, so a
   * thousand of them cost one query per mapping, not a thousand.
   */
  recentLag(mappingId: string) {
    return this.#recentLag.get(mappingId, () => this.lag(mappingId));
  }

  /** recentLag() with the time its shared read started: the figures are no newer than that. */
  recentLagRead(mappingId: string, notBefore?: number) {
    return this.#recentLag.entry(mappingId, () => this.lag(mappingId), notBefore);
  }

  /** A mapping's metrics history in [from, to), summed over shards, in buckets of stepSeconds. */
  metrics(mappingId: string, from: Date, to: Date, stepSeconds: number) {
    return this.metricsSampler.history(mappingId, from, to, stepSeconds);
  }

  invocations(mappingId: string, args: Parameters<typeof listInvocations>[2]) {
    return listInvocations(this.handle, mappingId, args);
  }

  failures(mappingId: string, args: Parameters<typeof listFailures>[2]) {
    return listFailures(this.handle, mappingId, args);
  }

  /**
   * putRecords; `kinesisReaders`: the records come through the Kinesis API, so Kinesis readers
   * are expected, and the stream's newest records are held for them (RecentRecords).
   */
  async putRecords(streamName: string, records: PutRecordInput[], options: { kinesisReaders?: boolean } = {}) {
    if (options.kinesisReaders) this.recentRecords.want((await this.catalog.routing(streamName)).stream.id);
    return putRecords(this.handle, this.#appender, this.catalog, this.events, streamName, records, this.#onError, this.#admitWrites);
  }

  /**
   * A shard's page after a position as the members of GetRecords' Records array: from memory
   * when the newest records are held there (RecentRecords), else written by Postgres.
   */
  async readShardKinesisJson(stream: StreamInfo, shard: ShardInfo, from: ShardPosition, limit: number, maxBytes: number): Promise<KinesisJsonRead> {
    this.recentRecords.want(stream.id);
    const recent = await this.recentRecords.read(shard.key, from, limit, maxBytes, Date.now(), async () => {
      const [row] = await this.handle.prepared<{ n: string | number }>(sql`select record_count as n from shards where key = ${shard.key}`);
      return Number(row?.n ?? -1);
    });
    return recent ?? readShardKinesisJson(this.handle, stream, shard, from, limit, maxBytes);
  }

  readonly #admitWrites = (stream: StreamInfo, shard: ShardInfo, sizes: number[]) => this.throughput.admitWrites(stream, shard, sizes);

  writeItems(streamName: string, changes: ItemChange[]) {
    return writeItems(this.handle, this.catalog, this.events, streamName, changes);
  }

  importRecords(streamName: string, event: unknown) {
    return importRecords(this.handle, this.catalog, this.events, streamName, event);
  }

  /** Rolls over DYNAMODB shards now (all open ones, or the one named). */
  async rolloverShards(streamName: string, shardId?: string | null, actor = LOCAL_ACTOR) {
    const stream = await this.housekeeper.rollover.rollover(streamName, shardId);
    await this.audit.record('stream.rolloverShards', `stream:${streamName}`, { shardId: shardId ?? null }, actor);
    return stream;
  }

  /** Starts background work: the housekeeper, and delivery unless disabled. */
  async start(): Promise<void> {
    await this.notifier.start();
    await this.housekeeper.start();
    await this.poller?.start();
    await this.replayRunner?.start();
    if (this.poller) await this.metricsSampler.start();
    this.alertEvaluator?.start();
    await this.captureRunner?.start();
  }

  async stop(): Promise<void> {
    await this.captureRunner?.stop();
    await this.alertEvaluator?.stop();
    await this.metricsSampler.stop();
    await this.replayRunner?.stop();
    await this.poller?.stop();
    await this.notifier.stop();
    await this.housekeeper.stop();
    await this.invoker.close();
  }
}

const DEFAULT_RECENT_RECORDS_BYTES = 128 * 1024 * 1024;

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  region: 'us-east-1',
  accountId: '000000000000',
  dynamoShardRolloverMs: 4 * 3600 * 1000,
  housekeepingIntervalMs: 30_000,
  trimBatchSize: 5000,
  functionsDir: './functions',
};

/** Opens the database named by the config (PGlite when no DATABASE_URL), migrates it, builds the engine. */
export async function openEngine(config: Pick<Config, 'databaseUrl' | 'dataDir'> & EngineOptions): Promise<Engine> {
  if (config.delivery && config.delivery.heartbeatMs !== undefined && config.delivery.leaseTtlMs !== undefined
    && config.delivery.heartbeatMs * 2 > config.delivery.leaseTtlMs) {
    throw new Error('The delivery heartbeat must be at most half the lease TTL, or leases expire between renewals.');
  }
  const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.databaseUrl ? undefined : config.dataDir });
  await migrate(handle);
  return new Engine(handle, config);
}
