/**
 * The engine: composes the store's role nouns around one database handle. api/ and cli/ use
 * only this object; the engine never imports from api/.
 *
 *   catalog      streams and shards (streams/streamCatalog.ts)
 *   resharding   split, merge, updateShardCount (streams/resharding.ts)
 *   reader       record ranges and positions (records/readRecords.ts)
 *   housekeeper  retention trim, partitions, DYNAMODB shard rollover, purge of deleted streams
 *   functions    function targets; invoker calls them (HTTP or in-process module)
 *   mappings     event source mappings; poller delivers them (leases, lanes, batches)
 */
import type { Config } from './config.ts';
import { type DatabaseHandle, openDatabase } from './db.ts';
import { writeItems, type ItemChange } from './dynamodb/writeItems.ts';
import { EngineEvents } from './events.ts';
import { Housekeeper } from './housekeeper.ts';
import { migrate } from './migrate.ts';
import { Notifier } from './notifier.ts';
import { importRecords } from './records/importRecords.ts';
import { type PutRecordInput, putRecords } from './records/putRecords.ts';
import { RecordReader } from './records/readRecords.ts';
import { Resharding } from './streams/resharding.ts';
import { listFailures, listInvocations } from './delivery/deliveryLog.ts';
import { mappingLag } from './delivery/lag.ts';
import { DEFAULT_POLLER_OPTIONS, Poller, type PollerOptions } from './delivery/poller.ts';
import { ShardlineError } from './errors.ts';
import { FunctionCatalog } from './functions/functionCatalog.ts';
import { Invoker } from './functions/invoker.ts';
import { MappingCatalog, type MappingInput, type MappingUpdate } from './mappings/mappingCatalog.ts';
import { eventSourceMappings } from './schema.ts';
import { eq } from 'drizzle-orm';
import { StreamCatalog } from './streams/streamCatalog.ts';

export type EngineOptions = Pick<Config, 'region' | 'accountId' | 'dynamoShardRolloverMs' | 'housekeepingIntervalMs' | 'trimBatchSize' | 'functionsDir'> & {
  /** Where background and per-shard failures are reported. (Default: console.error) */
  onError?: (error: Error) => void;
  /** Lease and polling settings of delivery, or false for a process that does not deliver. */
  delivery?: Partial<PollerOptions> | false;
};

export class Engine {
  readonly events = new EngineEvents();
  readonly catalog: StreamCatalog;
  readonly resharding: Resharding;
  readonly reader: RecordReader;
  readonly housekeeper: Housekeeper;
  readonly functions: FunctionCatalog;
  readonly invoker: Invoker;
  readonly mappings: MappingCatalog;
  readonly poller: Poller | undefined;
  readonly notifier: Notifier;
  readonly #onError: (error: Error) => void;

  constructor(
    readonly handle: DatabaseHandle,
    readonly options: EngineOptions,
  ) {
    this.#onError = options.onError ?? ((error) => {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      console.error(`shardline: ${error.message}${cause ? ` (${cause})` : ''}`);
    });
    this.catalog = new StreamCatalog(handle, options);
    this.resharding = new Resharding(handle, this.catalog, (stream) =>
      this.events.emit('shards', { streamId: stream.id, streamName: stream.name }));
    this.reader = new RecordReader(handle, this.catalog);
    this.housekeeper = new Housekeeper(handle, this.catalog, this.events, { ...options, onError: this.#onError });
    this.functions = new FunctionCatalog(handle, { functionsDir: options.functionsDir });
    this.invoker = new Invoker({ functionsDir: options.functionsDir, region: options.region, accountId: options.accountId });
    this.mappings = new MappingCatalog(handle, this.catalog);
    this.notifier = new Notifier(handle, this.events, this.#onError);
    this.poller = options.delivery === false ? undefined : new Poller({
      handle,
      mappings: this.mappings,
      streams: this.catalog,
      functions: this.functions,
      invoker: this.invoker,
      region: options.region,
      accountId: options.accountId,
      onError: this.#onError,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      postOnFailure: async (url, body) => {
        try {
          const response = await fetch(url, {
            method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
            signal: AbortSignal.timeout(10_000),
          });
          await response.arrayBuffer();
          if (!response.ok) this.#onError(new Error(`onFailureUrl ${url} answered ${response.status}.`));
        } catch (raw) {
          this.#onError(new Error(`POST to onFailureUrl ${url} failed: ${(raw as Error).message}`));
        }
      },
    }, this.events, { ...DEFAULT_POLLER_OPTIONS, ...(options.delivery || {}) });
  }

  createFunction(input: Parameters<FunctionCatalog['create']>[0]) {
    return this.functions.create(input);
  }

  /** Deletes a function that no mapping uses. */
  async deleteFunction(name: string): Promise<boolean> {
    const [user] = await this.handle.db.select({ id: eventSourceMappings.id }).from(eventSourceMappings)
      .where(eq(eventSourceMappings.functionName, name)).limit(1);
    if (user) throw new ShardlineError('CONFLICT', `Function "${name}" is used by event source mapping ${user.id}; delete the mapping first.`);
    return this.functions.delete(name);
  }

  async createMapping(input: MappingInput) {
    const mapping = await this.mappings.create(input);
    this.events.emit('mappings', { mappingId: mapping.id });
    return mapping;
  }

  async updateMapping(id: string, input: MappingUpdate) {
    const mapping = await this.mappings.update(id, input);
    this.events.emit('mappings', { mappingId: id });
    return mapping;
  }

  async deleteMapping(id: string) {
    const deleted = await this.mappings.delete(id);
    this.events.emit('mappings', { mappingId: id });
    return deleted;
  }

  lag(mappingId: string) {
    return mappingLag(this.handle, mappingId);
  }

  invocations(mappingId: string, args: Parameters<typeof listInvocations>[2]) {
    return listInvocations(this.handle, mappingId, args);
  }

  failures(mappingId: string, args: Parameters<typeof listFailures>[2]) {
    return listFailures(this.handle, mappingId, args);
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

  /** Starts background work: the housekeeper, and delivery unless disabled. */
  async start(): Promise<void> {
    await this.notifier.start();
    await this.housekeeper.start();
    await this.poller?.start();
  }

  async stop(): Promise<void> {
    await this.poller?.stop();
    await this.notifier.stop();
    await this.housekeeper.stop();
    await this.invoker.close();
  }
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  region: 'us-east-1',
  accountId: '000000000000',
  dynamoShardRolloverMs: 4 * 3600 * 1000,
  housekeepingIntervalMs: 30_000,
  trimBatchSize: 5000,
  functionsDir: './functions',
};

/** Opens the database named by the config (PGlite when no DATABASE_URL), migrates it, builds the engine. */
export async function openEngine(config: Pick<Config, 'databaseUrl' | 'dataDir'> & EngineOptions): Promise<Engine> {
  if (config.delivery && config.delivery.heartbeatMs !== undefined && config.delivery.leaseTtlMs !== undefined
    && config.delivery.heartbeatMs * 2 > config.delivery.leaseTtlMs) {
    throw new Error('The delivery heartbeat must be at most half the lease TTL, or leases expire between renewals.');
  }
  const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.databaseUrl ? undefined : config.dataDir });
  await migrate(handle);
  return new Engine(handle, config);
}
