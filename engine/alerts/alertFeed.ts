/** The alert feed behind the `alerts` subscription: each FIRING and RESOLVED transition, once. */
import type { Engine } from '../engine.ts';
import { EventQueue } from '../observability/cancellable.ts';
import type { AlertInfo } from './alertRules.ts';

export async function* watchAlerts(engine: Engine, signal: AbortSignal): AsyncGenerator<AlertInfo> {
  const queue = new EventQueue<number>();
  const off = engine.events.on('alerts', (e) => queue.push(e.alertId));
  try {
    while (!signal.aborted) {
      const ids = await queue.take(signal);
      if (ids.length === 0) continue;
      const rows = await engine.alerts.alerts(null, ids);
      for (const id of ids) {
        const alert = rows.find((a) => a.id === id);
        if (alert) yield alert;
      }
    }
  } finally {
    off();
  }
}
