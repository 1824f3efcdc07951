/**
 * Reading a replay range ahead of its delivery: each page starts where the batch formed from
 * the previous one ends (which is where delivery continues once that batch is DONE), so page
 * k + 1 is read as soon as page k has been read, back to back, while earlier batches are
 * invoked and committed. One read is in flight at a time and at most `depth` formed pages wait;
 * pages read past a batch that did not finish are dropped with the reader (close()).
 */
import type { FormedBatch } from '../delivery/batchForming.ts';

/** A formed page; no batch when the range has no records left. */
export interface FormedPage {
  batch: FormedBatch | undefined;
  /** Tumbling windows: the batch's window, and whether the batch ends it (a later window's record follows, or the range ends). */
  window?: { start: number; end: number; final: boolean };
}

export class ReadAhead {
  readonly #queue: Promise<FormedPage>[] = [];
  #last: Promise<FormedPage>;

  constructor(
    private readonly read: (afterSeq: bigint) => Promise<FormedPage>,
    startAfter: bigint,
    private readonly depth: number,
  ) {
    this.#last = settledLater(read(startAfter));
    this.#queue.push(this.#last);
    this.#fill();
  }

  /** The next page in order. */
  next(): Promise<FormedPage> {
    const page = this.#queue.shift()!;
    this.#fill();
    return page;
  }

  /** Waits for the reads still in flight (their pages are dropped). */
  async close(): Promise<void> {
    await Promise.all(this.#queue.splice(0).map((page) => page.catch(() => {})));
  }

  #fill(): void {
    while (this.#queue.length < this.depth) {
      this.#last = settledLater(this.#last.then((page) => (page.batch ? this.read(page.batch.pageEnd.seq) : page)));
      this.#queue.push(this.#last);
    }
  }
}

/** A read awaited later: its failure surfaces there, not as an unhandled rejection meanwhile. */
function settledLater<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}
