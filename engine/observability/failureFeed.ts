/**
 * The failure feed behind the `failures` subscription: every failure row (function error,
 * timeout, partial failure, bisect, discard) of the mappings in scope, pushed as soon as the
 * transaction that recorded it commits — in this process or, through the notifier, another.
 * Events carry only ids; the rows are read from the database.
 *
 * One hub per engine serves every subscriber: it listens to the engine's failure events while
 * anyone subscribes, turns each event into FailureEvent objects once, and pushes the same
 * objects to every subscriber in scope (so the API can execute an event once for all of them
 * too). Rows raised in this process come with their event; only a remote event's rows are read
 * (one statement). A mapping's stream and function names and shards' indexes are remembered (a
 * mapping's until it changes). Each subscriber's queue is bounded: one that does not keep up
 * loses the oldest events (counted per feed: feedCounts.ts).
 */
import { eq, inArray, sql } from 'drizzle-orm';
import type { Engine } from '../engine.ts';
import { failures, shards } from '../schema.ts';
import { EventQueue, type SinkSlot } from './cancellable.ts';
import { toFailureView } from '../delivery/deliveryLog.ts';
import type { StreamInfo } from '../streams/model.ts';

const MAX_QUEUE = 10_000;
/** The log's mapping id of a replay that has no mapping (replayRunner.ts). */
const REPLAY_PREFIX = 'replay:';

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

type FailureRow = typeof failures.$inferSelect;

/** What an event says of its mapping, and the mapping's stream (for its shards). */
interface MappingNames { streamName: string; functionName: string; stream: StreamInfo }

const MAX_REMEMBERED_SHARDS = 100_000;
const MAX_HEARD_IDS = 100_000;
const MAX_CATCH_UP = 10_000;

class FailureHub {
  readonly #subscribers = new Set<Subscriber>();
  #offs: (() => void)[] = [];
  /** Per mapping: its stream's and function's names (undefined: the mapping or stream is gone). */
  readonly #names = new Map<string, Promise<MappingNames | undefined>>();
  /** Shard key -> shard index: a shard's index never changes. */
  readonly #shardIndexes = new Map<number, number>();
  /** The highest failure id heard from other processes (undefined until known): a catch-up reads the rows after it. */
  #highest: number | undefined;
  /** Ids heard lately, oldest first, so that no row is pushed twice. */
  readonly #heardIds = new Set<number>();
  /** Every mapping's names were asked for ahead (a subscriber to all mappings joined). */
  #warmedAll = false;
  /** Events are pushed in the order they were heard, though their reads overlap. */
  #tail: Promise<void> = Promise.resolve();

  constructor(private readonly engine: Engine) {}

