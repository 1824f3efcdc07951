/**
 * The metrics sampler: every step (default 10 s) it writes one metric_samples row per mapping
 * and shard — iterator age (max over the shard's lanes) and records behind (sum over lanes),
 * both from delivery/lag.ts, and the step's invocations, errors and records processed from the
 * invocation log — and it keeps the table bounded: rows older than an hour are folded into
 * 60 s rows, rows older than a day into 3600 s rows, rows older than 7 days are deleted.
 * `history()` serves EventSourceMapping.metrics from those rows.
 *
 * Steps are aligned on the clock (a row's `at` is a multiple of the step), so every engine
 * process computes the same rows. Sampling runs in one transaction under a Postgres advisory
 * lock (pg_try_advisory_xact_lock) and is skipped when the lock is taken or the step already
 * has rows: several processes on one Postgres sample each step once. (PGlite is one process;
 * its transactions are exclusive, which serialises samplers just the same.)
 *
 * Counters. An invocation counts in the step in which it ended (started_at + duration_ms):
 * its log row is written then, so a step's counts are complete a moment after the step ends
 * whatever the function's timeout. Because a row commits a little after it ends, each tick
 * recomputes the counters of the steps of the last SETTLE window (at least 30 s) and upserts
 * them, reading only the recent end of the log (see logFloor.ts). The counters are those of
 * everything logged under the mapping's id (as EventSourceMapping.invocations lists it);
 * THROTTLED calls are not invocations (as in AWS), FUNCTION_ERROR, TIMEOUT and
 * PARTIAL_FAILURE are errors, and records processed is the record count of OK invocations.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED. The first tick runs at the
 * next step boundary.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { coerceError, invalidArgument, limitExceeded } from '../errors.ts';
import { mappingLag } from '../delivery/lag.ts';
import { INVOCATION_END, invocationFloor } from './logFloor.ts';

export interface MetricsSamplerOptions {
  /** Sampling step. (Default: 10 s) */
  stepMs?: number;
  /** Called with errors of a tick; the loop carries on at the next step. */
  onError?: (error: Error) => void;
}

export interface MetricPoint {
  at: Date;
  /** Max over shards and the bucket's samples; null when no lane has invoked yet. */
  iteratorAgeMs: number | null;
  /** Sum over shards, max over the bucket's samples. */
  recordsBehind: number;
  invocations: number;
  errors: number;
  recordsProcessed: number;
}

export interface CompactReport { toMinutes: number; toHours: number; expired: number }

export const DEFAULT_METRICS_STEP_MS = 10_000;
export const METRICS_LIMITS = { minStepMs: 100, maxStepMs: 600_000, maxPoints: 10_000, maxStepSeconds: 86_400 };
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Raw rows live this long, then become 60 s rows; those become 3600 s rows after a day. */
export const RETENTION = { rawMs: HOUR_MS, minuteMs: DAY_MS, totalMs: 7 * DAY_MS };
const LOCK_ID = 7_262_005;
const ERROR_OUTCOMES = sql`('FUNCTION_ERROR', 'TIMEOUT', 'PARTIAL_FAILURE')`;

