/**
 * Evaluates alert rules continuously (every intervalMs). A rule's condition is its metric over
 * its threshold (for its mapping, or all mappings): the rule remembers since when the
 * condition holds; after forSeconds an alert is stored FIRING, and when the condition clears
 * that alert becomes RESOLVED. Each transition is stored and announced once. With several
 * processes on one Postgres one evaluates at a time (a transaction advisory lock).
 *
 * Metrics: ITERATOR_AGE_MS (max over the lanes with records behind: a lane caught up or ended
 * keeps its last batch's age, which says nothing now), RECORDS_BEHIND (sum), ERROR_RATE (errors
 * ÷ invocations over the last minute), DISCARDED_RECORDS (records discarded in the last minute
 * and forSeconds, so that one discard holds the condition long enough to fire),
 * TIME_TO_DATA_LOSS_SECONDS (the soonest over lanes; its condition is the value BELOW the
 * threshold, and it never holds while nothing is unprocessed).
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPED.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { mappingLag } from '../delivery/lag.ts';
import { coerceError } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { ALERT_EVALUATION_LOCK, type AlertRuleInfo } from './alertRules.ts';

const LOCK_ID = ALERT_EVALUATION_LOCK;
const WINDOW_SECONDS = 60;
const WINDOW = sql`interval '60 seconds'`;

export class AlertEvaluator {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly events: EngineEvents,
    private readonly intervalMs: number,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const loop = () => {
      if (this.#stopped) return;
      this.#running = this.evaluate().catch((raw) => this.onError(coerceError(raw))).finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(loop, this.intervalMs);
      });
    };
    this.#timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  async #value(rule: AlertRuleInfo): Promise<number> {
    const mappingIds = rule.mappingId ? [rule.mappingId]
      : (await this.handle.query<{ id: string }>(sql`select id from event_source_mappings`)).map((r) => r.id);
    if (rule.metric === 'ITERATOR_AGE_MS' || rule.metric === 'RECORDS_BEHIND' || rule.metric === 'TIME_TO_DATA_LOSS_SECONDS') {
      let value = rule.metric === 'TIME_TO_DATA_LOSS_SECONDS' ? Infinity : 0;
      for (const id of mappingIds) {
        const lag = await mappingLag(this.handle, id);
        if (rule.metric === 'RECORDS_BEHIND') value += lag.reduce((sum, l) => sum + l.recordsBehind, 0);
        else if (rule.metric === 'ITERATOR_AGE_MS') value = Math.max(value, ...lag.filter((l) => l.recordsBehind > 0).map((l) => l.iteratorAgeMs ?? 0));
        else value = Math.min(value, ...lag.map((l) => l.timeToDataLossSeconds ?? Infinity));
      }
      return value;
    }
    if (mappingIds.length === 0) return 0;
    if (rule.metric === 'ERROR_RATE') {
      const [row] = await this.handle.query<{ total: unknown; errors: unknown }>(sql`
        select count(*) as total, count(*) filter (where outcome in ('FUNCTION_ERROR', 'TIMEOUT', 'PARTIAL_FAILURE')) as errors
          from invocations where mapping_id = any(${sql.param(mappingIds)}::text[]) and started_at > now() - ${WINDOW}
           and outcome <> 'THROTTLED'`);
      const total = Number(row?.total ?? 0);
      return total === 0 ? 0 : Number(row?.errors ?? 0) / total;
    }
    const [row] = await this.handle.query<{ n: unknown }>(sql`
      select coalesce(sum(record_count), 0) as n from failures
       where mapping_id = any(${sql.param(mappingIds)}::text[]) and kind in ('RETRIES_EXHAUSTED', 'RECORD_EXPIRED')
         and at > now() - make_interval(secs => ${WINDOW_SECONDS + rule.forSeconds}::float8)`);
    return Number(row?.n ?? 0);
  }

  /** One pass over every rule. */
  async evaluate(): Promise<void> {
    const announced: number[] = [];
    const readValues = async () => {
      const values = new Map<string, number>();
      for (const rule of await this.handle.query<{ id: string; mapping_id: string | null; metric: string; threshold: number; for_seconds: number; name: string }>(sql`
        select id, name, mapping_id, metric, threshold, for_seconds from alert_rules where deleted_at is null`)) {
        values.set(rule.id, await this.#value({ id: rule.id, name: rule.name, mappingId: rule.mapping_id, metric: rule.metric as AlertRuleInfo['metric'], threshold: rule.threshold, forSeconds: rule.for_seconds }));
      }
      return values;
    };
    // On Postgres the values are read once this process holds the lock (on other connections):
    // values read before it could be older than the transitions another process just stored,
    // and undo them. On PGlite (one process, one connection) they are read before the
    // transaction, where a read outside it would wait for it forever.
    let values = this.handle.kind === 'postgres' ? undefined : await readValues();
    await this.handle.transaction(async (tx) => {
      if (this.handle.kind === 'postgres') {
        const [lock] = await this.handle.query<{ ok: boolean }>(sql`select pg_try_advisory_xact_lock(${LOCK_ID}) as ok`, tx);
        if (!lock?.ok) return;
        values = await readValues();
      }
      const rules = await this.handle.query<{ id: string; name: string; mapping_id: string | null; metric: string; threshold: number;
        for_seconds: number; held_ms: number | null; open_alert: unknown }>(sql`
        select r.id, r.name, r.mapping_id, r.metric, r.threshold, r.for_seconds,
               (extract(epoch from now() - r.condition_since) * 1000)::float8 as held_ms,
               (select a.id from alerts a where a.rule_id = r.id and a.state = 'FIRING' order by a.id desc limit 1) as open_alert
          from alert_rules r where r.deleted_at is null`, tx);
      for (const r of rules) {
        const rule: AlertRuleInfo = { id: r.id, name: r.name, mappingId: r.mapping_id, metric: r.metric as AlertRuleInfo['metric'], threshold: r.threshold, forSeconds: r.for_seconds };
        const value = values!.get(rule.id);
        if (value === undefined) continue;
        const holds = rule.metric === 'TIME_TO_DATA_LOSS_SECONDS' ? value < rule.threshold : value > rule.threshold;
        if (holds) {
          if (r.held_ms === null) await tx.execute(sql`update alert_rules set condition_since = now() where id = ${r.id}`);
          if (r.open_alert === null && (r.held_ms ?? 0) >= rule.forSeconds * 1000 && (r.held_ms !== null || rule.forSeconds === 0)) {
            const [alert] = await this.handle.query<{ id: unknown }>(sql`
              insert into alerts (rule_id, state, value, started_at) values (${r.id}, 'FIRING', ${finite(value)}, now()) returning id`, tx);
            announced.push(Number(alert!.id));
          }
        } else {
          if (r.held_ms !== null) await tx.execute(sql`update alert_rules set condition_since = null where id = ${r.id}`);
          if (r.open_alert !== null) {
            await tx.execute(sql`update alerts set state = 'RESOLVED', resolved_at = now(), value = ${finite(value)} where id = ${Number(r.open_alert)}`);
            announced.push(Number(r.open_alert));
          }
        }
      }
    });
    for (const alertId of announced) this.events.emit('alerts', { alertId });
  }
}

/** Stored values are finite (an unbounded time to data loss is stored as -1). */
const finite = (value: number) => (Number.isFinite(value) ? value : -1);
