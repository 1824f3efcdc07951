/**
 * Tables managed by drizzle-kit (`npm run db:generate` writes migrations/ from this file).
 * The records table is partitioned by arrival time, which drizzle-kit cannot express; it is
 * created by a custom migration and described in engine/records/recordsTable.ts.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  doublePrecision,
  bigserial,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

export const streams = pgTable(
  'streams',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['KINESIS', 'DYNAMODB'] }).notNull(),
    status: text('status', { enum: ['CREATING', 'ACTIVE', 'UPDATING', 'DELETING'] }).notNull(),
    retentionHours: integer('retention_hours').notNull(),
    viewType: text('view_type', { enum: ['KEYS_ONLY', 'NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES'] }),
    /** Next shard index to hand out: shard ids are never reused. */
    nextShardIndex: integer('next_shard_index').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    /** Set by deleteStream; the housekeeper purges the records, then the rows. */
    deletedAt: timestamp('deleted_at', { withTimezone: true, precision: 3 }),
    /** AWS's per-shard read and write limits, enforced (ProvisionedThroughputExceeded) when true. */
    enforceThroughput: boolean('enforce_throughput').notNull().default(false),
  },
  (t) => [uniqueIndex('streams_live_name').on(t.name).where(sql`deleted_at is null`)],
);

export const shards = pgTable(
  'shards',
  {
    /** Internal key; records reference it instead of the text shard id. */
    key: bigserial('key', { mode: 'number' }).primaryKey(),
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    shardIndex: integer('shard_index').notNull(),
    parentIndex: integer('parent_index'),
    adjacentParentIndex: integer('adjacent_parent_index'),
    hashStart: numeric('hash_start', { precision: 39, scale: 0 }).notNull(),
    hashEnd: numeric('hash_end', { precision: 39, scale: 0 }).notNull(),
    /** DYNAMODB: the table partition this shard serves (children keep it). */
    partition: integer('partition'),
    startingSeq: bigint('starting_seq', { mode: 'bigint' }).notNull(),
    endingSeq: bigint('ending_seq', { mode: 'bigint' }),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    closedAt: timestamp('closed_at', { withTimezone: true, precision: 3 }),
    /** Arrival time of the newest record: arrivals never go backwards within a shard. */
    lastArrival: timestamp('last_arrival', { withTimezone: true, precision: 6 }),
    /** Records ever written to the shard: the dense ordinal of its newest record. */
    recordCount: bigint('record_count', { mode: 'number' }).notNull().default(0),
  },
  (t) => [
    uniqueIndex('shards_stream_index').on(t.streamId, t.shardIndex),
    index('shards_open').on(t.streamId).where(sql`closed_at is null`),
  ],
);

/** updateShardCount history, for AWS's limit of 10 scalings per rolling 24 hours. */
export const scalings = pgTable(
  'scalings',
  {
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('scalings_stream_at').on(t.streamId, t.at)],
);

/** DYNAMODB streams: each table's current items, keyed by the canonical JSON of their keys. */
export const items = pgTable(
  'items',
  {
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    itemKey: text('item_key').notNull(),
    item: jsonb('item').notNull(),
  },
  (t) => [primaryKey({ columns: [t.streamId, t.itemKey] })],
);

