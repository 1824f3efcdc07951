/** Alert rules: create, list, delete, with validation; and the stored alerts. */
import { randomUUID } from 'node:crypto';
import { and, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import type { MappingCatalog } from '../mappings/mappingCatalog.ts';
import { alertRules, alerts } from '../schema.ts';

/** The advisory lock an evaluation pass holds (alertEvaluator.ts). */
export const ALERT_EVALUATION_LOCK = 7_262_003;

export const ALERT_METRICS = ['ITERATOR_AGE_MS', 'RECORDS_BEHIND', 'ERROR_RATE', 'DISCARDED_RECORDS', 'TIME_TO_DATA_LOSS_SECONDS'] as const;
export type AlertMetric = (typeof ALERT_METRICS)[number];

export interface AlertRuleInfo { id: string; name: string; mappingId: string | null; metric: AlertMetric; threshold: number; forSeconds: number }
export interface AlertInfo { id: number; rule: AlertRuleInfo; state: 'FIRING' | 'RESOLVED'; value: number; startedAt: Date; resolvedAt: Date | null }

const toRule = (r: typeof alertRules.$inferSelect): AlertRuleInfo => ({
  id: r.id, name: r.name, mappingId: r.mappingId, metric: r.metric as AlertMetric, threshold: r.threshold, forSeconds: r.forSeconds,
});

export class AlertRules {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly mappings: MappingCatalog,
  ) {}

  async create(input: { name: string; mappingId?: string | null; metric: string; threshold: number; forSeconds?: number | null }): Promise<AlertRuleInfo> {
    if (input.name.length < 1 || input.name.length > 128) throw invalidArgument(`name must be 1–128 characters, got ${input.name.length}.`);
    if (!ALERT_METRICS.includes(input.metric as AlertMetric)) throw invalidArgument(`metric must be one of ${ALERT_METRICS.join(', ')}.`);
    if (!Number.isFinite(input.threshold)) throw invalidArgument('threshold must be a finite number.');
    // Every metric is 0 or more: a negative threshold would hold (or never) from the start.
    if (input.threshold < 0) throw invalidArgument(`threshold must be 0 or more, got ${input.threshold}.`);
    if (input.metric === 'ERROR_RATE' && input.threshold >= 1) {
      throw invalidArgument(`threshold of ERROR_RATE is a fraction of the invocations, from 0 up to (not including) 1, got ${input.threshold}.`);
    }
    const forSeconds = input.forSeconds ?? 60;
    if (!Number.isInteger(forSeconds) || forSeconds < 0 || forSeconds > 86_400) {
      throw invalidArgument(`forSeconds must be an integer between 0 and 86400, got ${forSeconds}.`);
    }
    if (input.mappingId != null) await this.mappings.get(input.mappingId); // "" too: a rule names a mapping or none
    const [row] = await this.handle.db.insert(alertRules).values({
      id: randomUUID(), name: input.name, mappingId: input.mappingId ?? null, metric: input.metric, threshold: input.threshold, forSeconds,
    }).returning();
    return toRule(row!);
  }

  async list(): Promise<AlertRuleInfo[]> {
    return (await this.handle.db.select().from(alertRules).where(isNull(alertRules.deletedAt)).orderBy(alertRules.createdAt)).map(toRule);
  }

  /**
   * Deletes a rule: it is no longer listed or evaluated, and its alert, if FIRING, is RESOLVED
   * (nothing watches its condition any more). The rule row stays, marked, for the alerts that
   * name it. Returns the ids of the alerts resolved, to be announced.
   */
  async delete(id: string): Promise<number[]> {
    return this.handle.transaction(async (tx) => {
      // After any evaluation in flight (alertEvaluator.ts holds this lock for its pass): one that
      // read the rule before the delete cannot then fire an alert nothing would ever resolve.
      if (this.handle.kind === 'postgres') await tx.execute(sql`select pg_advisory_xact_lock(${ALERT_EVALUATION_LOCK})`);
      const deleted = await tx.update(alertRules).set({ deletedAt: sql`now()`, conditionSince: null })
        .where(and(eq(alertRules.id, id), isNull(alertRules.deletedAt))).returning({ id: alertRules.id });
      if (deleted.length === 0) throw new ShardlineError('INVALID_ARGUMENT', `Alert rule ${id} does not exist.`);
      const resolved = await tx.update(alerts).set({ state: 'RESOLVED', resolvedAt: sql`now()` })
        .where(and(eq(alerts.ruleId, id), eq(alerts.state, 'FIRING'))).returning({ id: alerts.id });
      return resolved.map((a) => a.id);
    });
  }

  async alerts(state?: 'FIRING' | 'RESOLVED' | null, ids?: number[]): Promise<AlertInfo[]> {
    const rows = await this.handle.db.select({ a: alerts, r: alertRules }).from(alerts)
      .innerJoin(alertRules, eq(alertRules.id, alerts.ruleId))
      .where(ids ? inArray(alerts.id, ids) : state ? eq(alerts.state, state) : undefined)
      .orderBy(desc(alerts.id)).limit(1000);
    return rows.map(({ a, r }) => ({ id: a.id, rule: toRule(r), state: a.state, value: a.value, startedAt: a.startedAt, resolvedAt: a.resolvedAt }));
  }
}
