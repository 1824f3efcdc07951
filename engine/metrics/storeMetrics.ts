/**
 * Store metrics for scraping (api/http/metrics.ts renders them with prom-client): the lag of
 * every lease, per-mapping-and-shard totals of the invocation and failure logs, a histogram of
 * invocation durations, records ingested per stream, and time to data loss.
 *
 * Everything is read from the database at scrape time, so every engine process on one
 * Postgres reports the same store-wide figures (scrape one, or aggregate with max, not sum).
 * The log totals are kept incrementally: rows below a settled id floor (logFloor.ts) are
 * added up once and remembered, the few rows above it are counted again at every scrape.
 * The first read of an instance therefore scans the logs once; later reads touch only the
 * recent end. Totals only grow, as counters must.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { mappingLag } from '../delivery/lag.ts';
import { shardIdOf } from '../streams/model.ts';
import { failureFloor, invocationFloor } from './logFloor.ts';

/** Totals are kept per (mapping, shard): "<mapping id> <shard key>" (ids hold no space). */
const totalsKey = (mappingId: string, shardKey: unknown) => `${mappingId} ${Number(shardKey)}`;
const mappingOf = (key: string) => key.slice(0, key.lastIndexOf(' '));
const shardKeyOf = (key: string) => Number(key.slice(key.lastIndexOf(' ') + 1));

/** Upper bounds of the duration histogram, in milliseconds. */
export const DURATION_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000];

export interface MappingLabels { stream: string; mapping: string; function: string }

export interface LaneFigures extends MappingLabels {
  shard: string;
  lane: number;
  iteratorAgeMs: number | null;
  oldestUnprocessedAgeMs: number | null;
  recordsBehind: number;
}

export interface MappingTotals {
  invocations: number;
  errors: number;
  throttles: number;
  discardedRecords: number;
  /** Invocations (throttles excluded) per duration bucket: counts[i] have duration ≤ DURATION_BUCKETS_MS[i] and > the bound before; the last entry is above every bound. */
  durationCounts: number[];
  durationSumMs: number;
}

export interface StoreMetricsSnapshot {
  lanes: LaneFigures[];
  /** Log totals per mapping and shard (the shard's id; replays' rows count under their mapping too). */
  mappings: (MappingLabels & { shard: string } & MappingTotals)[];
  streams: { stream: string; recordsIngested: number }[];
  /**
   * Per mapping and shard: seconds until the oldest unprocessed record passes the stream's
   * retention or the mapping's maximumRecordAgeSeconds, whichever is sooner; Infinity when
   * nothing is unprocessed.
   */
  timeToDataLoss: (MappingLabels & { shard: string; seconds: number })[];
}

const emptyTotals = (): MappingTotals => ({
  invocations: 0, errors: 0, throttles: 0, discardedRecords: 0,
  durationCounts: new Array<number>(DURATION_BUCKETS_MS.length + 1).fill(0), durationSumMs: 0,
});

function addTotals(into: MappingTotals, more: MappingTotals): void {
  into.invocations += more.invocations;
  into.errors += more.errors;
  into.throttles += more.throttles;
  into.discardedRecords += more.discardedRecords;
  into.durationSumMs += more.durationSumMs;
  more.durationCounts.forEach((n, i) => { into.durationCounts[i] = (into.durationCounts[i] ?? 0) + n; });
}

export class StoreMetrics {
  #settled = { invocationId: 0, failureId: 0, totals: new Map<string, MappingTotals>() };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly handle: DatabaseHandle) {}

  /** A consistent-enough snapshot of every figure; concurrent reads are serialised. */
  read(now: Date = new Date()): Promise<StoreMetricsSnapshot> {
    const result = this.#queue.then(() => this.#read(now));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #read(now: Date): Promise<StoreMetricsSnapshot> {
    const mappings = await this.handle.query<{
      id: string; function_name: string; maximum_record_age_seconds: number; stream: string; retention_hours: number;
    }>(sql`
      select m.id, m.function_name, m.maximum_record_age_seconds, s.name as stream, s.retention_hours
        from event_source_mappings m join streams s on s.id = m.stream_id and s.deleted_at is null
       order by s.name, m.id`);

    const lanes: LaneFigures[] = [];
    const timeToDataLoss: StoreMetricsSnapshot['timeToDataLoss'] = [];
    for (const m of mappings) {
      const labels = { stream: m.stream, mapping: m.id, function: m.function_name };
      const soonestByShard = new Map<string, number>();
      for (const lag of await mappingLag(this.handle, m.id)) {
        // A shard read to its end has nothing left to measure: its series end with it, so
        // reshards and DynamoDB rollovers do not add series without bound.
        if (lag.state === 'SHARD_END') continue;
        // A lane with nothing behind has no age to report: the last batch's would stay forever
        // (and an alert on it never clear), as the ITERATOR_AGE_MS rule already treats it.
        lanes.push({ ...labels, shard: lag.shardId, lane: lag.lane, iteratorAgeMs: lag.recordsBehind > 0 ? lag.iteratorAgeMs : 0,
          oldestUnprocessedAgeMs: lag.oldestUnprocessedAgeMs, recordsBehind: lag.recordsBehind });
        // The lag rows' figure (null: nothing at risk at the current drain rate), soonest over lanes.
        const seconds = lag.timeToDataLossSeconds ?? Infinity;
        soonestByShard.set(lag.shardId, Math.min(soonestByShard.get(lag.shardId) ?? Infinity, seconds));
      }
      for (const [shard, seconds] of soonestByShard) timeToDataLoss.push({ ...labels, shard, seconds });
    }

    const streams = (await this.handle.query<{ stream: string; n: unknown }>(sql`
      select s.name as stream, coalesce(sum(sh.record_count), 0) as n
        from streams s left join shards sh on sh.stream_id = s.id
       where s.deleted_at is null group by s.name order by s.name`))
      .map((r) => ({ stream: r.stream, recordsIngested: Number(r.n) }));

    const totals = await this.#totals(now);

    const shardIds = new Map((await this.handle.query<{ key: unknown; shard_index: number }>(sql`
      select key, shard_index from shards where key = any(${sql.param([...new Set([...totals.keys()].map(shardKeyOf))])}::bigint[])`))
      .map((r) => [Number(r.key), shardIdOf(r.shard_index)]));
    const byMapping = new Map(mappings.map((m) => [m.id, m]));
    const perShard: StoreMetricsSnapshot['mappings'] = [];
    for (const [key, t] of [...totals].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const m = byMapping.get(mappingOf(key));
      const shard = shardIds.get(shardKeyOf(key));
      if (m && shard) perShard.push({ stream: m.stream, mapping: m.id, function: m.function_name, shard, ...t });
    }
    // Every shard a lane reads has its counters from the start, at 0 (rate() and absent() need
    // the series before the first invocation); an ended shard's stay, as counters do.
    const present = new Set(perShard.map((p) => `${p.mapping} ${p.shard}`));
    for (const lane of lanes) {
      if (present.has(`${lane.mapping} ${lane.shard}`)) continue;
      present.add(`${lane.mapping} ${lane.shard}`);
      perShard.push({ stream: lane.stream, mapping: lane.mapping, function: lane.function, shard: lane.shard, ...emptyTotals() });
    }
    return {
      lanes,
      mappings: perShard,
      streams,
      timeToDataLoss,
    };
  }

