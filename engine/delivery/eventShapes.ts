/**
 * The Lambda event a function receives: one event record per stored record, the `{Records}`
 * envelope (plus the tumbling-window fields) and the 6 MB payload budget of one invocation.
 *
 * Handlers written for AWS read these objects field by field, and some (Powertools parsers,
 * .NET serializers) are strict about the field set and types, so the shapes follow the
 * reference exactly (§3.3, §4.4, §4.9): key order as AWS sends it, arrival time in epoch
 * seconds with a millisecond fraction, no `encryptionType`.
 */
import type { StoredRecord } from '../records/readRecords.ts';
import type { StreamInfo } from '../streams/model.ts';

export interface EventContext { region: string; accountId: string }

/** The tumbling-window part of an event (§4.9). */
export interface WindowContext {
  start: Date;
  end: Date;
  state: unknown;
  shardId: string;
  eventSourceARN: string;
  isFinalInvokeForWindow: boolean;
  isWindowTerminatedEarly: boolean;
}

/** Lambda's synchronous invocation payload limit. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** One element of the event's Records, in AWS's shape and key order. */
export function buildEventRecord(stream: StreamInfo, record: StoredRecord, ctx: EventContext): Record<string, unknown> {
  if (stream.kind === 'KINESIS') {
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: record.partitionKey,
        sequenceNumber: record.sequenceNumber,
        data: record.data,
        approximateArrivalTimestamp: epochSeconds(record.approximateArrivalTimestamp),
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: record.eventID,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: `arn:aws:iam::${ctx.accountId}:role/shardline`,
      awsRegion: ctx.region,
      eventSourceARN: stream.arn,
    };
  }
  const userIdentity = userIdentityOf(record.origin);
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: ctx.region,
    // readRecords already serialises the `dynamodb` object in AWS's field order.
    dynamodb: JSON.parse(record.data) as unknown,
    eventSourceARN: stream.arn,
    // Only imported TTL deletes carry one (§3.2); AWS omits the key otherwise.
    ...(userIdentity !== undefined ? { userIdentity } : {}),
  };
}

/** The invocation payload: `{Records}`, plus the window fields for a tumbling-window mapping. */
export function buildEvent(records: Record<string, unknown>[], window?: WindowContext): Record<string, unknown> {
  if (!window) return { Records: records };
  return {
    Records: records,
    window: { start: isoSeconds(window.start), end: isoSeconds(window.end) },
    state: window.state,
    shardId: window.shardId,
    eventSourceARN: window.eventSourceARN,
    isFinalInvokeForWindow: window.isFinalInvokeForWindow,
    isWindowTerminatedEarly: window.isWindowTerminatedEarly,
  };
}

/** UTF-8 size of one event record as it is sent. */
export function eventRecordBytes(eventRecord: Record<string, unknown>): number {
  return Buffer.byteLength(JSON.stringify(eventRecord), 'utf8');
}

/**
 * The exact UTF-8 size of the event record buildEventRecord makes for a stored record, without
 * serialising it: the fixed part (keys, constants, the stream's ARN) is measured once, the
 * variable fields are added from their lengths. Batches are cut at the payload limit with it,
 * so every record of every batch is measured, and an in-process function is never serialised.
 */
export function eventRecordSizer(stream: StreamInfo, ctx: EventContext): (record: StoredRecord) => number {
  const template: StoredRecord = {
    eventID: '', shardId: '', shardKey: 0, sequenceNumber: '', partitionKey: '', data: stream.kind === 'KINESIS' ? '' : 'null',
    approximateArrivalTimestamp: new Date(0), sizeBytes: 0, eventName: '', keys: null, newImage: null, oldImage: null, origin: null,
  };
  if (stream.kind === 'KINESIS') {
    // Four empty strings ("" each) and an arrival time of 0 ("0") in the template.
    const fixed = eventRecordBytes(buildEventRecord(stream, template, ctx)) - 4 * 2 - 1;
    return (record) => fixed + jsonStringBytes(record.partitionKey) + jsonStringBytes(record.sequenceNumber)
      // Base64 (readRecords makes it without line breaks): no character needs escaping.
      + record.data.length + 2
      + jsonNumberBytes(epochSeconds(record.approximateArrivalTimestamp)) + jsonStringBytes(record.eventID);
  }
  // Two empty strings and a `dynamodb` of null in the template. readRecords serialises the
  // `dynamodb` object compactly with JSON.stringify, so re-serialising its parse has its length.
  const fixed = eventRecordBytes(buildEventRecord(stream, template, ctx)) - 2 * 2 - 4;
  return (record) => {
    const identity = userIdentityOf(record.origin);
    return fixed + jsonStringBytes(record.eventID)
      + (record.eventName === null ? 4 : jsonStringBytes(record.eventName))
      + Buffer.byteLength(record.data, 'utf8')
      + (identity === undefined ? 0 : Buffer.byteLength(`,"userIdentity":${JSON.stringify(identity)}`, 'utf8'));
  };
}

/** UTF-8 size of a string as JSON: quotes around printable ASCII, else what JSON.stringify makes. */
function jsonStringBytes(value: string): number {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return Buffer.byteLength(JSON.stringify(value), 'utf8');
  }
  return value.length + 2;
}

function jsonNumberBytes(value: number): number {
  return Number.isFinite(value) ? String(value).length : 4;
}

/** Size of the event around its records (`{"Records":[]}` plus any window fields). */
export function eventOverheadBytes(window?: WindowContext): number {
  return Buffer.byteLength(JSON.stringify(buildEvent([], window)), 'utf8');
}

/**
 * How many leading records fit in one invocation of at most `limit` bytes: the envelope, the
 * records and the commas between them. At least 1 when there is a record, so a single record
 * larger than the limit is the caller's decision (it cannot be split).
 */
export function fitToPayload(
  eventRecords: Record<string, unknown>[],
  limit: number = MAX_PAYLOAD_BYTES,
  overheadBytes: number = eventOverheadBytes(),
): number {
  let total = overheadBytes;
  for (let i = 0; i < eventRecords.length; i++) {
    total += eventRecordBytes(eventRecords[i]!) + (i > 0 ? 1 : 0);
    if (total > limit) return Math.max(i, 1);
  }
  return eventRecords.length;
}

/**
 * Epoch seconds with the millisecond fraction, as a number (1545084650.987). Milliseconds over
 * 1000 always print as a plain decimal: the values stay far from the 1e21 and 1e-7 bounds
 * where JavaScript switches to exponent notation.
 */
export function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

/** ISO-8601 UTC without the fraction ("2020-12-09T07:04:00Z"): window bounds, DDB failure times. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function userIdentityOf(origin: unknown): unknown {
  if (typeof origin !== 'object' || origin === null) return undefined;
  const identity = (origin as Record<string, unknown>).userIdentity;
  return typeof identity === 'object' && identity !== null ? identity : undefined;
}
