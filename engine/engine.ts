/**
 * The engine: composes the store's role nouns around one database handle. api/ and cli/ use
 * only this object; the engine never imports from api/.
 *
 *   catalog      streams and shards (streams/streamCatalog.ts)
 *   resharding   split, merge, updateShardCount (streams/resharding.ts)
 *   reader       record ranges and positions (records/readRecords.ts)
 *   housekeeper  retention trim, partitions, DYNAMODB shard rollover, purge of deleted streams
 */
import type { Config } from './config.ts';
import { type DatabaseHandle, openDatabase } from './db.ts';
import { writeItems, type ItemChange } from './dynamodb/writeItems.ts';
import { EngineEvents } from './events.ts';
import { Housekeeper } from './housekeeper.ts';
import { migrate } from './migrate.ts';
import { importRecords } from './records/importRecords.ts';
import { type PutRecordInput, putRecords } from './records/putRecords.ts';
import { RecordReader } from './records/readRecords.ts';
import { Resharding } from './streams/resharding.ts';
import { StreamCatalog } from './streams/streamCatalog.ts';

export type EngineOptions = Pick<Config, 'region' | 'accountId' | 'dynamoShardRolloverMs' | 'housekeepingIntervalMs' | 'trimBatchSize'> & {
  /** Where background and per-shard failures are reported. (Default: console.error) */
  onError?: (error: Error) => void;
};

export class Engine {
  readonly events = new EngineEvents();
  readonly catalog: StreamCatalog;
  readonly resharding: Resharding;
  readonly reader: RecordReader;
  readonly housekeeper: Housekeeper;
  readonly #onError: (error: Error) => void;

  constructor(
    readonly handle: DatabaseHandle,
    readonly options: EngineOptions,
  ) {
    this.#onError = options.onError ?? ((error) => console.error(`shardline: ${error.message}`));
    this.catalog = new StreamCatalog(handle, options);
    this.resharding = new Resharding(handle, this.catalog, (stream) =>
      this.events.emit('shards', { streamId: stream.id, streamName: stream.name }));
    this.reader = new RecordReader(handle, this.catalog);
    this.housekeeper = new Housekeeper(handle, this.catalog, this.events, { ...options, onError: this.#onError });
  }

  putRecords(streamName: string, records: PutRecordInput[]) {
    return putRecords(this.handle, this.catalog, this.events, streamName, records, this.#onError);
  }

  writeItems(streamName: string, changes: ItemChange[]) {
    return writeItems(this.handle, this.catalog, this.events, streamName, changes);
  }

  importRecords(streamName: string, event: unknown) {
    return importRecords(this.handle, this.catalog, this.events, streamName, event);
  }

  /** Rolls over DYNAMODB shards now (all open ones, or the one named). */
  rolloverShards(streamName: string, shardId?: string | null) {
    return this.housekeeper.rollover.rollover(streamName, shardId);
  }

  /** Starts background work (the housekeeper). */
  async start(): Promise<void> {
    await this.housekeeper.start();
  }

  async stop(): Promise<void> {
    await this.housekeeper.stop();
  }
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  region: 'us-east-1',
  accountId: '000000000000',
  dynamoShardRolloverMs: 4 * 3600 * 1000,
  housekeepingIntervalMs: 30_000,
  trimBatchSize: 5000,
};

/** Opens the database named by the config (PGlite when no DATABASE_URL), migrates it, builds the engine. */
export async function openEngine(config: Pick<Config, 'databaseUrl' | 'dataDir'> & EngineOptions): Promise<Engine> {
  const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.databaseUrl ? undefined : config.dataDir });
  await migrate(handle);
  return new Engine(handle, config);
}
