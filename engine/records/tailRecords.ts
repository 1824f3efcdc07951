/**
 * Live tail of a stream (or one shard): an async iterator of records committed after it
 * started. Wake-ups come from engine events; the database is read for the records themselves
 * (per-shard positions, so nothing committed late is skipped), with a slow fallback poll in
 * case an event is missed. Shards created later (reshard, rollover) are followed from their
 * first record. return() ends it at once, even while it waits.
 */
import type { EngineEvents } from '../events.ts';
import type { FeedCounts } from '../observability/feedCounts.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import type { RecordReader, StoredRecord } from './readRecords.ts';

const FALLBACK_POLL_MS = 1000;
const PAGE = 500;

export function tailRecords(
  catalog: StreamCatalog,
  reader: RecordReader,
  events: EngineEvents,
  feedCounts: FeedCounts,
  streamName: string,
  shardId?: string | null,
): AsyncIterableIterator<StoredRecord> {
  let stopped = false;
  let wake: () => void = () => {};
  let pending = true;
  const buffer: StoredRecord[] = [];
  let streamId: number | undefined;
  const offRecords = events.on('records', (e) => { if (e.streamId === streamId) { pending = true; wake(); } });
  const offShards = events.on('shards', (e) => { if (e.streamId === streamId) { pending = true; wake(); } });
  // The notifier's connection came back: records committed in other processes may have gone unheard.
  const offResync = events.on('resync', () => { pending = true; wake(); });
  const counted = feedCounts.join('records');

  const ready = (async () => {
    const stream = await catalog.get(streamName);
    streamId = stream.id;
    const shards = await reader.scope(stream, shardId);
    return { stream, positions: await reader.resolve(shards, { type: 'LATEST' }) };
  })();
  ready.catch(() => {});

  const stop = () => {
    stopped = true;
    offRecords();
    offShards();
    offResync();
    counted();
    wake();
  };

  const iterator: AsyncIterableIterator<StoredRecord> = {
    async next() {
      try {
        const { stream, positions } = await ready;
        while (!stopped && buffer.length === 0) {
          if (!pending) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, FALLBACK_POLL_MS);
              wake = () => { clearTimeout(timer); resolve(); };
            });
            wake = () => {};
          }
          if (stopped) break;
          pending = false;
          const current = await catalog.get(streamName);
          const shards = await reader.scope(current, shardId);
          const page = await reader.readAfter(stream, shards, positions, PAGE);
          buffer.push(...page.records.map((r) => r.record));
          if (page.hasNextPage) pending = true;
        }
      } catch (error) {
        // A failed read ends the tail, and nobody calls return() after a rejected next():
        // its listeners and its place in the subscriber count go now.
        stop();
        throw error;
      }
      if (stopped && buffer.length === 0) return { done: true, value: undefined };
      return { done: false, value: buffer.shift()! };
    },
    async return() {
      stop();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