export class MetricsSampler {
  readonly stepMs: number;
  /** step_seconds of the rows this sampler writes (sub-second steps, for tests, are written as 1). */
  readonly stepSeconds: number;
  /** How far back each tick recomputes counters, for invocations that commit late. */
  readonly settleMs: number;
  #state: 'STOPPED' | 'RUNNING' | 'STOPPING' = 'STOPPED';
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #lastCompact = 0;
  /** Serialises samples and compactions of this sampler (the loop's and direct calls). */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly options: MetricsSamplerOptions = {},
  ) {
    const stepMs = options.stepMs ?? DEFAULT_METRICS_STEP_MS;
    if (!Number.isInteger(stepMs) || stepMs < METRICS_LIMITS.minStepMs || stepMs > METRICS_LIMITS.maxStepMs) {
      throw invalidArgument(`metricsStepMs must be an integer between ${METRICS_LIMITS.minStepMs} and ${METRICS_LIMITS.maxStepMs}, got ${stepMs}.`);
    }
    this.stepMs = stepMs;
    this.stepSeconds = Math.max(1, Math.round(stepMs / 1000));
    this.settleMs = Math.max(3 * stepMs, 30_000);
  }

  /** One tick: a sample, and a compaction at most once a minute; `now` is injectable for tests. */
  async tick(now: Date = new Date()): Promise<void> {
    await this.sample(now);
    if (now.getTime() - this.#lastCompact >= MINUTE_MS) {
      await this.compact(now);
      this.#lastCompact = now.getTime();
    }
  }

  /**
   * Samples the step that contains `now` (and recomputes the recent steps' counters).
   * Resolves false when another process holds the step's lock or already sampled it.
   */
  sample(now: Date = new Date()): Promise<boolean> {
    return this.#serial(() => this.#sample(now));
  }

  async #sample(now: Date): Promise<boolean> {
    const step = this.stepMs;
    const bucket = Math.floor(now.getTime() / step) * step;
    const at = new Date(bucket).toISOString();
    const settleFrom = Math.floor((now.getTime() - this.settleMs) / step) * step;
    return this.handle.transaction(async (tx) => {
      if (this.handle.kind === 'postgres') {
        const [lock] = await this.handle.query<{ ok: boolean }>(sql`select pg_try_advisory_xact_lock(${LOCK_ID}) as ok`, tx);
        if (!lock?.ok) return false;
      }
      const [done] = await this.handle.query(sql`
        select 1 from metric_samples where step_seconds = ${this.stepSeconds}::int and at = ${at}::timestamptz limit 1`, tx);
      if (done) return false;

      // Gauges: the lag of every lease, summed (records behind) and maxed (iterator age) per shard.
      const leaseRows = await this.handle.query<{ mapping_id: string; shard_key: unknown; shard_index: number }>(sql`
        select distinct l.mapping_id, l.shard_key, s.shard_index
          from leases l join shards s on s.key = l.shard_key
         order by l.mapping_id, s.shard_index`, tx);
      const inTx: DatabaseHandle = { ...this.handle, query: (statement, executor) => this.handle.query(statement, executor ?? tx) };
      const gauges: SQL[] = [];
      for (const mappingId of new Set(leaseRows.map((r) => r.mapping_id))) {
        const keyOf = new Map(leaseRows.filter((r) => r.mapping_id === mappingId)
          .map((r) => [`shardId-${String(r.shard_index).padStart(12, '0')}`, Number(r.shard_key)]));
        const byShard = new Map<number, { age: number | null; behind: number }>();
        for (const lane of await mappingLag(inTx, mappingId)) {
          const key = keyOf.get(lane.shardId);
          // An ended lane has no lag to sample: rows per step stay bounded by the open shards.
          if (key === undefined || lane.state === 'SHARD_END') continue;
          const entry = byShard.get(key) ?? { age: null, behind: 0 };
          // Nothing behind: age 0, not the last batch's age kept forever (as /metrics and the alert rule).
          const age = lane.recordsBehind > 0 ? lane.iteratorAgeMs : 0;
          if (age !== null) entry.age = Math.max(entry.age ?? 0, age);
          entry.behind += lane.recordsBehind;
          byShard.set(key, entry);
        }
        for (const [key, g] of byShard) {
          gauges.push(sql`(${mappingId}, ${key}::bigint, ${this.stepSeconds}::int, ${at}::timestamptz,
            ${g.age}::bigint, ${g.behind}::bigint, 0, 0, 0)`);
        }
      }
      if (gauges.length > 0) {
        await tx.execute(sql`
          insert into metric_samples (mapping_id, shard_key, step_seconds, at, iterator_age_ms, records_behind, invocations, errors, records_processed)
          values ${sql.join(gauges, sql`, `)}
          on conflict (mapping_id, shard_key, step_seconds, at) do update set
            iterator_age_ms = greatest(metric_samples.iterator_age_ms, excluded.iterator_age_ms),
            records_behind = greatest(metric_samples.records_behind, excluded.records_behind)`);
      }

      // Counters of the settle window's steps, recomputed from the recent end of the log.
      await this.#upsertCounters(tx, new Date(settleFrom), new Date(bucket + step));
      return true;
    });
  }

  async #upsertCounters(tx: Database, from: Date, to: Date): Promise<void> {
    const floor = await invocationFloor(this.handle, from, tx);
    const step = this.stepMs;
    await tx.execute(sql`
      insert into metric_samples (mapping_id, shard_key, step_seconds, at, iterator_age_ms, records_behind, invocations, errors, records_processed)
      select mapping_id, shard_key, ${this.stepSeconds}::int,
             to_timestamp((floor(extract(epoch from ${INVOCATION_END}) * 1000 / ${step}::int) * ${step}::int) / 1000.0),
             null, null,
             count(*) filter (where outcome <> 'THROTTLED'),
             count(*) filter (where outcome in ${ERROR_OUTCOMES}),
             coalesce(sum(record_count) filter (where outcome = 'OK'), 0)
        from invocations
       where id > ${floor}::bigint
         and ${INVOCATION_END} >= ${from.toISOString()}::timestamptz and ${INVOCATION_END} < ${to.toISOString()}::timestamptz
         and mapping_id in (select id from event_source_mappings)
       group by 1, 2, 4
      on conflict (mapping_id, shard_key, step_seconds, at) do update set
        invocations = excluded.invocations, errors = excluded.errors, records_processed = excluded.records_processed`);
  }

  /**
   * Folds rows older than an hour into 60 s rows and rows older than a day into 3600 s rows
   * (max of the gauges, sums of the counters), and deletes rows older than 7 days.
   * Whole minutes and hours are folded at once, so a folded row is never folded again.
   */
  compact(now: Date = new Date()): Promise<CompactReport> {
    return this.#serial(() => this.handle.transaction(async (tx) => {
      if (this.handle.kind === 'postgres') await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_ID})`);
      const toMinutes = await this.#fold(tx, 60, Math.floor((now.getTime() - RETENTION.rawMs) / MINUTE_MS) * MINUTE_MS);
      const toHours = await this.#fold(tx, 3600, Math.floor((now.getTime() - RETENTION.minuteMs) / HOUR_MS) * HOUR_MS);
      const expired = await this.handle.query(sql`
        delete from metric_samples where at < ${new Date(now.getTime() - RETENTION.totalMs).toISOString()}::timestamptz returning 1`, tx);
      return { toMinutes, toHours, expired: expired.length };
    }));
  }

  /** Moves rows of finer steps than `seconds` from before `before` into rows of `seconds`; returns rows folded. */
  async #fold(tx: Database, seconds: number, before: number): Promise<number> {
    const [row] = await this.handle.query<{ n: unknown }>(sql`
      with moved as (
        delete from metric_samples where step_seconds < ${seconds}::int and at < ${new Date(before).toISOString()}::timestamptz
        returning *
      ), folded as (
        insert into metric_samples (mapping_id, shard_key, step_seconds, at, iterator_age_ms, records_behind, invocations, errors, records_processed)
        select mapping_id, shard_key, ${seconds}::int,
               to_timestamp(floor(extract(epoch from at) / ${seconds}::int) * ${seconds}::int),
               max(iterator_age_ms), max(records_behind), sum(invocations), sum(errors), sum(records_processed)
          from moved group by 1, 2, 4
        on conflict (mapping_id, shard_key, step_seconds, at) do update set
          iterator_age_ms = greatest(metric_samples.iterator_age_ms, excluded.iterator_age_ms),
          records_behind = greatest(metric_samples.records_behind, excluded.records_behind),
          invocations = metric_samples.invocations + excluded.invocations,
          errors = metric_samples.errors + excluded.errors,
          records_processed = metric_samples.records_processed + excluded.records_processed
        returning 1
      )
      select (select count(*) from moved) as n`, tx);
    return Number(row?.n ?? 0);
  }

  /**
   * A mapping's history in [from, to), summed over shards, in buckets of stepSeconds starting
   * at `from`. Buckets without samples are left out (no made-up zeros). A coarse row that
   * began before `from` counts in the first bucket.
   */
  async history(mappingId: string, from: Date, to: Date, stepSeconds: number): Promise<MetricPoint[]> {
    if (!(from instanceof Date) || !(to instanceof Date) || Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) {
      throw invalidArgument('from and to must be timestamps.');
    }
    if (from.getTime() >= to.getTime()) throw invalidArgument('from must be before to.');
    if (!Number.isInteger(stepSeconds) || stepSeconds < 1 || stepSeconds > METRICS_LIMITS.maxStepSeconds) {
      throw invalidArgument(`stepSeconds must be an integer between 1 and ${METRICS_LIMITS.maxStepSeconds}, got ${stepSeconds}.`);
    }
    const stepMs = stepSeconds * 1000;
    const points = Math.ceil((to.getTime() - from.getTime()) / stepMs);
    if (points > METRICS_LIMITS.maxPoints) {
      throw limitExceeded(`from..to at stepSeconds ${stepSeconds} is ${points} points; at most ${METRICS_LIMITS.maxPoints} are served (widen stepSeconds or narrow the range).`);
    }
    const rows = await this.handle.query<{
      at_ms: number; age: unknown; behind: unknown; invocations: unknown; errors: unknown; processed: unknown;
    }>(sql`
      select (extract(epoch from at) * 1000)::float8 as at_ms, max(iterator_age_ms) as age, sum(records_behind) as behind,
             sum(invocations) as invocations, sum(errors) as errors, sum(records_processed) as processed
        from metric_samples
       where mapping_id = ${mappingId}
         and at > ${new Date(from.getTime() - RETENTION.totalMs).toISOString()}::timestamptz
         and at + step_seconds * interval '1 second' > ${from.toISOString()}::timestamptz
         and at < ${to.toISOString()}::timestamptz
       group by at
       order by at`);
    const buckets = new Map<number, MetricPoint>();
    /** Steps whose records behind were sampled; a step of counters only takes the figure before it. */
    const sampled = new Set<number>();
    for (const r of rows) {
      const index = Math.max(0, Math.floor((r.at_ms - from.getTime()) / stepMs));
      const start = from.getTime() + index * stepMs;
      const point = buckets.get(start) ?? { at: new Date(start), iteratorAgeMs: null, recordsBehind: 0, invocations: 0, errors: 0, recordsProcessed: 0 };
      if (r.age !== null) point.iteratorAgeMs = Math.max(point.iteratorAgeMs ?? 0, Number(r.age));
      if (r.behind !== null) {
        point.recordsBehind = Math.max(point.recordsBehind, Number(r.behind));
        sampled.add(start);
      }
      point.invocations += Number(r.invocations);
      point.errors += Number(r.errors);
      point.recordsProcessed += Number(r.processed);
      buckets.set(start, point);
    }
    const served = [...buckets.values()].sort((a, b) => a.at.getTime() - b.at.getTime());
    // A step whose gauges went unsampled (a restart, a held lock) shows the figure before it,
    // not a false drop to 0.
    for (let i = 1; i < served.length; i++) {
      if (!sampled.has(served[i]!.at.getTime())) served[i]!.recordsBehind = served[i - 1]!.recordsBehind;
    }
    return served;
  }

  async start(): Promise<void> {
    if (this.#state !== 'STOPPED') return;
    this.#state = 'RUNNING';
    this.#schedule();
  }

  async stop(): Promise<void> {
    if (this.#state !== 'RUNNING') return;
    this.#state = 'STOPPING';
    clearTimeout(this.#timer);
    await this.#running;
    this.#state = 'STOPPED';
  }

  /** Next tick just after the next step boundary. */
  #schedule(): void {
    const now = Date.now();
    const delay = this.stepMs - (now % this.stepMs) + Math.min(50, Math.floor(this.stepMs / 10));
    this.#timer = setTimeout(() => {
      if (this.#state !== 'RUNNING') return;
      this.#running = this.tick()
        .catch((raw) => (this.options.onError ?? defaultOnError)(coerceError(raw)))
        .finally(() => {
          this.#running = undefined;
          if (this.#state === 'RUNNING') this.#schedule();
        });
    }, delay);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(fn, fn);
    this.#queue = result.catch(() => undefined);
    return result;
  }
}

function defaultOnError(error: Error): void {
  console.error(`shardline metrics sampler: ${error.message}`);
}
