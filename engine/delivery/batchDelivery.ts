/**
 * The one delivery path: live mappings (lane.ts) and, later, replays and redrives hand a batch
 * here and receive progress through a sink, which persists it (a lease checkpoint, a replay
 * cursor) in one transaction with the invocation and failure rows.
 *
 * For one batch, in order (aws-semantics §4.5–4.7):
 * - records older than maximumRecordAgeSeconds are discarded (RECORD_EXPIRED) without invoking;
 * - a throttle (429 / service error before the function ran) waits and retries, not counted;
 * - success checkpoints past the batch; a partial batch response checkpoints just before the
 *   lowest failed item and retries from there;
 * - a function error or timeout retries the batch, or with bisectBatchOnFunctionError splits it
 *   in halves (first half first; splits do not consume attempts) down to the poison record;
 * - when maximumRetryAttempts is used up the batch is discarded (RETRIES_EXHAUSTED) with the
 *   AWS on-failure record, POSTed to onFailureUrl, and delivery moves on.
 * The sink is told nothing is done until the function has acknowledged it (or it was
 * discarded by these rules), so a checkpoint is never ahead of an acknowledgement.
 *
 * Tumbling windows (§4.9): each invocation carries the window, the state the previous one of
 * the window returned, and isFinalInvokeForWindow on the window's last batch; a response
 * without `state` is a function error; the state is persisted with the checkpoint. A state over
 * 1 MB ends the window early: a final invocation with no records hands it back with
 * isWindowTerminatedEarly, and the window's later records start again from `{}`.
 */
import { randomUUID } from 'node:crypto';
import type { FunctionCatalog } from '../functions/functionCatalog.ts';
import type { Invoker } from '../functions/invoker.ts';
import type { ShardInfo, StreamInfo } from '../streams/model.ts';
import { judgeResponse } from './batchResponse.ts';
import { buildEvent } from './eventShapes.ts';
import type { LaneRecord } from './laneReader.ts';
import { buildOnFailureRecord, functionArnOf } from './onFailureRecord.ts';
import { STATE_LIMIT_BYTES, stateBytes } from './tumblingWindows.ts';

export type InvocationOutcome = 'OK' | 'PARTIAL_FAILURE' | 'FUNCTION_ERROR' | 'TIMEOUT' | 'THROTTLED';
export type FailureKind = 'FUNCTION_ERROR' | 'TIMEOUT' | 'PARTIAL_FAILURE' | 'BISECTED' | 'RETRIES_EXHAUSTED' | 'RECORD_EXPIRED';

export interface InvocationRow {
  firstSeq: bigint; lastSeq: bigint; recordCount: number; attempt: number;
  outcome: InvocationOutcome; durationMs: number; error: string | null; startedAt: Date;
}
export interface FailureRow {
  kind: FailureKind; firstSeq: bigint; lastSeq: bigint; recordCount: number; attempt: number;
  message: string | null; destinationRecord: Record<string, unknown> | null;
}

export interface Progress {
  /** The last record done with (acknowledged, filtered out or discarded), if this step finished any. */
  done: LaneRecord | null;
  invocation?: InvocationRow;
  failures: FailureRow[];
  retrying: boolean;
  /** True when the batch has more to deliver after this step (bisected halves, an expired prefix). */
  pending?: boolean;
  consecutiveFailures: number;
  iteratorAgeMs?: number;
  /** Tumbling windows: the state to keep for the open window, or 'CLOSE' after its final invocation. */
  window?: { start: Date; state: unknown } | 'CLOSE';
}

export interface BatchSink {
  /** Persists a step atomically; false when the lease (or cursor) was lost: delivery stops. */
  commit(progress: Progress): Promise<boolean>;
}

export interface DeliverySettings {
  functionName: string;
  bisectBatchOnFunctionError: boolean;
  maximumRetryAttempts: number;
  maximumRecordAgeSeconds: number;
  reportBatchItemFailures: boolean;
  onFailureUrl: string | null;
}

