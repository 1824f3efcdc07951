/**
 * Following a replay job: yields the job as it stands at once, then each change (wake-ups from
 * engine events, from any process through the notifier, with a slow fallback poll), and ends
 * after the job reaches a final state. Changes are coalesced to at most one every 100 ms.
 */
import type { Engine } from '../engine.ts';
import type { ReplayJobView } from './replayJobs.ts';
import { waitForWake } from '../observability/cancellable.ts';

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const FALLBACK_POLL_MS = 1000;
const COALESCE_MS = 100;

export async function* watchReplay(engine: Engine, id: string, signal: AbortSignal): AsyncGenerator<ReplayJobView> {
  let wake: () => void = () => {};
  let pending = false;
  const off = engine.events.on('replays', (e) => {
    if (e.jobId !== id) return;
    pending = true;
    wake();
  });
  // The notifier's connection came back: changes in other processes may have gone unheard.
  const offResync = engine.events.on('resync', () => {
    pending = true;
    wake();
  });
  const counted = engine.feedCounts.join('replayProgress');
  try {
    let last = '';
    while (!signal.aborted) {
      pending = false;
      const job = await engine.replays.get(id);
      const fingerprint = JSON.stringify([job.state, job.deliveredRecords, job.failedRecords, job.shards, job.error, job.finishedAt]);
      if (fingerprint !== last) {
        last = fingerprint;
        yield job;
      }
      if (FINAL.has(job.state)) return;
      await waitForWake(signal, COALESCE_MS, () => {});
      if (!pending) await waitForWake(signal, FALLBACK_POLL_MS, (w) => { wake = w; });
    }
  } finally {
    counted();
    off();
    offResync();
  }
}
