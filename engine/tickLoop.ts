/**
 * The heartbeat loop of the poller, the replay runner and the capture runner: runs tick()
 * every intervalMs, and at once on poke(), never two ticks at a time (a poke during a tick runs
 * another right after it, so the change is never left to the next heartbeat); a failing tick is
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
  /** Poked during a tick: tick again once it ends. */
  #again = false;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: Error) => void,
  ) {}

  get running(): boolean {
    return this.#state === 'RUNNING';
  }

  /** STOPPED → RUNNING; false when already started. The owner then awaits first(). */
  start(): boolean {
    if (this.#state !== 'STOPPED') return false;
    this.#state = 'RUNNING';
    return true;
  }

  /**
   * The first tick, awaited by the owner's start() and failing it as the tick fails; the
   * heartbeat follows. A loop tick, so a poke meanwhile waits for it instead of overlapping it.
   */
  async first(): Promise<void> {
    if (this.#state !== 'RUNNING' || this.#ticking) return;
    await this.#run(false);
  }

  /** The next tick, one interval from now. */
  #schedule(): void {
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
    if (this.#state !== 'RUNNING') return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    void this.#run(true);
  }

  /** Runs a tick as the loop's one tick in progress; `report`: its failure goes to onError. */
  #run(report: boolean): Promise<void> {
    clearTimeout(this.#timer);
    this.#again = false;
    const tick = this.tick();
    this.#ticking = tick.catch((raw) => { if (report) this.onError(coerceError(raw)); }).finally(() => {
      this.#ticking = undefined;
      if (this.#again) this.poke();
      else this.#schedule();
    });
    return report ? this.#ticking : tick;
  }
}
