/**
 * Subscriptions end when the client goes away: graphql-ws calls return() on the iterator, but
 * an async generator waiting for its next event would only see that when the event comes. This
 * wraps a generator so return() also aborts a signal the generator's waits listen to, and the
 * generator ends at once (its finally blocks remove its listeners: nothing is left behind).
 */
export function cancellable<T>(make: (signal: AbortSignal) => AsyncGenerator<T>): AsyncIterableIterator<T> {
  const controller = new AbortController();
  const generator = make(controller.signal);
  const iterator: AsyncIterableIterator<T> = {
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
 * bound); `take` waits for at least one, or the abort.
 */
export class EventQueue<T> {
  readonly #items: T[] = [];
  #wake: () => void = () => {};
  dropped = 0;

  constructor(private readonly max = 10_000) {}

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length > this.max) {
      this.#items.shift();
      this.dropped++;
    }
    this.#wake();
  }

  /** Every queued item, once at least one is there; empty when aborted. */
  async take(signal: AbortSignal): Promise<T[]> {
    while (this.#items.length === 0 && !signal.aborted) {
      await waitForWake(signal, 60_000, (w) => { this.#wake = w; });
    }
    return this.#items.splice(0, this.#items.length);
  }
}
