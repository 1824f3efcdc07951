/**
 * The alert feed behind the `alerts` subscription: each FIRING and RESOLVED transition, once.
 * After a resync (transitions in other processes may have gone unheard) it reads the alerts
 * that changed since the subscriber joined and pushes the transitions it has not seen.
 */
import { sql } from 'drizzle-orm';
import type { Engine } from '../engine.ts';
import { EventQueue } from '../observability/cancellable.ts';
import type { AlertInfo } from './alertRules.ts';

/** Transitions remembered per subscriber, so that none is pushed twice. */
const MAX_SEEN = 10_000;

export async function* watchAlerts(engine: Engine, signal: AbortSignal): AsyncGenerator<AlertInfo> {
  const joinedAt = new Date();
  const queue = new EventQueue<number>();
  const seen = new Set<string>();
  const offAlerts = engine.events.on('alerts', (e) => queue.push(e.alertId));
  const offResync = engine.events.on('resync', () => {
    engine.handle.query<{ id: string | number }>(sql`
      select id from alerts where started_at >= ${joinedAt.toISOString()}::timestamptz or resolved_at >= ${joinedAt.toISOString()}::timestamptz
       order by id`)
      .then((rows) => { for (const row of rows) queue.push(Number(row.id)); }, () => {}); // away again: the next resync
  });
  try {
    while (!signal.aborted) {
      const ids = await queue.take(signal);
      if (ids.length === 0) continue;
      const rows = await engine.alerts.alerts(null, [...new Set(ids)]);
      for (const id of new Set(ids)) {
        const alert = rows.find((a) => a.id === id);
        if (!alert) continue;
        const transition = `${alert.id}:${alert.state}`;
        if (seen.has(transition)) continue;
        seen.add(transition);
        if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value!);
        yield alert;
      }
    }
  } finally {
    offAlerts();
    offResync();
  }
}
