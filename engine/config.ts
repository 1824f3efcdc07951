/**
 * Configuration: read from the environment once, validated, and passed down.
 * No other engine or api file reads process.env.
 */
import { resolve } from 'node:path';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

export interface Config {
  /** HTTP port for GraphQL and subscriptions. (Default: 4000) */
  port: number;
  /** Address to bind. (Default: 127.0.0.1) */
  host: string;
  /** A postgres:// URL; when unset, the embedded PGlite database under dataDir is used. */
  databaseUrl: string | undefined;
  /** Folder of the embedded database. (Default: ./.shardline) */
  dataDir: string;
  /** Region and account used in ARNs. (Defaults: us-east-1, 000000000000) */
  region: string;
  accountId: string;
  /** How long a DYNAMODB shard stays open before it rolls over to a child. (Default: 4 h) */
  dynamoShardRolloverMs: number;
  /** How often the housekeeper trims retention, rolls shards and prepares partitions. (Default: 30 s) */
  housekeepingIntervalMs: number;
  /** Records deleted per statement by the retention trimmer. (Default: 5000) */
  trimBatchSize: number;
  /** Folder of module functions; nothing outside it is ever loaded. (Default: ./functions) */
  functionsDir: string;
  /**
   * Memory for each shard's newest records this process wrote, which GetRecords reads without
   * a query (engine/records/recentRecords.ts); 0 turns it off. (Default: 128 MiB)
   */
  recentRecordsBytes: number;
  /**
   * Delivery: lease expiry, heartbeat and idle poll (defaults: 10 s, 1000 ms, 250 ms); false
   * with SHARDLINE_DELIVERY=off, for a process that serves the APIs and subscriptions only and
   * leaves delivery, replays and captures to the other processes on the same Postgres.
   */
  delivery: { leaseTtlMs: number; heartbeatMs: number; idlePollMs: number } | false;
  /** Capture sources: how many one process runs at once; the others wait for a free slot. (Default: 16) */
  capture: { maxSources: number };
  /** Bootstraps authentication: a bearer token with every scope, never stored. (Default: unset) */
  adminToken: string | undefined;
  /** Limits that keep the server up (api/queryLimits.ts, api/app.ts). */
  limits: Limits;
}

export interface Limits {
  /** Largest request body, GraphQL and AWS APIs alike. (Default: 16 MiB) */
  maxBodyBytes: number;
  /** Time a client has to send a whole request, headers and body, on HTTP/1.1 and HTTP/2 alike. (Default: 300 s, node's HTTP/1.1 default) */
  requestTimeoutMs: number;
  /** Deepest GraphQL selection. (Default: 12) */
  maxQueryDepth: number;
  /** Largest GraphQL query cost (GraphQL Armor's: a field weighs 1, an object 2, each level 1.5×, a literal `first` multiplies). (Default: 100,000: one page of 1,000 records) */
  maxQueryCost: number;
  /** Most aliases in one GraphQL operation. (Default: 30) */
  maxAliases: number;
  /** Open subscriptions on one graphql-ws connection. (Default: 100) */
  maxSubscriptionsPerConnection: number;
  /** Write requests per second per token (putRecords, writeItems, importRecords, Kinesis writes); 0 = unlimited. (Default: 100) */
  writeRequestsPerSecond: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 16 * 1024 * 1024,
  requestTimeoutMs: 300_000,
  maxQueryDepth: 12,
  maxQueryCost: 100_000,
  maxAliases: 30,
  maxSubscriptionsPerConnection: 100,
  writeRequestsPerSecond: 100,
};

export class ConfigError extends Error {}

