/**
 * The notifier carries engine events between processes on one Postgres: each local event is
 * published with NOTIFY after its transaction committed, and notifications from other
 * processes are re-emitted locally (marked remote), so a lane in one process wakes when a
 * producer writes through another. NOTIFY is a wake-up hint, never the record carrier: lanes
 * still poll slowly, so a lost notification only delays. One NOTIFY per write call, not per
 * record (Postgres serialises NOTIFY-carrying commits).
 *
 * On PGlite everything runs in one process, so the notifier does nothing there.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from './db.ts';
import { coerceError } from './errors.ts';
import type { EngineEvents } from './events.ts';

const CHANNEL = 'shardline_events';

type Message =
  | { o: string; k: 'records' | 'shards'; s: number; n: string }
  | { o: string; k: 'mappings'; m: string }
  | { o: string; k: 'replays'; j: string }
  | { o: string; k: 'leases'; m: string; e?: 1 }
  | { o: string; k: 'failures'; m: string; i: number[] }
  | { o: string; k: 'alerts'; a: number }
  | { o: string; k: 'tokens'; t: number };

export class Notifier {
  readonly #origin = randomBytes(6).toString('hex');
  #unlisten: (() => Promise<void>) | undefined;
  /** How many times the LISTEN was put in place: after the first, each is a reconnect. */
  #listens = 0;
  /** undefined before start(). */
  #stopped: boolean | undefined;
  #offs: (() => void)[] = [];

  constructor(
    private readonly handle: DatabaseHandle,
    private readonly events: EngineEvents,
    private readonly onError: (error: Error) => void,
  ) {}

  async start(): Promise<void> {
    if (!this.handle.listen || this.#unlisten || this.#stopped === false) return;
    this.#stopped = false;
    await this.#listen();
    this.#offs = [
      this.events.on('records', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'records', s: e.streamId, n: e.streamName }); }),
      this.events.on('shards', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'shards', s: e.streamId, n: e.streamName }); }),
      this.events.on('mappings', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'mappings', m: e.mappingId }); }),
      this.events.on('replays', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'replays', j: e.jobId }); }),
      this.events.on('leases', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'leases', m: e.mappingId, ...(e.shardEnded ? { e: 1 as const } : {}) }); }),
      this.events.on('failures', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'failures', m: e.mappingId, i: e.ids }); }),
      this.events.on('alerts', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'alerts', a: e.alertId }); }),
      this.events.on('tokens', (e) => { if (!e.remote) this.#publish({ o: this.#origin, k: 'tokens', t: e.tokenId }); }),
    ];
  }

  /**
   * LISTEN once: the driver keeps the listener and LISTENs again by itself whenever its
   * connection comes back, also after a first attempt that failed (delivery works meanwhile:
   * lanes poll). Each LISTEN after the first follows a lost connection: events sent meanwhile
   * were missed, so a `resync` tells this process's feeds and lanes to read again what they keep.
   */
  async #listen(): Promise<void> {
    try {
      const unlisten = await this.handle.listen!(CHANNEL, (payload) => { if (!this.#stopped) this.#hear(payload); }, () => {
        if (this.#listens++ > 0 && !this.#stopped) this.events.emit('resync', { at: Date.now() });
      });
      if (this.#stopped) await unlisten().catch(() => {});
      else this.#unlisten = unlisten;
    } catch (raw) {
      this.onError(new Error(`LISTEN ${CHANNEL} failed; lanes poll only until it succeeds: ${coerceError(raw).message}`));
      this.#listens = Math.max(this.#listens, 1); // what is sent until it succeeds is missed too
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of this.#offs) off();
    this.#offs = [];
    await this.#unlisten?.().catch(() => {});
    this.#unlisten = undefined;
  }

  #publish(message: Message): void {
    this.handle.query(sql`select pg_notify(${CHANNEL}, ${JSON.stringify(message)})`)
      .catch((raw) => this.onError(new Error(`NOTIFY failed: ${coerceError(raw).message}`)));
  }

  #hear(payload: string): void {
    let message: Message;
    try {
      message = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (message.o === this.#origin) return;
    if (message.k === 'mappings') this.events.emit('mappings', { mappingId: message.m, remote: true });
    else if (message.k === 'replays') this.events.emit('replays', { jobId: message.j, remote: true });
    else if (message.k === 'leases') this.events.emit('leases', { mappingId: message.m, ...(message.e ? { shardEnded: true } : {}), remote: true });
    else if (message.k === 'failures') this.events.emit('failures', { mappingId: message.m, ids: message.i, remote: true });
    else if (message.k === 'alerts') this.events.emit('alerts', { alertId: message.a, remote: true });
    else if (message.k === 'tokens') this.events.emit('tokens', { tokenId: message.t, remote: true });
    else this.events.emit(message.k, { streamId: message.s, streamName: message.n, remote: true });
  }
}
