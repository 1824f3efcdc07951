/**
 * One capture source running in this process: a discovery loop and one reader per source shard.
 *
 * Discovery (every discoveryMs, and at once when a shard reaches its end): describe the source
 * stream, list its shards, register the new ones (mirrorShards.ts) and start a reader for each
 * shard whose parents have been read to their end. So children are read after their parents,
 * across splits and merges, and the local stream gets the source's lineage.
 *
 * A shard reader:
 *   CREATING LOCAL SHARD → ITERATOR → READING ⟲ → SHARD_END (the source shard closed and read to its end)
 *   The iterator starts after the stored position (the last original sequence number), or at
 *   the source's starting position when nothing was stored yet; it is taken only after the
 *   source was found to be the same stream since the reader's last error (a stream created
 *   again under the name has the same shard ids). Each page is stored with the new
 *   position in one transaction (storeCaptured.ts). An empty page waits idlePollMs; calls to a
 *   shard keep within AWS's read limits (5 a second, 2 MiB a second), which its other readers share.
 *   A stored position past the source's retention reads on from the trim horizon, and a shard
 *   the source no longer lists (aged out) ends, both told in lastError.
 *
 * Errors of the source (unreachable endpoint, stream not found, throttling, a call with no
 * answer after requestTimeoutMs, …) never end the run: the source goes to RETRYING with
 * lastError, and the failing loop waits a jittered, doubling delay (minBackoffMs …
 * maxBackoffMs) and starts again from the stored position. The source is RUNNING only while
 * no part of it (discovery, a shard reader) is failing: one failing shard keeps it RETRYING,
 * with that shard's lastError, whatever the others do. A lost lease (another process took the
 * source, or it was stopped) ends the run without writing anything more; a stop aborts the
 * source calls in flight, so it never waits on one that gets no answer.
 */
import { setMaxListeners } from 'node:events';
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { coerceError } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import type { ViewType } from '../streams/model.ts';
import {
  type CaptureLease, type CaptureShardRow, LeaseLost, LocalStreamGone, SourceReplaced, checkSourceIdentity, closeLocalShard, ensureLocalShard,
  readyShards, registerShards, saveShardLag,
} from './mirrorShards.ts';
import type { SourceAddress, SourceClient, SourceClientOptions, SourceDescription, SourcePage, SourceStart } from './sourceClient.ts';
import { sourceErrorName } from './sourceClient.ts';
import { storeCaptured } from './storeCaptured.ts';

/** AWS's per-shard read limits, shared by every reader of a source shard: 5 GetRecords calls and 2 MiB a second. */
const MIN_CALL_INTERVAL_MS = 200;
const READ_BYTES_PER_SECOND = 2 * 1024 * 1024;

/** What a page charges against the read limit: Kinesis data bytes (DynamoDB pages are small: 1 MB at most). */
function pageBytes(page: SourcePage): number {
  let bytes = 0;
  for (const record of page.records) if (record.kind === 'KINESIS') bytes += record.data.byteLength + record.partitionKey.length;
  return bytes;
}

export interface SourceRunOptions {
  /** Pause after a GetRecords call that returned nothing. (Default: 1000 ms, AWS's advice) */
  idlePollMs: number;
  /** How often the source's shards are listed again. (Default: 10 s) */
  discoveryMs: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  /** A source call that gets no answer for this long fails and is retried. (Default: 30 s) */
  requestTimeoutMs: number;
}

export interface SourceRunDeps {
  handle: DatabaseHandle;
  events: EngineEvents;
  onError: (error: Error) => void;
  createClient: (address: SourceAddress, options: SourceClientOptions) => SourceClient;
}

export interface SourceSettings {
  id: string;
  kind: 'KINESIS' | 'DYNAMODB';
  endpoint: string | null;
  region: string;
  sourceStream: string;
  startingPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  startingTimestamp: Date;
  state: 'STARTING' | 'RUNNING' | 'RETRYING' | 'STOPPED';
  stream: { id: number; name: string };
}

/** Jittered (0.5–1.5×) doubling delay of the nth consecutive failure. */
export function backoffMs(failures: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.5 + Math.random()));
}

