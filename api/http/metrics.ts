/**
 * GET /metrics: the store's figures in the Prometheus text format, through prom-client.
 * Each app has its own Registry; the figures are read from the database at scrape time
 * (engine/metrics/storeMetrics.ts) and handed to the metrics' collect() callbacks.
 *
 *   per lease not yet at SHARD_END (labels stream, mapping, function, shard, lane):
 *     shardline_iterator_age_ms, shardline_oldest_unprocessed_age_ms, shardline_records_behind
 *   per mapping and shard (labels stream, mapping, function, shard):
 *     shardline_invocations_total, shardline_errors_total, shardline_throttles_total,
 *     shardline_discarded_records_total, shardline_invocation_duration_seconds (histogram)
 *   per mapping and shard: shardline_time_to_data_loss_seconds (+Inf when nothing is at risk)
 *   per stream: shardline_records_ingested_total
 *   of this process only: shardline_recent_records_reads_total, shardline_recent_records_held_bytes
 *     (GetRecords answered from memory, engine/records/recentRecords.ts); per feed (label feed):
 *     shardline_subscribers, shardline_subscriber_events_dropped_total
 *     (engine/observability/feedCounts.ts)
 *
 * The counters and the histogram are totals of the invocation and failure logs, computed at
 * collect time rather than observed in this process: the delivery path that runs invocations
 * may be in another process (`shardline worker`), and the logs are the source of truth that
 * every process sees alike. prom-client's Histogram can only observe() one value at a time,
 * so the duration histogram is a small collector that hands the database's bucket counts to
 * the Registry's formatter.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, type Histogram, Registry } from 'prom-client';
import type { Engine } from '../../engine/engine.ts';
import { DURATION_BUCKETS_MS, StoreMetrics, type StoreMetricsSnapshot } from '../../engine/metrics/storeMetrics.ts';
import { FEED_NAMES } from '../../engine/observability/feedCounts.ts';

const LANE_LABELS = ['stream', 'mapping', 'function', 'shard', 'lane'] as const;
const MAPPING_LABELS = ['stream', 'mapping', 'function', 'shard'] as const;

export interface MetricsEndpoint {
  registry: Registry;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

export function metricsEndpoint(engine: Engine, logError: (error: unknown) => void): MetricsEndpoint {
  const store = new StoreMetrics(engine.handle);
  const registry = new Registry();
  let snapshot: StoreMetricsSnapshot | undefined;
  const current = () => snapshot ?? { lanes: [], mappings: [], streams: [], timeToDataLoss: [] };

  const laneGauge = (name: string, help: string, value: (l: StoreMetricsSnapshot['lanes'][number]) => number | null) =>
    new Gauge({
      name, help, labelNames: LANE_LABELS, registers: [registry],
      collect() {
        this.reset();
        for (const l of current().lanes) {
          const v = value(l);
          if (v !== null) this.set({ stream: l.stream, mapping: l.mapping, function: l.function, shard: l.shard, lane: String(l.lane) }, v);
        }
      },
    });
  laneGauge('shardline_iterator_age_ms', 'Age of the last record of the lease\'s last invocation when it was invoked (AWS IteratorAge), in milliseconds; 0 while the lease has nothing behind.', (l) => l.iteratorAgeMs);
  laneGauge('shardline_oldest_unprocessed_age_ms', 'Age of the oldest record the lease has not processed yet, in milliseconds.', (l) => l.oldestUnprocessedAgeMs);
  laneGauge('shardline_records_behind', 'Records of the lease after its checkpoint.', (l) => l.recordsBehind);

  const mappingCounter = (name: string, help: string, value: (m: StoreMetricsSnapshot['mappings'][number]) => number) =>
    new Counter({
      name, help, labelNames: MAPPING_LABELS, registers: [registry],
      collect() {
        this.reset();
        for (const m of current().mappings) this.inc({ stream: m.stream, mapping: m.mapping, function: m.function, shard: m.shard }, value(m));
      },
    });
  mappingCounter('shardline_invocations_total', 'Invocations of the mapping\'s function logged under the mapping (throttled calls excluded, as in AWS).', (m) => m.invocations);
  mappingCounter('shardline_errors_total', 'Invocations that ended in FUNCTION_ERROR, TIMEOUT or PARTIAL_FAILURE.', (m) => m.errors);
  mappingCounter('shardline_throttles_total', 'Calls throttled before the function ran (429 or service error, retried).', (m) => m.throttles);
  mappingCounter('shardline_discarded_records_total', 'Records discarded (retries exhausted or older than maximumRecordAgeSeconds).', (m) => m.discardedRecords);

  new Gauge({
    name: 'shardline_time_to_data_loss_seconds',
    help: 'Seconds until the oldest unprocessed record of the shard passes the stream\'s retention or the mapping\'s maximumRecordAgeSeconds, whichever is sooner (+Inf when nothing is unprocessed).',
    labelNames: ['stream', 'mapping', 'function', 'shard'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of current().timeToDataLoss) this.set({ stream: t.stream, mapping: t.mapping, function: t.function, shard: t.shard }, t.seconds);
    },
  });

  new Counter({
    name: 'shardline_records_ingested_total',
    help: 'Records ever written to the stream.',
    labelNames: ['stream'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of current().streams) this.inc({ stream: s.stream }, s.recordsIngested);
    },
  });

  registry.registerMetric(durationHistogram(current) as unknown as Histogram);

  new Counter({
    name: 'shardline_recent_records_reads_total',
    help: 'Kinesis GetRecords calls this process answered from its memory of the newest records, without a query (per process).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(engine.recentRecords.hits);
    },
  });
  new Gauge({
    name: 'shardline_recent_records_held_bytes',
    help: 'Size of the newest records this process holds for Kinesis readers, as GetRecords JSON characters (per process; SHARDLINE_RECENT_RECORDS_MB bounds it).',
    registers: [registry],
    collect() {
      this.set(engine.recentRecords.heldChars);
    },
  });

  new Gauge({
    name: 'shardline_subscribers',
    help: 'GraphQL subscriptions open on this process, per feed (lag, failures, alerts, replayProgress, records).',
    labelNames: ['feed'], registers: [registry],
    collect() {
      for (const feed of FEED_NAMES) this.set({ feed }, engine.feedCounts.subscribers(feed));
    },
  });
  new Counter({
    name: 'shardline_subscriber_events_dropped_total',
    help: 'Events a feed dropped for subscribers that did not keep up (the oldest past a queue\'s bound; for lag, an update replaced by a newer one before it was sent), per process.',
    labelNames: ['feed'], registers: [registry],
    collect() {
      this.reset();
      for (const feed of FEED_NAMES) this.inc({ feed }, engine.feedCounts.dropped(feed));
    },
  });

  let queue: Promise<unknown> = Promise.resolve();
  const render = (): Promise<string> => {
    const result = queue.then(async () => {
      snapshot = await store.read();
      try {
        return await registry.metrics();
      } finally {
        snapshot = undefined;
      }
    });
    queue = result.catch(() => undefined);
    return result;
  };

  return {
    registry,
    async handle(req, res) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
        return;
      }
      try {
        const body = await render();
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      } catch (error) {
        logError(error);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Metrics are unavailable; the server log has the details.\n');
      }
    },
  };
}

/** shardline_invocation_duration_seconds from the snapshot's bucket counts, in prom-client's metric shape. */
function durationHistogram(current: () => StoreMetricsSnapshot) {
  const name = 'shardline_invocation_duration_seconds';
  const help = 'Duration of the mapping\'s function invocations (throttled calls excluded), in seconds.';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: [...MAPPING_LABELS],
    reset() {},
    async get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const m of current().mappings) {
        const labels = { stream: m.stream, mapping: m.mapping, function: m.function, shard: m.shard };
        let cumulative = 0;
        DURATION_BUCKETS_MS.forEach((bound, i) => {
          cumulative += m.durationCounts[i] ?? 0;
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bound / 1000 }, value: cumulative });
        });
        cumulative += m.durationCounts[DURATION_BUCKETS_MS.length] ?? 0;
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cumulative });
        values.push({ metricName: `${name}_sum`, labels, value: m.durationSumMs / 1000 });
        values.push({ metricName: `${name}_count`, labels, value: cumulative });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
}
