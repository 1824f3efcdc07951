/**
 * Subscriptions end when the client goes away: graphql-ws calls return() on the iterator, but
 * an async generator waiting for its next event would only see that when the event comes. This
 * wraps a generator so return() also aborts a signal the generator's waits listen to, and the
 * generator ends at once (its finally blocks remove its listeners: nothing is left behind).
 */
export function cancellable<T>(make: (signal: AbortSignal, slot: SinkSlot<NoInfer<T>>) => AsyncGenerator<T>): SinkableIterator<T> {
  const controller = new AbortController();
  const slot: SinkSlot<T> = { sink: undefined };
  const generator = make(controller.signal, slot);
  const iterator: SinkableIterator<T> = {
    [attachSink]: (sink) => { slot.sink = sink; },
    next: () => generator.next(),
    return: async (value?: unknown) => {
      controller.abort();
      return generator.return(value as T);
    },
    throw: (error?: unknown) => {
      controller.abort();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/**
 * A consumer that takes a feed's events synchronously as they are pushed, instead of waking to
 * take them from the queue: a thousand subscribers then cost a thousand calls, not a thousand
 * promise chains. The queue offers an event to the sink only while its consumer is parked in
 * take() with nothing queued, so the sink never overtakes an event on its way through the
 * generator. The sink returns false to refuse one (the event is queued as usual and the sink
 * detached; the consumer attaches it again when it is idle).
 */
export type EventSink<T> = (item: T) => boolean;

/** Where a feed's queue finds its consumer's sink, if one is attached. */
export interface SinkSlot<T> { sink: EventSink<T> | undefined }

export const attachSink = Symbol('attachSink');

/** A subscription's iterator whose consumer may take events through a sink (api/sharedSubscriptionExecution.ts). */
export interface SinkableIterator<T> extends AsyncIterableIterator<T> {
  [attachSink](sink: EventSink<T> | undefined): void;
}

/** Offers an item to the slot's sink; false when there is none or it refused (and is detached). */
export function offerToSink<T>(slot: SinkSlot<T> | undefined, item: T): boolean {
  const sink = slot?.sink;
  if (!sink) return false;
  if (sink(item)) return true;
  slot.sink = undefined;
  return false;
}

/** Waits for a wake-up, a timeout or the abort, whichever comes first. */
export function waitForWake(signal: AbortSignal, timeoutMs: number, register: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      register(() => {});
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    signal.addEventListener('abort', done);
    register(done);
  });
}

/**
 * A bounded queue of engine events for one subscriber: events pushed while it is busy wait
 * here (the oldest dropped past `max`, so a slow subscriber cannot grow memory without
 * bound); `take` waits for at least one, or the abort, and throws once the feed has failed. A
 * wait costs no timer and the abort is listened to once per queue: a feed may push to thousands
 * of queues per event.
 */
export class EventQueue<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #abortHeard = false;
  #failed: { error: unknown } | undefined;

  /** `onDrop`: told of each event dropped past `max` (counted per feed, engine/observability/feedCounts.ts). */
  constructor(private readonly max = 10_000, private readonly slot?: SinkSlot<T>, private readonly onDrop?: () => void) {}

  push(item: T): void {
    if (this.#wake && this.#items.length === 0 && offerToSink(this.slot, item)) return;
    this.#items.push(item);
    if (this.#items.length > this.max) {
      this.#items.shift();
      this.onDrop?.();
    }
    this.#notify();
  }

  /** Ends the subscriber's wait: its next take() throws `error`. */
  fail(error: unknown): void {
    this.#failed = { error };
    this.#notify();
  }

  /** Every queued item, once at least one is there; empty when aborted. */
  async take(signal: AbortSignal): Promise<T[]> {
    if (this.#items.length === 0 && !signal.aborted && !this.#failed) {
      if (!this.#abortHeard) {
        this.#abortHeard = true;
        signal.addEventListener('abort', () => this.#notify(), { once: true });
      }
      await new Promise<void>((resolve) => { this.#wake = resolve; });
    }
    if (this.#failed) throw this.#failed.error;
    const items = this.#items;
    this.#items = [];
    return items;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