/** Function targets: an HTTP URL (Lambda Invoke API compatible) or an in-process module. */
export const functions = pgTable('functions', {
  name: text('name').primaryKey(),
  url: text('url'),
  module: text('module'),
  timeoutSeconds: integer('timeout_seconds').notNull(),
  reservedConcurrency: integer('reserved_concurrency'),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** Event source mappings: a stream delivered to a function with AWS Lambda's parameters. */
export const eventSourceMappings = pgTable(
  'event_source_mappings',
  {
    id: text('id').primaryKey(),
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    functionName: text('function_name').notNull(),
    enabled: boolean('enabled').notNull(),
    batchSize: integer('batch_size').notNull(),
    maximumBatchingWindowSeconds: integer('maximum_batching_window_seconds').notNull(),
    startingPosition: text('starting_position', { enum: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'] }).notNull(),
    startingPositionTimestamp: timestamp('starting_position_timestamp', { withTimezone: true, precision: 3 }),
    parallelizationFactor: integer('parallelization_factor').notNull(),
    bisectBatchOnFunctionError: boolean('bisect_batch_on_function_error').notNull(),
    maximumRetryAttempts: integer('maximum_retry_attempts').notNull(),
    maximumRecordAgeSeconds: integer('maximum_record_age_seconds').notNull(),
    functionResponseTypes: jsonb('function_response_types').$type<string[]>().notNull(),
    filterPatterns: jsonb('filter_patterns').$type<string[]>().notNull(),
    tumblingWindowSeconds: integer('tumbling_window_seconds').notNull(),
    onFailureUrl: text('on_failure_url'),
    /** Bumped by every update, so running lanes notice a changed configuration. */
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('event_source_mappings_stream').on(t.streamId)],
);

/**
 * Leases on (mapping, shard, lane), in the manner of the KCL lease table: an owner with an
 * expiry, and an epoch bumped at every takeover that a checkpoint write must match (fencing).
 */
export const leases = pgTable(
  'leases',
  {
    mappingId: text('mapping_id').notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    lane: integer('lane').notNull(),
    state: text('state', { enum: ['WAITING_FOR_PARENT', 'IDLE', 'PROCESSING', 'RETRYING', 'SHARD_END'] }).notNull(),
    owner: text('owner'),
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }),
    epoch: bigint('epoch', { mode: 'number' }).notNull().default(0),
    /** Last record the mapping is done with (processed, filtered out or discarded); null before the first. */
    checkpointSeq: bigint('checkpoint_seq', { mode: 'bigint' }),
    /** The shard's dense record ordinal at the checkpoint, so records behind is a subtraction. */
    checkpointOrdinal: bigint('checkpoint_ordinal', { mode: 'number' }).notNull().default(0),
    /**
     * The checkpoint is where the starting position (LATEST, AT_TIMESTAMP) put it and the lane
     * has done nothing since: the API shows no checkpoint, as the mapping is done with no record yet.
     */
    checkpointIsStart: boolean('checkpoint_is_start').notNull().default(false),
    consecutiveFailures: integer('consecutive_failures').notNull().default(0),
    iteratorAgeMs: bigint('iterator_age_ms', { mode: 'number' }),
    lastInvokedAt: timestamp('last_invoked_at', { withTimezone: true, precision: 3 }),
    /** Tumbling windows: the state the function returned for the open window. */
    windowState: jsonb('window_state'),
    windowStart: timestamp('window_start', { withTimezone: true, precision: 3 }),
  },
  (t) => [primaryKey({ columns: [t.mappingId, t.shardKey, t.lane] }), index('leases_owner').on(t.owner)],
);

/** Every invocation of a function by a mapping (or a replay). */
export const invocations = pgTable(
  'invocations',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    mappingId: text('mapping_id').notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    lane: integer('lane').notNull(),
    firstSeq: bigint('first_seq', { mode: 'bigint' }).notNull(),
    lastSeq: bigint('last_seq', { mode: 'bigint' }).notNull(),
    recordCount: integer('record_count').notNull(),
    attempt: integer('attempt').notNull(),
    outcome: text('outcome', { enum: ['OK', 'PARTIAL_FAILURE', 'FUNCTION_ERROR', 'TIMEOUT', 'THROTTLED'] }).notNull(),
    durationMs: integer('duration_ms').notNull(),
    error: text('error'),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }).notNull(),
    replayId: text('replay_id'),
  },
  (t) => [index('invocations_mapping').on(t.mappingId, t.id)],
);

/** Failures: failed invocations, bisect splits and discarded batches. */
export const failures = pgTable(
  'failures',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    mappingId: text('mapping_id').notNull(),
    kind: text('kind', {
      enum: ['FUNCTION_ERROR', 'TIMEOUT', 'PARTIAL_FAILURE', 'BISECTED', 'RETRIES_EXHAUSTED', 'RECORD_EXPIRED'],
    }).notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    firstSeq: bigint('first_seq', { mode: 'bigint' }).notNull(),
    lastSeq: bigint('last_seq', { mode: 'bigint' }).notNull(),
    recordCount: integer('record_count').notNull(),
    attempt: integer('attempt').notNull(),
    message: text('message'),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    destinationRecord: jsonb('destination_record'),
    redrivenBy: text('redriven_by'),
    /** The lane that failed, of `lanes` (the mapping's parallelizationFactor then): a redrive reads that lane's records only. */
    lane: integer('lane').notNull().default(0),
    lanes: integer('lanes').notNull().default(1),
  },
  (t) => [index('failures_mapping').on(t.mappingId, t.id)],
);

/**
 * Replay jobs: a window of a stream delivered to a function through the same delivery path as
 * live mappings, with cursors of their own. Any engine process may run a job: owner, expiry and
 * epoch work as for leases.
 */
