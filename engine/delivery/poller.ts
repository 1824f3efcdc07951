/**
 * The poller: the part of an engine process that delivers. Every heartbeat it creates the
 * leases mappings have met (new mappings, new shards), renews the leases it holds (stopping
 * the lanes of leases taken from it), claims free or expired ones up to its fair share or
 * steals from the most loaded process, and runs a Lane for each lease it holds. New records wake the lanes of their stream at once; idle lanes also look again every
 * idlePollMs, so a missed wake-up only delays, never loses.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED. stop() lets each lane finish
 * its current step, then releases every lease so another process can take over at once.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { coerceError } from '../errors.ts';
import { TickLoop } from '../tickLoop.ts';
import type { EngineEvents } from '../events.ts';
import { Lane, type LaneDeps } from './lane.ts';
import { LeaseTable, leaseKey } from './leaseTable.ts';

export interface PollerOptions {
  /** A lease not renewed for this long may be taken over by another process. (Default: 10 s) */
  leaseTtlMs: number;
  /** How often leases are renewed, balanced and claimed. (Default: 1 s) */
  heartbeatMs: number;
  /** How long an idle lane waits before it looks again without a wake-up. (Default: 250 ms) */
  idlePollMs: number;
}

export const DEFAULT_POLLER_OPTIONS: PollerOptions = { leaseTtlMs: 10_000, heartbeatMs: 1000, idlePollMs: 250 };

export class Poller {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly leases: LeaseTable;
  readonly #lanes = new Map<string, Lane>();
  /**
   * Lanes stopped (their lease lost) whose invocation may still be in flight: a new lane of the
   * same lease claimed meanwhile starts after them, so one lane never has two batches out at once.
   */
  readonly #finishing = new Map<string, Promise<void>>();
  readonly #loop: TickLoop;
  /** Stop listening to the engine's events (set by start()). */
  #offs: (() => void)[] = [];

  constructor(
    private readonly deps: Omit<LaneDeps, 'leases' | 'idlePollMs' | 'events'>,
    private readonly events: EngineEvents,
    private readonly options: PollerOptions = DEFAULT_POLLER_OPTIONS,
  ) {
    this.leases = new LeaseTable(deps.handle, this.owner, options.leaseTtlMs);
    this.#loop = new TickLoop(() => this.#tick(), options.heartbeatMs, deps.onError);
  }

  get laneCount(): number {
    return this.#lanes.size;
  }

  async start(): Promise<void> {
    if (!this.#loop.start()) return;
    const reread = () => {
      this.poke();
      // A changed mapping (batch size, enabled …) is re-read by its lanes at their next step.
      for (const lane of this.#lanes.values()) lane.invalidate();
    };
    this.#offs = [
      this.events.on('records', (e) => this.#wakeStream(e.streamId)),
      this.events.on('shards', () => this.poke()),
      // A parent shard read to its end (here or in another process): its children go on now,
      // not at their next idle poll.
      this.events.on('leases', (e) => {
        if (!e.shardEnded) return;
        for (const lane of this.#lanes.values()) if (lane.lease.mappingId === e.mappingId && lane.waitingForParent) lane.wake();
      }),
      this.events.on('mappings', reread),
      // Records, mapping and shard changes from other processes may have gone unheard.
      this.events.on('resync', reread),
    ];
    await this.#loop.first();
  }

  /** Runs a heartbeat now (a mapping or shard changed). */
  poke(): void {
    this.#loop.poke();
  }

  async stop(): Promise<void> {
    for (const off of this.#offs) off();
    this.#offs = [];
    if (!(await this.#loop.halt())) return;
    for (const lane of this.#lanes.values()) lane.stop();
    await Promise.all([...this.#lanes.values()].map((lane) => lane.done).concat([...this.#finishing.values()]));
    this.#lanes.clear();
    await this.leases.releaseAll().catch((raw) => this.deps.onError(coerceError(raw)));
    this.#loop.stopped();
  }

  async #tick(): Promise<void> {
    await this.leases.sync();
    const held = await this.leases.renew();
    for (const [key, lane] of this.#lanes) {
      if (!held.has(key)) {
        this.#stopLane(key, lane);
        this.#lanes.delete(key);
      }
    }
    // A lease held with no lane serving it — its lane ended on an error (the database went away)
    // and giving the lease back failed too — is given back now and claimed again below, or
    // it would be renewed here and served by nobody.
    for (const [key, lease] of held) {
      if (!this.#lanes.has(key)) await this.leases.release(lease);
    }
    const claimed = await this.leases.claim();
    if (claimed.length === 0) claimed.push(...(await this.leases.steal()));
    for (const lease of claimed) {
      const key = leaseKey(lease);
      const previous = this.#lanes.get(key);
      if (previous) this.#stopLane(key, previous);
      const lane = new Lane({ ...this.deps, leases: this.leases, idlePollMs: this.options.idlePollMs, events: this.events }, lease,
        this.#finishing.get(key));
      this.#lanes.set(key, lane);
      void lane.done.then(() => {
        if (this.#lanes.get(key) === lane) {
          this.#lanes.delete(key);
          // A lane that ended on its own gives its lease back (disabled mapping, shard end).
          void this.leases.release(lane.lease).catch((raw) => this.deps.onError(coerceError(raw)));
        }
      });
    }
  }

  #stopLane(key: string, lane: Lane): void {
    lane.stop();
    const finished = lane.done.then(() => {
      if (this.#finishing.get(key) === finished) this.#finishing.delete(key);
    });
    this.#finishing.set(key, finished);
  }

  #wakeStream(streamId: number): void {
    for (const lane of this.#lanes.values()) if (lane.streamId === undefined || lane.streamId === streamId) lane.wake();
  }
}
