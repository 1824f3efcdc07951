/**
 * The failure feed behind the `failures` subscription: every failure row (function error,
 * timeout, partial failure, bisect, discard) of the mappings in scope, pushed as soon as the
 * transaction that recorded it commits — in this process or, through the notifier, another.
 * Events carry only ids; the rows are read from the database.
 *
 * One hub per engine serves every subscriber: it listens to the engine's failure events while
 * anyone subscribes, reads each event's rows once, and pushes the same FailureEvent objects to
 * every subscriber in scope (so the API can execute and serialise an event once for all of them
 * too). Each subscriber's queue is bounded: one that does not keep up loses the oldest events
 * (counted in `dropped`).
 */
import { eq, inArray } from 'drizzle-orm';
import type { Engine } from '../engine.ts';
import { failures, shards } from '../schema.ts';
import { EventQueue } from './cancellable.ts';
import { toFailureView } from '../delivery/deliveryLog.ts';

const MAX_QUEUE = 10_000;

export interface FailureEvent {
  failure: ReturnType<typeof toFailureView>;
  streamName: string;
  functionName: string;
}

interface Scope { mappingId?: string | null; streamName?: string | null }

interface Subscriber {
  scope: Scope;
  queue: EventQueue<FailureEvent>;
}

class FailureHub {
  readonly #subscribers = new Set<Subscriber>();
  #off: (() => void) | undefined;
  /** Events are pushed in the order they were heard, though their reads overlap. */
  #tail: Promise<void> = Promise.resolve();

  constructor(private readonly engine: Engine) {}

  join(subscriber: Subscriber): () => void {
    this.#subscribers.add(subscriber);
    this.#off ??= this.engine.events.on('failures', (e) => this.#heard(e.mappingId, e.ids));
    return () => {
      this.#subscribers.delete(subscriber);
      if (this.#subscribers.size === 0) {
        this.#off?.();
        this.#off = undefined;
      }
    };
  }

  #heard(mappingId: string, ids: number[]): void {
    const wanted = [...this.#subscribers].some((s) => !s.scope.mappingId || s.scope.mappingId === mappingId);
    if (!wanted) return;
    const read = failureEvents(this.engine, mappingId, ids);
    read.catch(() => {}); // handled in order below
    this.#tail = this.#tail.then(async () => {
      let events: FailureEvent[];
      try {
        events = await read;
      } catch (error) {
        // As when each subscriber read for itself: a failed read ends the subscriptions with the error.
        for (const s of this.#subscribers) s.queue.fail(error);
        return;
      }
      for (const s of this.#subscribers) {
        if (s.scope.mappingId && s.scope.mappingId !== mappingId) continue;
        for (const event of events) if (!s.scope.streamName || event.streamName === s.scope.streamName) s.queue.push(event);
      }
    });
  }
}

const hubs = new WeakMap<Engine, FailureHub>();

export async function* watchFailures(engine: Engine, scope: Scope, signal: AbortSignal): AsyncGenerator<FailureEvent> {
  if (scope.mappingId) await engine.mappings.get(scope.mappingId);
  if (scope.streamName) await engine.catalog.get(scope.streamName);
  let hub = hubs.get(engine);
  if (!hub) hubs.set(engine, (hub = new FailureHub(engine)));
  const subscriber: Subscriber = { scope, queue: new EventQueue<FailureEvent>(MAX_QUEUE) };
  const leave = hub.join(subscriber);
  try {
    while (!signal.aborted) {
      yield* await subscriber.queue.take(signal);
    }
  } finally {
    leave();
  }
}

/** The events of some failure rows of a mapping (none if the mapping or its stream is gone). */
async function failureEvents(engine: Engine, mappingId: string, ids: number[]): Promise<FailureEvent[]> {
  const mapping = await engine.mappings.find(mappingId);
  const stream = mapping ? await engine.catalog.findById(mapping.streamId) : undefined;
  if (!mapping || !stream) return [];
  const rows = await engine.handle.db.select({ f: failures, shardIndex: shards.shardIndex }).from(failures)
    .innerJoin(shards, eq(shards.key, failures.shardKey)).where(inArray(failures.id, ids)).orderBy(failures.id);
  return rows.map(({ f, shardIndex }) => ({ failure: toFailureView(f, shardIndex), streamName: stream.name, functionName: mapping.functionName }));
}
