/**
 * The heartbeat loop of the poller, the replay runner and the capture runner: runs tick()
 * every intervalMs, and at once on poke(), never two ticks at a time; a failing tick is
 * reported and the loop goes on.
 *
 *   STOPPED --start()--> RUNNING --halt()--> STOPPING --stopped()--> STOPPED
 *
 * halt() stops scheduling and waits for a tick in progress; the owner then winds down its own
 * work (lanes, jobs, leases handed back) while the loop reads STOPPING, and calls stopped().
 */
import { coerceError } from './errors.ts';

export class TickLoop {
  #state: 'STOPPED' | 'RUNNING' | 'STOPPING' = 'STOPPED';
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: Error) => void,
  ) {}

  get running(): boolean {
    return this.#state === 'RUNNING';
  }

  /** STOPPED → RUNNING; false when already started. The owner runs a first tick if it wants one, then schedule(). */
  start(): boolean {
    if (this.#state !== 'STOPPED') return false;
    this.#state = 'RUNNING';
    return true;
  }

  /** The next tick, one interval from now. */
  schedule(): void {
    if (this.#state === 'RUNNING') this.#timer = setTimeout(() => this.#beat(), this.intervalMs);
  }

  /** A tick now (something changed that the next heartbeat would otherwise pick up). */
  poke(): void {
    if (this.#state !== 'RUNNING') return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#beat(), 0);
  }

  /** RUNNING → STOPPING: no more ticks, and the one in progress has ended. False when not running. */
  async halt(): Promise<boolean> {
    if (this.#state !== 'RUNNING') return false;
    this.#state = 'STOPPING';
    clearTimeout(this.#timer);
    await this.#ticking;
    return true;
  }

  /** STOPPING → STOPPED, once the owner has wound down. */
  stopped(): void {
    this.#state = 'STOPPED';
  }

  #beat(): void {
    if (this.#state !== 'RUNNING' || this.#ticking) return;
    this.#ticking = this.tick().catch((raw) => this.onError(coerceError(raw))).finally(() => {
      this.#ticking = undefined;
      this.schedule();
    });
  }
}