export const replayJobs = pgTable('replay_jobs', {
  id: text('id').primaryKey(),
  streamId: bigint('stream_id', { mode: 'number' }).notNull(),
  functionName: text('function_name').notNull(),
  mappingId: text('mapping_id'),
  fromSpec: text('from_spec').notNull(),
  toSpec: text('to_spec'),
  /** Delivery settings: the mapping's, or defaults for a function, with the job's overrides. */
  settings: jsonb('settings').$type<{
    batchSize: number; filterPatterns: string[]; bisectBatchOnFunctionError: boolean; maximumRetryAttempts: number;
    maximumRecordAgeSeconds: number; reportBatchItemFailures: boolean; onFailureUrl: string | null;
    /** The mapping's tumbling windows, which the replay forms too (absent in jobs made before them: none). */
    tumblingWindowSeconds?: number;
  }>().notNull(),
  ratePerSecond: integer('rate_per_second'),
  dryRun: boolean('dry_run').notNull(),
  state: text('state', { enum: ['PENDING', 'RUNNING', 'PAUSED', 'SUCCEEDED', 'FAILED', 'CANCELLED'] }).notNull(),
  totalRecords: integer('total_records'),
  totalBytes: bigint('total_bytes', { mode: 'number' }),
  deliveredRecords: integer('delivered_records').notNull().default(0),
  failedRecords: integer('failed_records').notNull().default(0),
  requestedBy: text('requested_by'),
  /** Failures this job redrives (redriveFailures), if any. */
  redriveOf: jsonb('redrive_of').$type<number[]>(),
  owner: text('owner'),
  expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }),
  epoch: bigint('epoch', { mode: 'number' }).notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  finishedAt: timestamp('finished_at', { withTimezone: true, precision: 3 }),
  error: text('error'),
});

/** A replay job's cursor over one range of one shard: records in (after, end], delivered in order. */
export const replayCursors = pgTable(
  'replay_cursors',
  {
    jobId: text('job_id').notNull(),
    idx: integer('idx').notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    afterSeq: bigint('after_seq', { mode: 'bigint' }).notNull(),
    endSeq: bigint('end_seq', { mode: 'bigint' }).notNull(),
    cursorSeq: bigint('cursor_seq', { mode: 'bigint' }),
    total: integer('total').notNull().default(0),
    delivered: integer('delivered').notNull().default(0),
    done: boolean('done').notNull().default(false),
    /** The lane of the range (a redrive's failed lane): records whose partition-key hash modulo laneCount is laneIndex. */
    laneIndex: integer('lane_index').notNull().default(0),
    laneCount: integer('lane_count').notNull().default(1),
    /** Tumbling windows: the range's open window and the state its last invocation returned. */
    windowStart: timestamp('window_start', { withTimezone: true, precision: 3 }),
    windowState: jsonb('window_state'),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.idx] })],
);

/** Every move of a mapping's checkpoint that is not the engine's ordinary advance. */
export const checkpointLedger = pgTable(
  'checkpoint_ledger',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    mappingId: text('mapping_id').notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    lane: integer('lane').notNull(),
    fromSeq: bigint('from_seq', { mode: 'bigint' }),
    toSeq: bigint('to_seq', { mode: 'bigint' }),
    reason: text('reason').notNull(),
    actor: text('actor').notNull(),
    jobId: text('job_id'),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('checkpoint_ledger_mapping').on(t.mappingId, t.at)],
);

/** Operator actions: who did what to which target, with the parameters. */
export const auditLog = pgTable('audit_log', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  actor: text('actor').notNull(),
  action: text('action').notNull(),
  target: text('target').notNull(),
  details: jsonb('details'),
});

/**
 * Metrics history: per mapping and shard, figures sampled at a fixed step. Rows of older
 * periods are folded into coarser steps and finally expired, so the table stays bounded.
 */
export const metricSamples = pgTable(
  'metric_samples',
  {
    mappingId: text('mapping_id').notNull(),
    shardKey: bigint('shard_key', { mode: 'number' }).notNull(),
    stepSeconds: integer('step_seconds').notNull(),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull(),
    iteratorAgeMs: bigint('iterator_age_ms', { mode: 'number' }),
    /** Null in a row of counters only (the step's gauges were not sampled): no figure, not 0. */
    recordsBehind: bigint('records_behind', { mode: 'number' }),
    invocations: integer('invocations').notNull(),
    errors: integer('errors').notNull(),
    recordsProcessed: integer('records_processed').notNull(),
  },
  (t) => [primaryKey({ columns: [t.mappingId, t.shardKey, t.stepSeconds, t.at] })],
);

/** Alert rules: a metric over a threshold for forSeconds fires an alert. */
export const alertRules = pgTable('alert_rules', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  mappingId: text('mapping_id'),
  metric: text('metric').notNull(),
  threshold: doublePrecision('threshold').notNull(),
  forSeconds: integer('for_seconds').notNull(),
  /** When the condition was first seen holding (null while it does not hold). */
  conditionSince: timestamp('condition_since', { withTimezone: true, precision: 3 }),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  /** Deleted rules stay for the alerts that name them; they are no longer listed or evaluated. */
  deletedAt: timestamp('deleted_at', { withTimezone: true, precision: 3 }),
});

