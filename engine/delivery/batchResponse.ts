/**
 * Judging the response of a function that ran without error (2xx, no function error header):
 * whole success, partial failure (ReportBatchItemFailures) or whole failure, as AWS does
 * (reference §4.6, §4.9, §7 items 12–13).
 *
 * AWS's rules are lenient on empty answers (null, "", [], {}, an empty or null list all mean
 * success) and strict on malformed ones (an entry without a usable itemIdentifier, or one
 * naming a record outside the batch, fails the whole batch rather than being ignored), so a
 * function cannot checkpoint past a record it did not mean to acknowledge. With tumbling
 * windows a response must carry `state`.
 */

export type ResponseVerdict =
  | { verdict: 'SUCCESS'; state?: unknown }
  | { verdict: 'PARTIAL'; firstFailedIndex: number; state?: unknown }
  | { verdict: 'FAILURE'; reason: string };

export interface JudgeOptions {
  /** The batch's sequence numbers in delivery order (Kinesis sequenceNumber, DDB SequenceNumber). */
  sequenceNumbers: string[];
  reportBatchItemFailures: boolean;
  tumbling: boolean;
}

/**
 * `body` is the parsed JSON of the response, or the raw text when it was not JSON.
 * PARTIAL carries the lowest failed index: the checkpoint stops before it and the retry starts
 * at it, records after it included (AWS never skips ahead of a failed record).
 */
export function judgeResponse(body: unknown, opts: JudgeOptions): ResponseVerdict {
  let state: unknown;
  if (opts.tumbling) {
    state = isObject(body) ? body.state : undefined;
    if (state === undefined || state === null) return failure('a tumbling-window response must carry "state".');
  }
  const withState = <T extends object>(verdict: T): T & { state?: unknown } => (opts.tumbling ? { ...verdict, state } : verdict);
  if (!opts.reportBatchItemFailures) return withState({ verdict: 'SUCCESS' as const });

  if (body === null || body === undefined || body === '') return withState({ verdict: 'SUCCESS' as const });
  if (Array.isArray(body)) {
    return body.length === 0 ? withState({ verdict: 'SUCCESS' as const }) : failure('the response is a non-empty array, not {"batchItemFailures":[…]}.');
  }
  if (typeof body === 'string') return failure('the response is not JSON.');
  if (!isObject(body)) return failure(`the response is ${typeof body}, not {"batchItemFailures":[…]}.`);

  const failures = body.batchItemFailures;
  if (failures === undefined || failures === null) return withState({ verdict: 'SUCCESS' as const });
  if (!Array.isArray(failures)) return failure('batchItemFailures must be a list.');
  if (failures.length === 0) return withState({ verdict: 'SUCCESS' as const });

  const indexOf = new Map(opts.sequenceNumbers.map((seq, i) => [seq, i] as const));
  let firstFailedIndex = Infinity;
  for (let i = 0; i < failures.length; i++) {
    const entry: unknown = failures[i];
    const identifier = isObject(entry) ? entry.itemIdentifier : undefined;
    if (typeof identifier !== 'string' || identifier === '') {
      return failure(`batchItemFailures[${i}].itemIdentifier must be a sequence number of the batch, got ${JSON.stringify(identifier) ?? 'nothing'}.`);
    }
    const index = indexOf.get(identifier);
    if (index === undefined) return failure(`batchItemFailures[${i}].itemIdentifier "${identifier}" is not a sequence number of this batch.`);
    firstFailedIndex = Math.min(firstFailedIndex, index);
  }
  return withState({ verdict: 'PARTIAL' as const, firstFailedIndex });
}

const failure = (reason: string): ResponseVerdict => ({ verdict: 'FAILURE', reason });

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
