/**
 * The alert feed behind the `alerts` subscription: each FIRING and RESOLVED transition, once.
 * After a resync (transitions in other processes may have gone unheard) it reads the alerts
 * that changed lately (one read for all subscribers) and pushes each subscriber the
 * transitions since it joined that it has not seen.
 */
import { sql } from 'drizzle-orm';
import type { Engine } from '../engine.ts';
import { EventQueue } from '../observability/cancellable.ts';
import { ShortMemo } from '../shortMemo.ts';
import type { AlertInfo } from './alertRules.ts';

/** Transitions remembered per subscriber, so that none is pushed twice. */
const MAX_SEEN = 10_000;

interface Changed { id: number; startedAt: number; resolvedAt: number | null }

/** One read of the alerts changed lately per resync, shared by every subscriber of the engine. */
const changedReads = new WeakMap<Engine, ShortMemo<Changed[]>>();

/** `after`: the resync's time; a read begun before it is not shared. */
function changedLately(engine: Engine, after: number): Promise<Changed[]> {
  let memo = changedReads.get(engine);
  if (!memo) changedReads.set(engine, (memo = new ShortMemo<Changed[]>(10_000)));
  return memo.entry('changed', async () => {
    const rows = await engine.handle.query<{ id: string | number; started_at: Date | string; resolved_at: Date | string | null }>(sql`
      select id, started_at, resolved_at from alerts
       where started_at >= now() - interval '1 hour' or resolved_at >= now() - interval '1 hour' order by id`);
    return rows.map((r) => ({ id: Number(r.id), startedAt: new Date(r.started_at).getTime(), resolvedAt: r.resolved_at === null ? null : new Date(r.resolved_at).getTime() }));
  }, after - 1).value;
}

export async function* watchAlerts(engine: Engine, signal: AbortSignal): AsyncGenerator<AlertInfo> {
  const joinedAt = Date.now();
  const queue = new EventQueue<number>(undefined, undefined, () => engine.feedCounts.drop('alerts'));
  const counted = engine.feedCounts.join('alerts');
  const seen = new Set<string>();
  const offAlerts = engine.events.on('alerts', (e) => queue.push(e.alertId));
  const offResync = engine.events.on('resync', (e) => {
    changedLately(engine, e.at).then((rows) => {
      for (const row of rows) if (row.startedAt >= joinedAt || (row.resolvedAt ?? 0) >= joinedAt) queue.push(row.id);
    }, () => {}); // away again: the next resync
  });
  try {
    while (!signal.aborted) {
      const ids = await queue.take(signal);
      if (ids.length === 0) continue;
      const rows = await engine.alerts.alerts(null, [...new Set(ids)]);
      for (const id of new Set(ids)) {
        const alert = rows.find((a) => a.id === id);
        if (!alert) continue;
        // Resolved before it was read for this subscriber: its FIRING, if it came after the
        // subscriber joined, is pushed first (with the value the alert holds now).
        if (alert.state === 'RESOLVED' && alert.startedAt.getTime() >= joinedAt && !seen.has(`${alert.id}:FIRING`)) {
          seen.add(`${alert.id}:FIRING`);
          yield { ...alert, state: 'FIRING', resolvedAt: null };
        }
        const transition = `${alert.id}:${alert.state}`;
        if (seen.has(transition)) continue;
        seen.add(transition);
        if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value!);
        yield alert;
      }
    }
  } finally {
    counted();
    offAlerts();
    offResync();
  }
}
