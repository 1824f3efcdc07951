/** The alert feed behind the `alerts` subscription: each FIRING and RESOLVED transition, once. */
import type { Engine } from '../engine.ts';
import { waitForWake } from '../observability/cancellable.ts';
import type { AlertInfo } from './alertRules.ts';

export async function* watchAlerts(engine: Engine, signal: AbortSignal): AsyncGenerator<AlertInfo> {
  const queue: number[] = [];
  let wake: () => void = () => {};
  const off = engine.events.on('alerts', (e) => {
    queue.push(e.alertId);
    if (queue.length > 10_000) queue.shift();
    wake();
  });
  try {
    while (!signal.aborted) {
      if (queue.length === 0) {
        await waitForWake(signal, 60_000, (w) => { wake = w; });
        continue;
      }
      const ids = queue.splice(0, queue.length);
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
