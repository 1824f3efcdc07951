/**
 * Engine events: what api/ subscribes to for GraphQL subscriptions. They are wake-up hints
 * (the database stays the source of truth), emitted after the transaction that caused them
 * has committed. A throwing listener never reaches the emitter.
 */
import { EventEmitter } from 'node:events';
import type { failures } from './schema.ts';

export interface StreamEvent {
  streamId: number;
  streamName: string;
  /** Set when the event was raised by another engine process (heard through the notifier). */
  remote?: boolean;
}

export interface EngineEventMap {
  /** Records were committed to some shards of a stream. */
  records: [event: StreamEvent];
  /** The shard set of a stream changed (create, reshard, rollover, delete). */
  shards: [event: StreamEvent];
  /** A mapping was created, changed or deleted. */
  mappings: [event: { mappingId: string; remote?: boolean }];
  /**
   * A replay job was created, changed state or made progress; `stateChanged`: an operator paused,
   * resumed or cancelled it, so a process running it stops at once.
   */
  replays: [event: { jobId: string; stateChanged?: boolean; remote?: boolean }];
  /**
   * A lease of a mapping changed its figures (checkpoint, state, failures); `shardEnded`: it
   * reached SHARD_END, so lanes of that mapping waiting on it as a parent can go on.
   */
  leases: [event: { mappingId: string; shardEnded?: boolean; remote?: boolean }];
  /**
   * Failure rows were recorded for a mapping (or a replay's log id); `rows` are the rows
   * themselves when the writer has them at hand (never across processes).
   */
  failures: [event: { mappingId: string; ids: number[]; rows?: (typeof failures.$inferSelect)[]; remote?: boolean }];
  /** An alert fired or resolved. */
  alerts: [event: { alertId: number; remote?: boolean }];
  /** A capture source was started, stopped or changed state (engine/capture/). */
  captures: [event: { sourceId: string; remote?: boolean }];
  /** An API token was revoked. */
  tokens: [event: { tokenId: number; remote?: boolean }];
  /**
   * Events from other processes may have been missed (the notifier's LISTEN connection was
   * re-established): whoever keeps state built from them reads it again.
   */
  resync: [event: { at: number }];
}

export class EngineEvents {
  readonly #emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.#emitter.setMaxListeners(0);
  }

  emit<K extends keyof EngineEventMap>(name: K, ...args: EngineEventMap[K]): void {
    for (const listener of this.#emitter.listeners(name)) {
      try {
        (listener as (...a: EngineEventMap[K]) => void)(...args);
      } catch {
        // A subscriber's bug must not break the writer that emitted.
      }
    }
  }

  /** Listeners of an event (for tests that check subscriptions leave nothing behind). */
  listenerCount(name: keyof EngineEventMap): number {
    return this.#emitter.listenerCount(name);
  }

  on<K extends keyof EngineEventMap>(name: K, listener: (...args: EngineEventMap[K]) => void): () => void {
    this.#emitter.on(name, listener as (...a: unknown[]) => void);
    return () => this.#emitter.off(name, listener as (...a: unknown[]) => void);
  }
}