  join(subscriber: Subscriber): () => void {
    this.#subscribers.add(subscriber);
    if (this.#offs.length === 0) {
      this.#offs = [
        this.engine.events.on('failures', (e) => this.#heard(e.mappingId, e.ids, e.rows, e.remote === true)),
        this.engine.events.on('resync', () => this.#catchUp()),
        this.engine.events.on('mappings', (e) => {
          this.#names.delete(e.mappingId);
          if (this.#wanted(e.mappingId)) this.#warm(e.mappingId);
        }),
      ];
      // Where a catch-up would start: rows recorded from now on are heard (or caught up).
      const started = this.#offs;
      this.engine.handle.query<{ id: string | number }>(sql`select coalesce(max(id), 0) as id from failures`).then(([row]) => {
        if (this.#offs === started) this.#highest = Math.max(this.#highest ?? 0, Number(row?.id ?? 0));
      }, () => {});
    }
    if (subscriber.scope.mappingId) {
      if (!this.#names.has(subscriber.scope.mappingId)) this.#warm(subscriber.scope.mappingId);
    }
    else if (!this.#warmedAll) {
      this.#warmedAll = true;
      this.engine.mappings.list().then((all) => all.forEach((m) => this.#warm(m.id)), () => {});
    }
    return () => {
      this.#subscribers.delete(subscriber);
      if (this.#subscribers.size === 0) {
        for (const off of this.#offs) off();
        this.#offs = [];
        this.#names.clear();
        this.#warmedAll = false;
        this.#highest = undefined;
        this.#heardIds.clear();
      }
    };
  }

  /**
   * Reads a mapping's names and its stream's shard indexes ahead of its first failure, which
   * then reaches subscribers without waiting on those reads (on a busy engine, tens of ms).
   */
  #warm(mappingId: string): void {
    void (async () => {
      const names = await this.#namesOf(mappingId);
      if (!names || this.#subscribers.size === 0) return;
      for (const shard of await this.engine.catalog.shards(names.stream, 'ALL')) {
        if (this.#shardIndexes.size < MAX_REMEMBERED_SHARDS) this.#shardIndexes.set(shard.key, shard.shardIndex);
      }
    })().catch(() => {}); // a failure's own reads try again
  }

  /**
   * After a resync (the notifier's connection was lost for a while): the rows recorded since the
   * highest id heard, as if their events had arrived. Ids are allocated before commit, so a row
   * committed late with a lower id can still be missed; a resync is rare and the gap short.
   */
  #catchUp(): void {
    const from = this.#highest;
    if (from === undefined) return;
    void (async () => {
      const rows = await this.engine.handle.query<{ id: string | number; mapping_id: string }>(sql`
        select id, mapping_id from failures where id > ${from} order by id limit ${MAX_CATCH_UP}`);
      const byMapping = new Map<string, number[]>();
      for (const row of rows) byMapping.set(row.mapping_id, [...(byMapping.get(row.mapping_id) ?? []), Number(row.id)]);
      for (const [mappingId, ids] of byMapping) this.#heard(mappingId, ids, undefined, true);
    })().catch(() => {}); // the database is away again: the next resync catches up
  }

  /** Whether any subscriber's scope takes a mapping's failures. */
  #wanted(mappingId: string): boolean {
    for (const s of this.#subscribers) if (!s.scope.mappingId || s.scope.mappingId === mappingId) return true;
    return false;
  }

  /**
   * `fromElsewhere`: heard from another process (or read back by a catch-up). Only those move
   * the catch-up's start: this process's own rows, with ids from the same sequence, would pass
   * over another process's rows whose notifications were lost.
   */
  #heard(mappingId: string, heardIds: number[], heardRows: FailureRow[] | undefined, fromElsewhere: boolean): void {
    // Each id once: a catch-up after a resync may read rows whose events arrive meanwhile.
    const ids = heardIds.filter((id) => !this.#heardIds.has(id));
    if (ids.length === 0) return;
    for (const id of ids) {
      this.#heardIds.add(id);
      if (fromElsewhere && this.#highest !== undefined && id > this.#highest) this.#highest = id;
    }
    for (const id of this.#heardIds) {
      if (this.#heardIds.size <= MAX_HEARD_IDS) break;
      this.#heardIds.delete(id); // the oldest first
    }
    const rows = heardRows && ids.length < heardIds.length ? heardRows.filter((r) => ids.includes(r.id)) : heardRows;
    if (!this.#wanted(mappingId)) return;
    const read = this.#events(mappingId, ids, rows);
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

  /** The events of some failure rows of a mapping (none if the mapping or its stream is gone). */
  async #events(mappingId: string, ids: number[], given: FailureRow[] | undefined): Promise<FailureEvent[]> {
    const names = await this.#namesOf(mappingId);
    if (!names) return [];
    let rows: { f: FailureRow; shardIndex: number }[];
    if (given) {
      await this.#rememberShards(given.map((f) => f.shardKey));
      rows = given.map((f) => ({ f, shardIndex: this.#shardIndexes.get(f.shardKey)! }));
    } else {
      rows = await this.engine.handle.db.select({ f: failures, shardIndex: shards.shardIndex }).from(failures)
        .innerJoin(shards, eq(shards.key, failures.shardKey)).where(inArray(failures.id, ids)).orderBy(failures.id);
    }
    const { streamName, functionName } = names;
    return rows.map(({ f, shardIndex }) => ({ failure: toFailureView(f, shardIndex), streamName, functionName }));
  }

  #namesOf(mappingId: string): Promise<MappingNames | undefined> {
    let names = this.#names.get(mappingId);
    if (!names) {
      names = (async () => {
        if (mappingId.startsWith(REPLAY_PREFIX)) {
          // A replay without a mapping logs its failures under its own id: its stream and function.
          const job = await this.engine.replays.find(mappingId.slice(REPLAY_PREFIX.length));
          const stream = job ? await this.engine.catalog.find(job.streamName) : undefined;
          return job && stream ? { streamName: stream.name, functionName: job.functionName, stream } : undefined;
        }
        const mapping = await this.engine.mappings.find(mappingId);
        const stream = mapping ? await this.engine.catalog.findById(mapping.streamId) : undefined;
        return mapping && stream ? { streamName: stream.name, functionName: mapping.functionName, stream } : undefined;
      })();
      this.#names.set(mappingId, names);
      names.catch(() => this.#names.delete(mappingId));
    }
    return names;
  }

  async #rememberShards(keys: number[]): Promise<void> {
    const missing = [...new Set(keys)].filter((k) => !this.#shardIndexes.has(k));
    if (missing.length === 0) return;
    if (this.#shardIndexes.size > MAX_REMEMBERED_SHARDS) this.#shardIndexes.clear();
    const rows = await this.engine.handle.db.select({ key: shards.key, shardIndex: shards.shardIndex }).from(shards).where(inArray(shards.key, missing));
    for (const r of rows) this.#shardIndexes.set(r.key, r.shardIndex);
  }
}

const hubs = new WeakMap<Engine, FailureHub>();

export async function* watchFailures(engine: Engine, scope: Scope, signal: AbortSignal, slot?: SinkSlot<FailureEvent>): AsyncGenerator<FailureEvent> {
  if (scope.mappingId) await engine.mappings.get(scope.mappingId);
  if (scope.streamName) await engine.catalog.get(scope.streamName);
  let hub = hubs.get(engine);
  if (!hub) hubs.set(engine, (hub = new FailureHub(engine)));
  const subscriber: Subscriber = { scope, queue: new EventQueue<FailureEvent>(MAX_QUEUE, slot, () => engine.feedCounts.drop('failures')) };
  const leave = hub.join(subscriber);
  const counted = engine.feedCounts.join('failures');
  try {
    while (!signal.aborted) {
      yield* await subscriber.queue.take(signal);
    }
  } finally {
    counted();
    leave();
  }
}

