/**
 * The lag feed behind the `lag` subscription: the current figures of every mapping in scope at
 * once, then an update whenever a mapping's leases change or records arrive on its stream,
 * coalesced to at most one per mapping every COALESCE_MS, and at least every HEARTBEAT_MS while
 * anything is behind (a stuck lane is never silent). Wake-ups come from engine events (from
 * any process, through the notifier); the figures are read from the database.
 *
 * One hub per engine serves every subscriber: while anyone subscribes it listens to the
 * engine's events, reads each watched mapping's figures at most once per COALESCE_MS on one
 * timer, and puts the same LagUpdate objects in the inbox of every subscriber in scope. Only a
 * subscriber's first state is read for it alone (through engine.recentLag, shared within 250 ms).
 * An inbox keeps the latest update per mapping: a subscriber that does not keep up skips the
 * figures it had no time to send (counted per feed: feedCounts.ts) and never holds more than one update
 * per mapping.
 */
import type { Engine } from '../engine.ts';
import type { ShardLag } from '../delivery/lag.ts';
import type { MappingInfo } from '../mappings/mappingCatalog.ts';
import { type SinkSlot, offerToSink } from './cancellable.ts';

export interface LagUpdate {
  mappingId: string;
  streamName: string;
  shards: ShardLag[];
  recordsBehind: number;
  maxIteratorAgeMs: number | null;
  at: Date;
}

/**
 * Two updates a second per mapping at most ("a few per second"): each update is a message to
 * every subscriber, and with a thousand of them 4/s cost the server a third more than 2/s.
 */
const COALESCE_MS = 500;
const HEARTBEAT_MS = 2000;

interface Scope { mappingId?: string | null; streamName?: string | null }
interface Watched { mapping: MappingInfo; streamName: string }

/** `notBefore`: a change was heard then; a shared read begun before it would not show it. */
export async function lagUpdate(engine: Engine, mapping: MappingInfo, streamName: string, notBefore?: number): Promise<LagUpdate> {
  // Stamped with the read's start: a subscriber's inbox drops updates older than what it has,
  // so a slow read finishing late must not pass for newer figures.
  const read = engine.recentLagRead(mapping.id, notBefore);
  const shards = await read.value;
  const ages = shards.map((s) => s.iteratorAgeMs).filter((a): a is number => a !== null);
  return {
    mappingId: mapping.id,
    streamName,
    shards,
    recordsBehind: shards.reduce((sum, s) => sum + s.recordsBehind, 0),
    maxIteratorAgeMs: ages.length ? Math.max(...ages) : null,
    at: new Date(read.at),
  };
}

const fingerprintOf = (update: LagUpdate) => JSON.stringify(update.shards);

const covers = (scope: Scope, mappingId: string, streamName: string) =>
  (!scope.mappingId || scope.mappingId === mappingId) && (!scope.streamName || scope.streamName === streamName);

/** One subscriber's updates not yet sent: the latest per mapping. */
class LagInbox {
  readonly #pending = new Map<string, { update: LagUpdate; fingerprint: string; heartbeat: boolean }>();
  /** What was last handed to the subscriber, per mapping. */
  readonly #sent = new Map<string, { fingerprint: string; at: number }>();
  #wake: (() => void) | undefined;
  #abortHeard = false;
  #failed: { error: unknown } | undefined;

  constructor(readonly scope: Scope, private readonly slot?: SinkSlot<LagUpdate>, private readonly onDrop?: () => void) {}