  /** Settled totals (advanced to the current floors) plus the rows above the floors. */
  async #totals(now: Date): Promise<Map<string, MappingTotals>> {
    const settled = this.#settled;
    const invocationId = Math.max(settled.invocationId, await invocationFloor(this.handle, now));
    const failureId = Math.max(settled.failureId, await failureFloor(this.handle, now));
    if (invocationId > settled.invocationId || failureId > settled.failureId) {
      const more = await this.#aggregate(settled.invocationId, invocationId, settled.failureId, failureId);
      for (const [id, t] of more) {
        const into = settled.totals.get(id) ?? emptyTotals();
        addTotals(into, t);
        settled.totals.set(id, into);
      }
      settled.invocationId = invocationId;
      settled.failureId = failureId;
    }
    const fresh = await this.#aggregate(invocationId, null, failureId, null);
    const result = new Map<string, MappingTotals>();
    for (const source of [settled.totals, fresh]) {
      for (const [id, t] of source) {
        const into = result.get(id) ?? emptyTotals();
        addTotals(into, t);
        result.set(id, into);
      }
    }
    return result;
  }

  /** Totals of invocations with id in (invFrom, invTo] and failures with id in (failFrom, failTo] (null: no upper bound). */
  async #aggregate(invFrom: number, invTo: number | null, failFrom: number, failTo: number | null): Promise<Map<string, MappingTotals>> {
    const result = new Map<string, MappingTotals>();
    const get = (id: string) => {
      const t = result.get(id) ?? emptyTotals();
      result.set(id, t);
      return t;
    };
    if (invTo === null || invTo > invFrom) {
      const bounds = sql.raw(`array[${DURATION_BUCKETS_MS.join(',')}]::int[]`);
      const rows = await this.handle.query<{ mapping_id: string; shard_key: unknown; outcome: string; bucket: number; n: unknown; ms: unknown }>(sql`
        select mapping_id, shard_key, outcome, width_bucket(duration_ms - 1, ${bounds}) as bucket, count(*) as n, coalesce(sum(duration_ms), 0) as ms
          from invocations
         where id > ${invFrom}::bigint ${invTo === null ? sql`` : sql`and id <= ${invTo}::bigint`}
         group by 1, 2, 3, 4`);
      for (const r of rows) {
        const t = get(totalsKey(r.mapping_id, r.shard_key));
        const n = Number(r.n);
        if (r.outcome === 'THROTTLED') {
          t.throttles += n;
          continue;
        }
        t.invocations += n;
        if (r.outcome === 'FUNCTION_ERROR' || r.outcome === 'TIMEOUT' || r.outcome === 'PARTIAL_FAILURE') t.errors += n;
        const bucket = Math.min(Number(r.bucket), DURATION_BUCKETS_MS.length);
        t.durationCounts[bucket] = (t.durationCounts[bucket] ?? 0) + n;
        t.durationSumMs += Number(r.ms);
      }
    }
    if (failTo === null || failTo > failFrom) {
      const rows = await this.handle.query<{ mapping_id: string; shard_key: unknown; n: unknown }>(sql`
        select mapping_id, shard_key, coalesce(sum(record_count), 0) as n
          from failures
         where id > ${failFrom}::bigint ${failTo === null ? sql`` : sql`and id <= ${failTo}::bigint`}
           and kind in ('RETRIES_EXHAUSTED', 'RECORD_EXPIRED')
         group by 1, 2`);
      for (const r of rows) get(totalsKey(r.mapping_id, r.shard_key)).discardedRecords += Number(r.n);
    }
    return result;
  }
}
