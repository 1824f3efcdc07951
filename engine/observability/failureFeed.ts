/**
 * The failure feed behind the `failures` subscription: every failure row (function error,
 * timeout, partial failure, bisect, discard) of the mappings in scope, pushed as soon as the
 * transaction that recorded it commits — in this process or, through the notifier, another.
 * Events carry only ids; the rows are read from the database. The queue is bounded: a
 * subscriber that does not keep up loses the oldest events (counted in `dropped`).
 */
import { eq, inArray } from 'drizzle-orm';
import type { Engine } from '../engine.ts';
import { failures, shards } from '../schema.ts';
import { EventQueue } from './cancellable.ts';
import { ShortMemo } from '../shortMemo.ts';
import { toFailureView } from '../delivery/deliveryLog.ts';

const MAX_QUEUE = 10_000;

export interface FailureEvent {
  failure: ReturnType<typeof toFailureView>;
  streamName: string;
  functionName: string;
}

export async function* watchFailures(engine: Engine, scope: { mappingId?: string | null; streamName?: string | null }, signal: AbortSignal): AsyncGenerator<FailureEvent> {
  if (scope.mappingId) await engine.mappings.get(scope.mappingId);
  if (scope.streamName) await engine.catalog.get(scope.streamName);
  const queue = new EventQueue<{ mappingId: string; ids: number[] }>(MAX_QUEUE);
  const off = engine.events.on('failures', (e) => {
    if (!scope.mappingId || e.mappingId === scope.mappingId) queue.push({ mappingId: e.mappingId, ids: e.ids });
  });
  try {
    while (!signal.aborted) {
      for (const { mappingId, ids } of await queue.take(signal)) {
        for (const event of await failureEvents(engine, mappingId, ids)) {
          if (!scope.streamName || event.streamName === scope.streamName) yield event;
        }
      }
    }
  } finally {
    off();
  }
}

const recentEvents = new WeakMap<Engine, ShortMemo<FailureEvent[]>>();

/**
 * The events of some failure rows, read once for every subscriber that hears of them (a
 * thousand failure subscribers cost one read per event, not a thousand).
 */
function failureEvents(engine: Engine, mappingId: string, ids: number[]): Promise<FailureEvent[]> {
  let memo = recentEvents.get(engine);
  if (!memo) recentEvents.set(engine, (memo = new ShortMemo<FailureEvent[]>(5000)));
  return memo.get(`${mappingId}:${ids.join(',')}`, async () => {
    const mapping = await engine.mappings.find(mappingId);
    const stream = mapping ? await engine.catalog.findById(mapping.streamId) : undefined;
    if (!mapping || !stream) return [];
    const rows = await engine.handle.db.select({ f: failures, shardIndex: shards.shardIndex }).from(failures)
      .innerJoin(shards, eq(shards.key, failures.shardKey)).where(inArray(failures.id, ids)).orderBy(failures.id);
    return rows.map(({ f, shardIndex }) => ({ failure: toFailureView(f, shardIndex), streamName: stream.name, functionName: mapping.functionName }));
  });
}