export interface DeliveryDeps {
  functions: FunctionCatalog;
  invoker: Invoker;
  region: string;
  accountId: string;
  /** POSTs an on-failure record; failures are reported, not thrown. */
  postOnFailure: (url: string, body: Record<string, unknown>) => Promise<void>;
  sleep: (ms: number) => Promise<void>;
}

export interface Batch {
  stream: StreamInfo;
  shard: ShardInfo;
  /** The records to deliver (after filters), in sequence order, with their event records. */
  records: LaneRecord[];
  eventRecords: Record<string, unknown>[];
  /** The last record examined (filtered-out records after the batch are done with it). */
  pageEnd: LaneRecord;
  /** Tumbling windows: the window these records belong to, its state so far, and whether this is its last batch. */
  window?: { start: Date; end: Date; state: unknown; final: boolean };
}

export type DeliveryResult = 'DONE' | 'LOST' | 'STOPPED';

interface Segment { from: number; to: number; attempt: number }

const backoffMs = (n: number) => Math.min(50 * 2 ** Math.max(0, n - 1), 5000) * (0.5 + Math.random());

export async function deliverBatch(
  deps: DeliveryDeps,
  settings: DeliverySettings,
  batch: Batch,
  sink: BatchSink,
  stopped: () => boolean | Promise<boolean>,
): Promise<DeliveryResult> {
  const { records } = batch;
  const segments: Segment[] = [{ from: 0, to: records.length, attempt: 1 }];
  let consecutiveFailures = 0;
  let throttles = 0;
  let windowState = batch.window?.state;
  let lastRequestId: string | undefined;
  const functionArn = functionArnOf(deps.region, deps.accountId, settings.functionName);
  const range = (s: Segment) => ({
    firstSeq: records[s.from]!.seq, lastSeq: records[s.to - 1]!.seq, recordCount: s.to - s.from,
  });
  const doneUpTo = (s: Segment) => (segments.length === 1 ? batch.pageEnd : records[s.to - 1]!);

  const discard = async (s: Segment, condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded',
    functionError: string | null, invocation?: InvocationRow, extra: FailureRow[] = []): Promise<boolean> => {
    const first = records[s.from]!;
    const last = records[s.to - 1]!;
    const destinationRecord = buildOnFailureRecord({
      kind: batch.stream.kind,
      condition,
      // The last invocation's own id (its context.awsRequestId), so the record leads to its logs.
      requestId: invocation && lastRequestId ? lastRequestId : randomUUID(),
      functionArn,
      // The invocations made of these records (a segment's attempt is one past them); records
      // too old when read were never invoked, and AWS counts those 1.
      approximateInvokeCount: Math.max(1, s.attempt - 1),
      functionError,
      statusCode: 200,
      shardId: batch.shard.shardId,
      streamArn: batch.stream.arn,
      startSequenceNumber: first.record.sequenceNumber,
      endSequenceNumber: last.record.sequenceNumber,
      firstArrival: new Date(first.arrivalMs),
      lastArrival: new Date(last.arrivalMs),
      batchSize: s.to - s.from,
      now: new Date(),
    });
    const kind = condition === 'RecordAgeExceeded' ? 'RECORD_EXPIRED' : 'RETRIES_EXHAUSTED';
    const ok = await sink.commit({
      done: doneUpTo(s),
      ...(invocation ? { invocation } : {}),
      failures: [...extra, {
        kind, ...range(s), attempt: Math.max(1, s.attempt - 1),
        message: condition === 'RecordAgeExceeded'
          ? `Records older than maximumRecordAgeSeconds (${settings.maximumRecordAgeSeconds}) were discarded.`
          : `Retry attempts exhausted after ${s.attempt - 1} invocation(s); the batch was discarded.`,
        destinationRecord,
      }],
      retrying: false,
      pending: segments.length > 1,
      consecutiveFailures: 0,
      // The window stays open (its final invocation comes after) with the state answered so far.
      ...(batch.window ? { window: { start: batch.window.start, state: windowState } } : {}),
    });
    if (ok && settings.onFailureUrl) await deps.postOnFailure(settings.onFailureUrl, destinationRecord);
    return ok;
  };

  const exhausted = (attempt: number) => settings.maximumRetryAttempts !== -1 && attempt > settings.maximumRetryAttempts + 1;

  while (segments.length > 0) {
    if (await stopped()) return 'STOPPED';
    const s = segments[0]!;
    const now = Date.now();
    if (settings.maximumRecordAgeSeconds !== -1 && now - records[s.from]!.arrivalMs > settings.maximumRecordAgeSeconds * 1000) {
      // Discard the expired prefix of the segment; the rest stays to be delivered.
      let cut = s.from;
      while (cut < s.to && now - records[cut]!.arrivalMs > settings.maximumRecordAgeSeconds * 1000) cut++;
      const expired: Segment = { from: s.from, to: cut, attempt: s.attempt };
      const whole = cut === s.to;
      if (!whole) segments.splice(0, 1, expired, { from: cut, to: s.to, attempt: s.attempt });
      if (!(await discard(expired, 'RecordAgeExceeded', null))) return 'LOST';
      segments.shift();
      continue;
    }

    const fn = await deps.functions.getRecent(settings.functionName);
    const lastSegment = segments.length === 1;
    const window = batch.window;
    const event = buildEvent(batch.eventRecords.slice(s.from, s.to), window ? {
      start: window.start, end: window.end, state: windowState ?? {}, shardId: batch.shard.shardId,
      eventSourceARN: batch.stream.arn, isFinalInvokeForWindow: window.final && lastSegment, isWindowTerminatedEarly: false,
    } : undefined);
    const startedAt = new Date();
    const iteratorAgeMs = Math.max(0, Math.round(startedAt.getTime() - records[s.to - 1]!.arrivalMs));
    lastRequestId = randomUUID();
    const result = await deps.invoker.invoke(fn, event, lastRequestId);
    const base = { ...range(s), attempt: s.attempt, durationMs: Math.round(result.durationMs), startedAt };

    if (result.outcome === 'THROTTLED') {
      const ok = await sink.commit({
        invocation: { ...base, outcome: 'THROTTLED', error: result.error },
        done: null, failures: [], retrying: true, consecutiveFailures, iteratorAgeMs,
      });
      if (!ok) return 'LOST';
      await deps.sleep(backoffMs(++throttles));
      continue;
    }
    throttles = 0;

    let errorKind: 'FUNCTION_ERROR' | 'TIMEOUT' | undefined;
    /** What an on-failure record says of the function: null when it ran and answered, if wrongly. */
    let functionError: string | null = 'Unhandled';
    let errorMessage = '';
    if (result.outcome === 'OK') {
      const verdict = judgeResponse(result.body, {
        // Only a partial batch response names records.
        sequenceNumbers: settings.reportBatchItemFailures ? records.slice(s.from, s.to).map((r) => r.record.sequenceNumber) : [],
        reportBatchItemFailures: settings.reportBatchItemFailures,
        tumbling: window !== undefined,
      });
      if (verdict.verdict === 'SUCCESS') {
        if (window) windowState = verdict.state;
        const closes = window !== undefined && window.final && lastSegment;
        const ok = await sink.commit({
          invocation: { ...base, outcome: 'OK', error: null },
          done: doneUpTo(s), failures: [], retrying: false, pending: segments.length > 1, consecutiveFailures: 0, iteratorAgeMs,
          ...(window ? { window: closes ? 'CLOSE' as const : { start: window.start, state: windowState } } : {}),
        });
        if (!ok) return 'LOST';
        consecutiveFailures = 0;
        segments.shift();
        if (window && !closes && stateBytes(windowState) > STATE_LIMIT_BYTES) {
          const ended = await closeWindow(deps, settings, {
            stream: batch.stream, shard: batch.shard, window: { start: window.start, end: window.end, state: windowState },
            lastSeq: records[s.to - 1]!.seq, terminatedEarly: true, pending: segments.length > 0,
          }, sink, stopped);
          if (ended !== 'DONE') return ended;
          windowState = {};
        }
        continue;
      }
      if (verdict.verdict === 'PARTIAL') {
        // The state answered beside batchItemFailures counts the records acknowledged before the
        // failed one, which the checkpoint passes: it is kept, and the retry carries it.
        if (window) windowState = verdict.state;
        const failedAt = s.from + verdict.firstFailedIndex;
        const invocation: InvocationRow = { ...base, outcome: 'PARTIAL_FAILURE', error: `batchItemFailures from ${records[failedAt]!.record.sequenceNumber}` };
        const remaining: Segment = { from: failedAt, to: s.to, attempt: s.attempt + 1 };
        const partial: FailureRow = {
          kind: 'PARTIAL_FAILURE', ...range(remaining), attempt: s.attempt,
          message: `The function reported item ${records[failedAt]!.record.sequenceNumber} as failed.`, destinationRecord: null,
        };
        if (exhausted(remaining.attempt)) {
          segments.splice(0, 1, remaining);
          if (!(await discard(remaining, 'RetryAttemptsExhausted', null, invocation, [partial]))) return 'LOST';
          segments.shift();
          continue;
        }
        const ok = await sink.commit({
          invocation, done: failedAt > s.from ? records[failedAt - 1]! : null, failures: [partial],
          retrying: true, consecutiveFailures: ++consecutiveFailures, iteratorAgeMs,
          ...(window ? { window: { start: window.start, state: windowState } } : {}),
        });
        if (!ok) return 'LOST';
        segments.splice(0, 1, remaining);
        await deps.sleep(backoffMs(remaining.attempt - 1));
        continue;
      }
      errorKind = 'FUNCTION_ERROR';
      errorMessage = `Invalid function response: ${verdict.reason}`;
      functionError = null; // as AWS: the function succeeded; its batchItemFailures failed the batch
    } else {
      errorKind = result.outcome;
      errorMessage = result.error;
    }

    const invocation: InvocationRow = { ...base, outcome: errorKind, error: errorMessage };
    const failure: FailureRow = { kind: errorKind, ...range(s), attempt: s.attempt, message: errorMessage, destinationRecord: null };
    if (settings.bisectBatchOnFunctionError && s.to - s.from > 1) {
      const mid = s.from + Math.ceil((s.to - s.from) / 2);
      const bisected: FailureRow = {
        kind: 'BISECTED', ...range(s), attempt: s.attempt, destinationRecord: null,
        message: `Split into ${records[s.from]!.record.sequenceNumber}…${records[mid - 1]!.record.sequenceNumber} and ${records[mid]!.record.sequenceNumber}…${records[s.to - 1]!.record.sequenceNumber}.`,
      };
      const ok = await sink.commit({
        invocation, done: null, failures: [failure, bisected], retrying: true,
        consecutiveFailures: ++consecutiveFailures, iteratorAgeMs,
      });
      if (!ok) return 'LOST';
      segments.splice(0, 1, { from: s.from, to: mid, attempt: 1 }, { from: mid, to: s.to, attempt: 1 });
      continue;
    }
    const next: Segment = { ...s, attempt: s.attempt + 1 };
    segments[0] = next;
    if (exhausted(next.attempt)) {
      if (!(await discard(next, 'RetryAttemptsExhausted', functionError, invocation, [failure]))) return 'LOST';
      segments.shift();
      continue;
    }
    const ok = await sink.commit({
      invocation, done: null, failures: [failure], retrying: true,
      consecutiveFailures: ++consecutiveFailures, iteratorAgeMs,
    });
    if (!ok) return 'LOST';
    await deps.sleep(backoffMs(s.attempt));
  }
  return 'DONE';
}