  put(update: LagUpdate, fingerprint: string, heartbeat: boolean): void {
    if (this.#wake && this.#pending.size === 0 && this.slot?.sink) {
      // Handed straight to the idle consumer, through the same filter as take().
      if (this.#seen(update, fingerprint, heartbeat)) return;
      if (offerToSink(this.slot, update)) {
        this.#markSent(update, fingerprint);
        return;
      }
    }
    if (this.#pending.has(update.mappingId)) this.onDrop?.();
    this.#pending.set(update.mappingId, { update, fingerprint, heartbeat });
    this.#notify();
  }

  fail(error: unknown): void {
    this.#failed = { error };
    this.#notify();
  }

  /** Notes an update handed to the subscriber outside the inbox (its first state). */
  sent(update: LagUpdate): void {
    this.#markSent(update, fingerprintOf(update));
  }

  /**
   * The pending updates, once there is one: none older than what the subscriber already has,
   * and no change it has already seen (heartbeats always go).
   */
  async take(signal: AbortSignal): Promise<LagUpdate[]> {
    for (;;) {
      if (this.#pending.size === 0 && !signal.aborted && !this.#failed) {
        if (!this.#abortHeard) {
          this.#abortHeard = true;
          signal.addEventListener('abort', () => this.#notify(), { once: true });
        }
        await new Promise<void>((resolve) => { this.#wake = resolve; });
      }
      if (this.#failed) throw this.#failed.error;
      if (signal.aborted) return [];
      const out: LagUpdate[] = [];
      for (const { update, fingerprint, heartbeat } of this.#pending.values()) {
        if (this.#seen(update, fingerprint, heartbeat)) continue;
        this.#markSent(update, fingerprint);
        out.push(update);
      }
      this.#pending.clear();
      if (out.length) return out;
    }
  }

  /** Older than what the subscriber has, or a change it has seen (heartbeats always go). */
  #seen(update: LagUpdate, fingerprint: string, heartbeat: boolean): boolean {
    const sent = this.#sent.get(update.mappingId);
    return sent !== undefined && (update.at.getTime() < sent.at || (!heartbeat && fingerprint === sent.fingerprint));
  }

  #markSent(update: LagUpdate, fingerprint: string): void {
    this.#sent.set(update.mappingId, { fingerprint, at: update.at.getTime() });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

const ALL = '*';

class LagHub {
  readonly #inboxes = new Set<LagInbox>();
  /** The distinct scopes subscribed to, with their subscriber counts. */
  readonly #scopes = new Map<string, { scope: Scope; count: number }>();
  #offs: (() => void)[] = [];
  /** Every mapping with its stream's name; undefined until read, and after a mapping changed. */
  #mappings: Watched[] | undefined;
  /** Counts mapping changes: a list read before the latest change is used once, never kept. */
  #mappingsVersion = 0;
  /** Mappings changed since the last run, with when the latest change was heard. */
  readonly #dirty = new Map<string, number>();
  /** What was last pushed (or checked) per mapping. */
  readonly #last = new Map<string, { fingerprint: string; at: number }>();
  #timer: NodeJS.Timeout | undefined;
  #timerDue = 0;
  #running = false;
  #lastRun = 0;

  constructor(private readonly engine: Engine) {}

  join(inbox: LagInbox): () => void {
    this.#inboxes.add(inbox);
    const key = `${inbox.scope.mappingId ?? ''}\u0000${inbox.scope.streamName ?? ''}`;
    const scope = this.#scopes.get(key);
    if (scope) scope.count++;
    else this.#scopes.set(key, { scope: inbox.scope, count: 1 });
    if (this.#offs.length === 0) {
      const { events } = this.engine;
      const readAgain = () => {
        this.#mappingsVersion++;
        this.#mappings = undefined;
        this.#mark(ALL);
      };
      this.#offs = [
        events.on('leases', (e) => this.#mark(e.mappingId)),
        events.on('records', (e) => {
          if (!this.#mappings) return this.#mark(ALL);
          for (const { mapping } of this.#mappings) if (mapping.streamId === e.streamId) this.#mark(mapping.id);
        }),
        events.on('mappings', readAgain),
        // Other processes' changes may have gone unheard: read the mappings and figures again.
        events.on('resync', readAgain),
      ];
      this.#schedule(Date.now() + COALESCE_MS);
    }
    return () => {
      if (!this.#inboxes.delete(inbox)) return;
      const left = this.#scopes.get(key)!;
      if (--left.count === 0) this.#scopes.delete(key);
      if (this.#inboxes.size > 0) return;
      for (const off of this.#offs) off();
      this.#offs = [];
      clearTimeout(this.#timer);
      this.#timer = undefined;
      // Unheard from now on: a list being read may miss the changes made meanwhile.
      this.#mappingsVersion++;
      this.#mappings = undefined;
      this.#dirty.clear();
      this.#last.clear();
    };
  }

  #mark(mappingId: string): void {
    this.#dirty.set(mappingId, Date.now());
    this.#schedule(this.#lastRun + COALESCE_MS);
  }

  /** One timer for every subscriber: runs at `due` (or sooner, if already set for sooner). */
  #schedule(due: number): void {
    if (this.#running || this.#offs.length === 0) return; // a run reschedules when it ends
    if (this.#timer) {
      if (this.#timerDue <= due) return;
      clearTimeout(this.#timer);
    }
    this.#timerDue = due;
    this.#timer = setTimeout(() => void this.#run(), Math.max(0, due - Date.now()));
  }

  async #run(): Promise<void> {
    this.#timer = undefined;
    this.#running = true;
    this.#lastRun = Date.now();
    const dirty = new Map(this.#dirty);
    this.#dirty.clear();
    try {
      let mappings = this.#mappings;
      if (!mappings) {
        const version = this.#mappingsVersion;
        mappings = await this.#readMappings();
        // A mapping created or changed during the read may be missing from it: the change marked
        // every mapping dirty, so the next run reads the list again.
        if (version === this.#mappingsVersion) this.#mappings = mappings;
      }
      const scopes = [...this.#scopes.values()].map((s) => s.scope);
      for (const { mapping, streamName } of mappings) {
        if (this.#offs.length === 0) return; // everyone left meanwhile
        if (!scopes.some((scope) => covers(scope, mapping.id, streamName))) continue;
        const now = Date.now();
        const last = this.#last.get(mapping.id);
        const checkDue = last !== undefined && now - last.at >= HEARTBEAT_MS;
        if (last && !checkDue && !dirty.has(mapping.id) && !dirty.has(ALL)) continue;
        const update = await lagUpdate(this.engine, mapping, streamName, Math.max(dirty.get(mapping.id) ?? 0, dirty.get(ALL) ?? 0));
        const fingerprint = fingerprintOf(update);
        const heartbeat = checkDue && update.recordsBehind > 0;
        if (last?.fingerprint !== fingerprint || heartbeat) {
          this.#last.set(mapping.id, { fingerprint, at: now });
          for (const inbox of this.#inboxes) if (covers(inbox.scope, mapping.id, streamName)) inbox.put(update, fingerprint, heartbeat);
        } else if (checkDue) {
          last.at = now; // checked: unchanged and nothing behind
        }
      }
    } catch (error) {
      // As when each subscriber read for itself: a failed read ends the subscriptions with the error.
      for (const inbox of this.#inboxes) inbox.fail(error);
    } finally {
      this.#running = false;
      if (this.#offs.length > 0) {
        // Next: the coalescing period after this run if anything changed meanwhile, else the
        // earliest heartbeat (or check of figures that change without an event, such as ages).
        let due = this.#lastRun + HEARTBEAT_MS;
        for (const { at } of this.#last.values()) due = Math.min(due, at + HEARTBEAT_MS);
        if (this.#dirty.size > 0) due = Math.min(due, this.#lastRun + COALESCE_MS);
        this.#schedule(Math.max(due, this.#lastRun + COALESCE_MS));
      }
    }
  }

  async #readMappings(): Promise<Watched[]> {
    const out: Watched[] = [];
    for (const mapping of await this.engine.mappings.list(null)) {
      const stream = await this.engine.catalog.findById(mapping.streamId);
      if (stream) out.push({ mapping, streamName: stream.name });
    }
    const ids = new Set(out.map((w) => w.mapping.id));
    for (const id of this.#last.keys()) if (!ids.has(id)) this.#last.delete(id);
    return out;
  }
}

const hubs = new WeakMap<Engine, LagHub>();

async function mappingsInScope(engine: Engine, scope: Scope): Promise<Watched[]> {
  const mappings = scope.mappingId ? [await engine.mappings.get(scope.mappingId)] : await engine.mappings.list(scope.streamName ?? null);
  const out: Watched[] = [];
  for (const mapping of mappings) {
    const stream = await engine.catalog.findById(mapping.streamId);
    if (stream && (!scope.streamName || stream.name === scope.streamName)) out.push({ mapping, streamName: stream.name });
  }
  return out;
}

export async function* watchLag(engine: Engine, scope: Scope, signal: AbortSignal, slot?: SinkSlot<LagUpdate>): AsyncGenerator<LagUpdate> {
  let hub = hubs.get(engine);
  if (!hub) hubs.set(engine, (hub = new LagHub(engine)));
  const inbox = new LagInbox(scope, slot, () => engine.feedCounts.drop('lag'));
  const leave = hub.join(inbox); // before the first state is read: no change after it is missed
  const counted = engine.feedCounts.join('lag');
  try {
    for (const { mapping, streamName } of await mappingsInScope(engine, scope)) {
      const update = await lagUpdate(engine, mapping, streamName);
      inbox.sent(update);
      yield update;
    }
    while (!signal.aborted) yield* await inbox.take(signal);
  } finally {
    counted();
    leave();
  }
}
