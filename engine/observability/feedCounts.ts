/**
 * This process's subscribers per feed, and the events its feeds dropped for subscribers that
 * did not keep up. A failures or alerts queue past its bound loses its oldest events; a lag
 * inbox keeps only the newest update per mapping, so an update replaced before it was sent
 * counts as dropped too. /metrics serves both, so an operator sees a subscriber falling behind
 * before anyone asks why a dashboard missed an event.
 */
export type FeedName = 'lag' | 'failures' | 'alerts' | 'replayProgress' | 'records';

export const FEED_NAMES: readonly FeedName[] = ['lag', 'failures', 'alerts', 'replayProgress', 'records'];

export class FeedCounts {
  readonly #subscribers = new Map<FeedName, number>();
  readonly #dropped = new Map<FeedName, number>();

  /** Counts a subscriber in; the function returned counts it out (once, however often it is called). */
  join(feed: FeedName): () => void {
    this.#subscribers.set(feed, this.subscribers(feed) + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#subscribers.set(feed, this.subscribers(feed) - 1);
    };
  }

  drop(feed: FeedName, events = 1): void {
    this.#dropped.set(feed, this.dropped(feed) + events);
  }

  /** Subscribers joined to the feed now. */
  subscribers(feed: FeedName): number {
    return this.#subscribers.get(feed) ?? 0;
  }

  /** Events the feed dropped so far, over every subscriber it has had. */
  dropped(feed: FeedName): number {
    return this.#dropped.get(feed) ?? 0;
  }
}