/** Alerts: each FIRING, and its RESOLVED transition, stored once. */
export const alerts = pgTable(
  'alerts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    ruleId: text('rule_id').notNull(),
    state: text('state', { enum: ['FIRING', 'RESOLVED'] }).notNull(),
    value: doublePrecision('value').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }).notNull(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true, precision: 3 }),
  },
  (t) => [index('alerts_rule').on(t.ruleId, t.id)],
);

/**
 * Tags of a KINESIS stream (the Kinesis API's AddTagsToStream / ListTagsForStream). Rows go
 * with their stream when the retention trimmer purges it (on delete cascade).
 */
export const streamTags = pgTable(
  'stream_tags',
  {
    streamId: bigint('stream_id', { mode: 'number' }).notNull().references(() => streams.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    value: text('value').notNull(),
  },
  (t) => [primaryKey({ columns: [t.streamId, t.key] })],
);

/**
 * API tokens. The bearer secret is kept only as its SHA-256 (it is random, 256 bits, so a
 * plain hash is enough). The SigV4 secret access key must be kept as issued: verifying an
 * AWS signature needs the key itself, as AWS's own service does.
 */
export const apiTokens = pgTable(
  'api_tokens',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    name: text('name').notNull(),
    scopes: text('scopes').array().notNull(),
    tokenHash: text('token_hash').notNull(),
    accessKeyId: text('access_key_id').notNull(),
    secretAccessKey: text('secret_access_key').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, precision: 3 }),
  },
  (t) => [
    uniqueIndex('api_tokens_hash').on(t.tokenHash),
    uniqueIndex('api_tokens_access_key').on(t.accessKeyId),
    uniqueIndex('api_tokens_live_name').on(t.name).where(sql`revoked_at is null`),
  ],
);

/**
 * Capture sources: a stream on a Kinesis-compatible or DynamoDB Streams endpoint tailed into a
 * local stream of the same shard layout. Any engine process may run a source: owner, expiry
 * and epoch work as for leases and replay jobs (engine/capture/captureRunner.ts).
 */
export const captureSources = pgTable(
  'capture_sources',
  {
    id: text('id').primaryKey(),
    kind: text('kind', { enum: ['KINESIS', 'DYNAMODB'] }).notNull(),
    /** null: the SDK's default endpoint of the region (AWS itself). */
    endpoint: text('endpoint'),
    region: text('region').notNull(),
    /** Kinesis: stream name or ARN; DynamoDB Streams: stream ARN. */
    sourceStream: text('source_stream').notNull(),
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    startingPosition: text('starting_position', { enum: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'] }).notNull(),
    startingTimestamp: timestamp('starting_timestamp', { withTimezone: true, precision: 3 }).notNull(),
    state: text('state', { enum: ['STARTING', 'RUNNING', 'RETRYING', 'STOPPED'] }).notNull(),
    lastError: text('last_error'),
    lastErrorAt: timestamp('last_error_at', { withTimezone: true, precision: 3 }),
    recordsCaptured: bigint('records_captured', { mode: 'number' }).notNull().default(0),
    /**
     * Which source stream this capture follows: its ARN and creation time, set at the first
     * description. A stream deleted and created again under the same name differs here.
     */
    sourceIdentity: text('source_identity'),
    owner: text('owner'),
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }),
    epoch: bigint('epoch', { mode: 'number' }).notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('capture_sources_stream').on(t.streamId)],
);

/**
 * A capture source's position in each source shard: the last original sequence number stored
 * (written in the same transaction as the records, so a restart resumes with no gap and no
 * duplicate). Sequence numbers stay text: AWS's exceed 64 bits.
 */
export const captureShards = pgTable(
  'capture_shards',
  {
    sourceId: text('source_id').notNull().references(() => captureSources.id, { onDelete: 'cascade' }),
    sourceShardId: text('source_shard_id').notNull(),
    parentShardId: text('parent_shard_id'),
    adjacentParentShardId: text('adjacent_parent_shard_id'),
    hashStart: numeric('hash_start', { precision: 39, scale: 0 }).notNull(),
    hashEnd: numeric('hash_end', { precision: 39, scale: 0 }).notNull(),
    /** The local shard, once created (when the parents have been read to their end). */
    shardKey: bigint('shard_key', { mode: 'number' }),
    state: text('state', { enum: ['WAITING_FOR_PARENT', 'READING', 'SHARD_END'] }).notNull(),
    /** Where reading starts when no record has been stored yet. */
    startType: text('start_type', { enum: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP', 'SKIP'] }).notNull(),
    lastSequenceNumber: text('last_sequence_number'),
    millisBehindLatest: bigint('millis_behind_latest', { mode: 'number' }),
    recordsCaptured: bigint('records_captured', { mode: 'number' }).notNull().default(0),
    updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.sourceId, t.sourceShardId] })],
);