export class SourceRun {
  readonly #readers = new Map<string, Promise<void>>();
  readonly #sleepers = new Set<() => void>();
  /**
   * Aborts the source calls in flight at a stop: one that gets no answer must not hold the stop
   * up. Every call listens to it while in flight, so a source of many shards has more listeners
   * than node's leak warning expects: the limit is off.
   */
  readonly #abort = (() => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  #stopped = false;
  /** The state last decided here (undefined: its write failed). */
  #state: SourceSettings['state'] | undefined;
  /** What failed at its last call and has not succeeded since: discovery (null) or a source shard id. */
  readonly #failing = new Set<string | null>();
  #stateWrites: Promise<void> = Promise.resolve();
  #wakeDiscovery: (() => void) | undefined;
  /** A shard ended while discovery was busy: it runs again at once instead of sleeping. */
  #discoverAgain = false;
  /** The last good description; shard readers keep it while a new one fails. */
  #description: SourceDescription | undefined;
  /** Checks that the source is the stream this capture followed, numbered in the order they start. */
  #checksStarted = 0;
  #lastCheck: { seq: number; done: Promise<void> } | undefined;
  /** The source's shard ids at the last listing (undefined before one succeeded). */
  #listed: Set<string> | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly deps: SourceRunDeps,
    private readonly options: SourceRunOptions,
    private readonly lease: CaptureLease,
    private readonly source: SourceSettings,
  ) {
    this.#state = source.state;
    this.done = this.#run().catch((raw) => this.deps.onError(coerceError(raw)));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Ends the run at its next step; `done` settles once every reader has returned. */
  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
    for (const wake of this.#sleepers) wake();
  }

  #sleep(ms: number, onWake?: (wake: () => void) => void): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
      onWake?.(wake);
    });
  }

  async #run(): Promise<void> {
    const client = this.deps.createClient({
      kind: this.source.kind, endpoint: this.source.endpoint, region: this.source.region, stream: this.source.sourceStream,
    }, { requestTimeoutMs: this.options.requestTimeoutMs, signal: this.#abort.signal });
    let failures = 0;
    try {
      while (!this.#stopped) {
        try {
          // Described at every pass: a stream deleted and created again between two passes keeps
          // its name and shard ids, and only its description tells.
          const passStart = this.#checksStarted;
          await this.#confirmSource(client, passStart);
          this.#discoverAgain = false; // this pass sees every shard closed so far
          const listed = await client.listShards();
          this.#listed = new Set(listed.map((shard) => shard.shardId));
          const rows = await registerShards(this.deps.handle, this.lease, this.#description!, listed, this.source.startingPosition);
          for (const row of readyShards(rows)) {
            if (this.#readers.has(row.sourceShardId)) continue;
            const reader = this.#read(client, row, passStart).finally(() => {
              this.#readers.delete(row.sourceShardId);
              this.#failing.delete(row.sourceShardId); // a shard read to its end no longer holds the source in RETRYING
            });
            this.#readers.set(row.sourceShardId, reader);
          }
          failures = 0;
          await this.#healthy(null);
          if (!this.#discoverAgain) {
            await this.#sleep(this.options.discoveryMs, (wake) => { this.#wakeDiscovery = wake; });
            this.#wakeDiscovery = undefined;
          }
        } catch (raw) {
          // A stop aborted the call: nothing failed.
          if (raw instanceof LeaseLost || this.#stopped) break;
          if (raw instanceof LocalStreamGone || raw instanceof SourceReplaced) {
            await this.#stopFor(raw.message);
            break;
          }
          await this.#failed(raw, null);
          await this.#sleep(backoffMs(++failures, this.options.minBackoffMs, this.options.maxBackoffMs));
        }
      }
    } finally {
      this.stop();
      await Promise.all(this.#readers.values());
      client.destroy();
    }
  }

  /**
   * Resolves once a check started after the `after`th found the source to be the stream this
   * capture followed (throws SourceReplaced otherwise). Readers that need one at about the same
   * time share it: one description call, not one per shard.
   */
  #confirmSource(client: SourceClient, after: number): Promise<void> {
    const last = this.#lastCheck;
    if (last && last.seq > after) return last.done;
    const seq = ++this.#checksStarted;
    const done = (async () => {
      const description = await client.describe();
      await checkSourceIdentity(this.deps.handle, this.lease, description);
      this.#description = description;
    })();
    this.#lastCheck = { seq, done };
    return done;
  }

  #startOf(row: CaptureShardRow, lastSequenceNumber: string | null): SourceStart {
    if (lastSequenceNumber !== null) return { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: lastSequenceNumber };
    switch (row.startType) {
      case 'AT_TIMESTAMP':
        return { type: 'AT_TIMESTAMP', timestamp: this.source.startingTimestamp };
      case 'LATEST':
        // Records that arrive after the capture started, also after a restart that found nothing
        // stored yet. DynamoDB Streams has no AT_TIMESTAMP iterator: there, LATEST as it is.
        return this.source.kind === 'KINESIS' ? { type: 'AT_TIMESTAMP', timestamp: this.source.startingTimestamp } : { type: 'LATEST' };
      default:
        return { type: 'TRIM_HORIZON' };
    }
  }

  /** Reads a source shard; `checkedAfter`: the identity check of the discovery pass that started it counts. */
  async #read(client: SourceClient, row: CaptureShardRow, checkedAfter: number): Promise<void> {
    const { handle } = this.deps;
    let failures = 0;
    let iterator: string | null = null;
    let shardKey = row.shardKey;
    let lastSequenceNumber = row.lastSequenceNumber;
    let lag: number | null = null;
    /** When the next GetRecords may go out: a source shard serves 5 calls and 2 MiB a second to all its readers. */
    let nextCallAt = 0;
    let restartAtTrimHorizon = false;
    /** An iterator is taken only after a check that started after this one: after an error, the stream may be a new one. */
    let identityAfter = checkedAfter;
    while (!this.#stopped) {
      try {
        if (shardKey === null) {
          shardKey = await ensureLocalShard(handle, this.lease, row.sourceShardId);
          this.deps.events.emit('shards', { streamId: this.source.stream.id, streamName: this.source.stream.name });
        }
        if (row.startType === 'SKIP' && lastSequenceNumber === null) {
          await this.#ended(row, shardKey);
          return;
        }
        if (iterator === null) {
          // A stream created again under the name has the same shard ids: an iterator of it would
          // read its records as the old stream's (a shard with nothing stored from its start).
          await this.#confirmSource(client, identityAfter);
          iterator = await client.iterator(row.sourceShardId,
            restartAtTrimHorizon ? { type: 'TRIM_HORIZON' } : this.#startOf(row, lastSequenceNumber));
        }
        // Timers may fire a millisecond early by the wall clock: wait until it says so.
        for (let wait = nextCallAt - Date.now(); wait > 0 && !this.#stopped; wait = nextCallAt - Date.now()) await this.#sleep(wait);
        if (this.#stopped) return;
        const calledAt = Date.now();
        const page = await client.getRecords(iterator);
        nextCallAt = calledAt + Math.max(MIN_CALL_INTERVAL_MS, (pageBytes(page) / READ_BYTES_PER_SECOND) * 1000);
        restartAtTrimHorizon = false;
        const newest = page.records.at(-1)?.arrival;
        const millisBehind = page.millisBehindLatest
          ?? (page.records.length > 0 && newest ? Math.max(0, Date.now() - newest.getTime()) : 0);
        if (page.records.length > 0) {
          await storeCaptured(handle, this.lease, {
            sourceShardId: row.sourceShardId, shardKey, records: page.records, millisBehindLatest: millisBehind,
            sourceArn: this.#description?.arn ?? this.source.sourceStream, region: this.source.region,
            viewType: (this.#description?.viewType ?? null) as ViewType | null,
          });
          lastSequenceNumber = page.records.at(-1)!.sequenceNumber;
          lag = millisBehind;
          this.deps.events.emit('records', { streamId: this.source.stream.id, streamName: this.source.stream.name });
          this.deps.events.emit('captures', { sourceId: this.source.id });
        } else if (lag !== millisBehind) {
          await saveShardLag(handle, this.lease, row.sourceShardId, millisBehind);
          lag = millisBehind;
        }
        if (page.next === null) {
          await this.#ended(row, shardKey);
          return;
        }
        iterator = page.next;
        failures = 0;
        await this.#healthy(row.sourceShardId);
        if (page.records.length === 0) await this.#sleep(this.options.idlePollMs);
      } catch (raw) {
        if (raw instanceof LeaseLost) {
          this.stop();
          return;
        }
        if (this.#stopped) return; // a stop aborted the call: nothing failed
        if (raw instanceof LocalStreamGone || raw instanceof SourceReplaced) {
          await this.#stopFor(raw.message);
          this.stop();
          return;
        }
        iterator = null;
        identityAfter = this.#checksStarted;
        // An iterator that expired (a long pause) is taken again from the stored position at once.
        if (sourceErrorName(raw) === 'ExpiredIteratorException' && failures === 0) {
          failures++;
          continue;
        }
        // The stored position passed the source's retention (a long stop): what is left of the
        // shard is read from its trim horizon, and the loss is told in lastError.
        if (sourceErrorName(raw) === 'TrimmedDataAccessException' && !restartAtTrimHorizon) {
          restartAtTrimHorizon = true;
          await this.#failed(new Error('records after the stored position passed the source\'s retention and were lost; reading on from the trim horizon'), row.sourceShardId);
          continue;
        }
        // A shard the source no longer lists has aged out of its retention: nothing is left to
        // read, and its children must not wait for it.
        if (sourceErrorName(raw) === 'ResourceNotFoundException' && this.#listed && !this.#listed.has(row.sourceShardId) && shardKey !== null) {
          await this.#failed(new Error('the source no longer lists this shard (past its retention); its unread records were lost'), row.sourceShardId);
          await this.#ended(row, shardKey);
          return;
        }
        await this.#failed(raw, row.sourceShardId);
        await this.#sleep(backoffMs(++failures, this.options.minBackoffMs, this.options.maxBackoffMs));
      }
    }
  }

  /** A source shard read to its end: close the local shard and let discovery start the children. */
  async #ended(row: CaptureShardRow, shardKey: number): Promise<void> {
    await closeLocalShard(this.deps.handle, this.lease, row.sourceShardId, shardKey);
    this.deps.events.emit('shards', { streamId: this.source.stream.id, streamName: this.source.stream.name });
    this.deps.events.emit('captures', { sourceId: this.source.id });
    this.#discoverNow();
  }

  /** Discovery now: wakes it, or, while it is busy, has it go round again without sleeping. */
  #discoverNow(): void {
    this.#discoverAgain = true;
    this.#wakeDiscovery?.();
  }

  /** Stops the source for good (its local stream is gone, or the source stream is a new one), saying why in lastError. */
  async #stopFor(reason: string): Promise<void> {
    await this.deps.handle.query(sql`
      update capture_sources set state = 'STOPPED', owner = null, expires_at = null, epoch = epoch + 1,
             last_error = ${reason}, last_error_at = now(), updated_at = now()
       where id = ${this.lease.sourceId} and owner = ${this.lease.owner} and epoch = ${this.lease.epoch}`);
    this.deps.events.emit('captures', { sourceId: this.source.id });
  }

  /** A call of discovery (null) or of a shard's reader succeeded: RUNNING, unless another part still fails. */
  async #healthy(part: string | null): Promise<void> {
    this.#failing.delete(part);
    if (this.#failing.size > 0 || this.#state === 'RUNNING') return;
    await this.#setState('RUNNING', null);
  }

  /** A call of discovery (shardId null) or of a shard's reader failed: RETRYING until it succeeds again. */
  async #failed(raw: unknown, shardId: string | null): Promise<void> {
    this.#failing.add(shardId);
    const error = coerceError(raw);
    const message = `${shardId ? `${shardId}: ` : ''}${sourceErrorName(raw)}: ${error.message}`.slice(0, 2000);
    await this.#setState('RETRYING', message).catch((again) => {
      if (!(again instanceof LeaseLost)) this.deps.onError(coerceError(again));
    });
  }

  /** Writes go out in the order the states were decided: a late RUNNING must not undo a newer RETRYING. */
  #setState(state: 'RUNNING' | 'RETRYING', lastError: string | null): Promise<void> {
    this.#state = state;
    const write = this.#stateWrites.then(() => this.#writeState(state, lastError)).catch((raw: unknown) => {
      this.#state = undefined; // not written: the next success writes RUNNING again
      throw raw;
    });
    this.#stateWrites = write.catch(() => {});
    return write;
  }

  async #writeState(state: 'RUNNING' | 'RETRYING', lastError: string | null): Promise<void> {
    const rows = await this.deps.handle.query(sql`
      update capture_sources
         set state = ${state}, updated_at = now(),
             last_error = coalesce(${lastError}::text, last_error),
             last_error_at = case when ${lastError}::text is null then last_error_at else now() end
       where id = ${this.lease.sourceId} and owner = ${this.lease.owner} and epoch = ${this.lease.epoch} and state <> 'STOPPED'
      returning 1`);
    if (rows.length === 0) {
      this.stop();
      throw new LeaseLost(`Capture source ${this.lease.sourceId} is no longer held.`);
    }
    this.deps.events.emit('captures', { sourceId: this.source.id });
  }
}