/**
 * The final invocation of a tumbling window that has no records left (it ended while the lane
 * was idle, or a later window's records arrived), or that ends early because its state outgrew
 * 1 MB (`terminatedEarly`): Records is empty, isFinalInvokeForWindow is
 * true. It is retried until it succeeds, as AWS does; the window's state is dropped after it.
 * Each invocation is logged with no records, at the window's last record (`lastSeq`), and each
 * failed one writes a Failure row there, so a window that cannot close shows in the failures.
 */
export async function closeWindow(
  deps: DeliveryDeps,
  settings: DeliverySettings,
  target: {
    stream: StreamInfo; shard: ShardInfo; window: { start: Date; end: Date; state: unknown }; lastSeq: bigint;
    /** Ended early (state over 1 MB) with `pending` records of its batch still to deliver after it. */
    terminatedEarly?: boolean; pending?: boolean;
  },
  sink: BatchSink,
  stopped: () => boolean | Promise<boolean>,
): Promise<DeliveryResult> {
  let throttles = 0;
  let failures = 0;
  for (let attempt = 1; !(await stopped()); attempt++) {
    const fn = await deps.functions.getRecent(settings.functionName);
    const event = buildEvent([], {
      start: target.window.start, end: target.window.end, state: target.window.state ?? {}, shardId: target.shard.shardId,
      eventSourceARN: target.stream.arn, isFinalInvokeForWindow: true, isWindowTerminatedEarly: target.terminatedEarly === true,
    });
    const startedAt = new Date();
    const result = await deps.invoker.invoke(fn, event, randomUUID());
    const base = { firstSeq: target.lastSeq, lastSeq: target.lastSeq, recordCount: 0, attempt, durationMs: Math.round(result.durationMs), startedAt };
    if (result.outcome === 'THROTTLED') {
      const ok = await sink.commit({
        invocation: { ...base, outcome: 'THROTTLED', error: result.error }, done: null, failures: [], retrying: true, consecutiveFailures: failures,
      });
      if (!ok) return 'LOST';
      await deps.sleep(backoffMs(++throttles));
      continue;
    }
    throttles = 0;
    // The final answer must carry a state too, as every tumbling-window answer (§4.9).
    const verdict = result.outcome === 'OK'
      ? judgeResponse(result.body, { sequenceNumbers: [], reportBatchItemFailures: false, tumbling: true })
      : undefined;
    if (verdict?.verdict === 'SUCCESS') {
      const ok = await sink.commit({
        invocation: { ...base, outcome: 'OK', error: null }, done: null, failures: [], retrying: false, consecutiveFailures: 0, window: 'CLOSE',
        pending: target.pending === true,
      });
      return ok ? 'DONE' : 'LOST';
    }
    const kind = result.outcome === 'TIMEOUT' ? 'TIMEOUT' : 'FUNCTION_ERROR';
    const error = result.outcome === 'OK'
      ? `Invalid function response: ${verdict?.verdict === 'FAILURE' ? verdict.reason : 'unreadable'}`
      : result.error;
    const message = `The final invocation of window ${target.window.start.toISOString()}${target.terminatedEarly ? ' (ended early: its state passed 1 MB)' : ''} failed: ${error}`;
    const ok = await sink.commit({
      invocation: { ...base, outcome: kind, error },
      done: null,
      failures: [{ kind, firstSeq: target.lastSeq, lastSeq: target.lastSeq, recordCount: 0, attempt, message, destinationRecord: null }],
      retrying: true,
      consecutiveFailures: ++failures,
    });
    if (!ok) return 'LOST';
    await deps.sleep(backoffMs(failures));
  }
  return 'STOPPED';
}
