/**
 * The housekeeper: one background loop per process that keeps the store in shape.
 * Each tick: create the coming days' record partitions, roll over DYNAMODB shards that are
 * due, trim retention (see records/retentionTrimmer.ts). Every step is idempotent and safe to
 * run in several processes at once.
 *
 * States: STOPPED → (start) RUNNING → (stop) STOPPING → STOPPED. start() makes the coming
 * days' partitions before it returns, so they exist before the first write, and runs the rest
 * of its first tick in the background: a slow or failing trim (say, another process starting
 * at the same moment detaches the same partition) neither delays nor stops a process's start.
 */
import type { DatabaseHandle } from './db.ts';
import { ShardRollover } from './dynamodb/shardRollover.ts';
import { coerceError } from './errors.ts';
import type { EngineEvents } from './events.ts';
import { ensurePartitions } from './records/partitions.ts';
import { RetentionTrimmer, type TrimReport } from './records/retentionTrimmer.ts';
import type { StreamCatalog } from './streams/streamCatalog.ts';

export interface HousekeeperOptions {
  housekeepingIntervalMs: number;
  dynamoShardRolloverMs: number;
  trimBatchSize: number;
  /** Called with errors of a tick; the loop carries on at the normal interval. */
  onError?: (error: Error) => void;
}

export class Housekeeper {
  readonly trimmer: RetentionTrimmer;
  readonly rollover: ShardRollover;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #state: 'STOPPED' | 'RUNNING' | 'STOPPING' = 'STOPPED';

  constructor(
    private readonly handle: DatabaseHandle,
    catalog: StreamCatalog,
    events: EngineEvents,
    private readonly options: HousekeeperOptions,
  ) {
    this.trimmer = new RetentionTrimmer(handle, options.trimBatchSize);
    this.rollover = new ShardRollover(handle, catalog, (stream) =>
      events.emit('shards', { streamId: stream.id, streamName: stream.name }));
  }

  /** One pass of every task; `now` is injectable for tests. */
  async tick(now: Date = new Date()): Promise<TrimReport> {
    await ensurePartitions(this.handle, now);
    await this.rollover.rolloverExpired(now, this.options.dynamoShardRolloverMs);
    return this.trimmer.trim(now);
  }

  async start(): Promise<void> {
    if (this.#state !== 'STOPPED') return;
    await ensurePartitions(this.handle, new Date());
    this.#state = 'RUNNING';
    const loop = () => {
      if (this.#state !== 'RUNNING') return;
      this.#running = this.tick()
        .catch((raw) => (this.options.onError ?? defaultOnError)(coerceError(raw)))
        .finally(() => {
          this.#running = undefined;
          if (this.#state === 'RUNNING') this.#timer = setTimeout(loop, this.options.housekeepingIntervalMs);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    if (this.#state !== 'RUNNING') return;
    this.#state = 'STOPPING';
    clearTimeout(this.#timer);
    await this.#running;
    this.#state = 'STOPPED';
  }
}

function defaultOnError(error: Error): void {
  console.error(`shardline housekeeper: ${error.message}`);
}