/** Local mode (no token configured) may only listen where nobody else can reach it. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}".`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got ${raw}.`);
  return value;
}

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must start with postgres:// or postgresql://.');
  }
  const host = env.HOST?.trim() || '127.0.0.1';
  if (!/^[a-zA-Z0-9.:-]+$/.test(host)) throw new ConfigError(`HOST must be a host name or IP address, got "${host}".`);
  const region = env.SHARDLINE_REGION?.trim() || 'us-east-1';
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new ConfigError(`SHARDLINE_REGION must look like us-east-1, got "${region}".`);
  const accountId = env.SHARDLINE_ACCOUNT_ID?.trim() || '000000000000';
  if (!/^\d{12}$/.test(accountId)) throw new ConfigError(`SHARDLINE_ACCOUNT_ID must be 12 digits, got "${accountId}".`);
  const deliverySetting = env.SHARDLINE_DELIVERY?.trim().toLowerCase() || 'on';
  if (deliverySetting !== 'on' && deliverySetting !== 'off') throw new ConfigError(`SHARDLINE_DELIVERY must be on or off, got "${env.SHARDLINE_DELIVERY}".`);
  if (deliverySetting === 'off' && databaseUrl === undefined) {
    throw new ConfigError('SHARDLINE_DELIVERY=off needs DATABASE_URL: on the embedded PGlite this is the only process, and nothing else would deliver.');
  }
  const adminToken = env.SHARDLINE_ADMIN_TOKEN?.trim() || undefined;
  if (adminToken !== undefined && (adminToken.length < 24 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    throw new ConfigError('SHARDLINE_ADMIN_TOKEN must be at least 24 printable characters without spaces (e.g. openssl rand -hex 32).');
  }
  const leaseTtlMs = integer(env, 'SHARDLINE_LEASE_TTL_SECONDS', 10, 1, 3600) * SECOND;
  const heartbeatMs = integer(env, 'SHARDLINE_HEARTBEAT_MS', 1000, 10, 60_000);
  if (deliverySetting === 'on' && heartbeatMs * 2 > leaseTtlMs) {
    throw new ConfigError(`SHARDLINE_HEARTBEAT_MS (${heartbeatMs}) must be at most half of SHARDLINE_LEASE_TTL_SECONDS `
      + `(${leaseTtlMs / SECOND} s), or leases expire between renewals.`);
  }
  return {
    port: integer(env, 'PORT', 4000, 0, 65535),
    host,
    databaseUrl,
    dataDir: resolve(env.SHARDLINE_DATA_DIR?.trim() || './.shardline'),
    region,
    accountId,
    dynamoShardRolloverMs: integer(env, 'SHARDLINE_DDB_SHARD_ROLLOVER_SECONDS', 4 * 3600, 1, 7 * 24 * 3600) * SECOND,
    housekeepingIntervalMs: integer(env, 'SHARDLINE_HOUSEKEEPING_SECONDS', 30, 1, 3600) * SECOND,
    trimBatchSize: integer(env, 'SHARDLINE_TRIM_BATCH_SIZE', 5000, 1, 1_000_000),
    functionsDir: resolve(env.SHARDLINE_FUNCTIONS_DIR?.trim() || './functions'),
    recentRecordsBytes: integer(env, 'SHARDLINE_RECENT_RECORDS_MB', 128, 0, 1024 * 1024) * 1024 * 1024,
    delivery: deliverySetting === 'off' ? false : {
      leaseTtlMs,
      heartbeatMs,
      idlePollMs: integer(env, 'SHARDLINE_IDLE_POLL_MS', 250, 5, 60_000),
    },
    capture: { maxSources: integer(env, 'SHARDLINE_MAX_CAPTURE_SOURCES', 16, 1, 10_000) },
    adminToken,
    limits: {
      maxBodyBytes: integer(env, 'SHARDLINE_MAX_BODY_BYTES', DEFAULT_LIMITS.maxBodyBytes, 1024, 1024 * 1024 * 1024),
      requestTimeoutMs: integer(env, 'SHARDLINE_REQUEST_TIMEOUT_SECONDS', DEFAULT_LIMITS.requestTimeoutMs / SECOND, 1, 3600) * SECOND,
      maxQueryDepth: integer(env, 'SHARDLINE_MAX_QUERY_DEPTH', DEFAULT_LIMITS.maxQueryDepth, 2, 100),
      maxQueryCost: integer(env, 'SHARDLINE_MAX_QUERY_COST', DEFAULT_LIMITS.maxQueryCost, 10, 10_000_000),
      maxAliases: integer(env, 'SHARDLINE_MAX_ALIASES', DEFAULT_LIMITS.maxAliases, 1, 10_000),
      maxSubscriptionsPerConnection: integer(env, 'SHARDLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION', DEFAULT_LIMITS.maxSubscriptionsPerConnection, 1, 100_000),
      writeRequestsPerSecond: integer(env, 'SHARDLINE_WRITE_RATE_LIMIT', DEFAULT_LIMITS.writeRequestsPerSecond, 0, 1_000_000),
    },
  } satisfies Config;
}
