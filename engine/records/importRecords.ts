/**
 * importRecords: stores the records of a captured Lambda event (`{"Records": [...]}`, exactly as
 * AWS delivers it, aws-semantics §3.3 and §4.4) in order, so recorded traffic can be replayed.
 * Each record keeps its eventID and partition key; its original sequence number and arrival time
 * go to `origin`, because sequence numbers and arrival times here are this server's own.
 *
 * Kinesis records are routed by MD5 of the partition key like putRecords; DynamoDB records like
 * writeItems, with the images trimmed to the stream's view type and the items table brought in
 * line (NewImage upserted, REMOVE deletes), so later writeItems calls see the imported state.
 * The whole event is checked before anything is written: a bad record rejects it all.
 */
import type { DatabaseHandle } from '../db.ts';
import { type Item, MAX_ITEM_BYTES, canonicalKey, itemSize, validateItem } from '../dynamodb/attributeValues.ts';
import {
  type DynamoEventName,
  checkKeysMatch,
  dynamodbRecord,
  imagesForView,
  loadItems,
  lockShards,
  partitionRouter,
  randomEventId,
  saveItems,
} from '../dynamodb/writeItems.ts';
import { invalidArgument, limitExceeded } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { hashKeyOf } from '../streams/hashKeys.ts';
import type { ShardInfo, StreamKind } from '../streams/model.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import { type PendingRecord, appendRecords, withOpenShards } from './appendRecords.ts';
import { base64Length, isBase64 } from './base64.ts';
import { PUT_LIMITS, type PutResult, ShardRouter } from './putRecords.ts';

export const IMPORT_LIMITS = { maxRecords: 10_000 };

interface KinesisImport { partitionKey: string; data: string; size: number; eventId: string | null; origin: Record<string, unknown> }
interface DynamoImport {
  itemKey: string;
  keys: Item;
  newImage: Item | undefined;
  oldImage: Item | undefined;
  eventName: DynamoEventName;
  eventId: string;
  origin: Record<string, unknown>;
}
type ParsedEvent =
  | { kind: 'KINESIS'; source: string; records: KinesisImport[] }
  | { kind: 'DYNAMODB'; source: string; records: DynamoImport[] };

const SOURCES: Record<string, StreamKind> = { 'aws:kinesis': 'KINESIS', 'aws:dynamodb': 'DYNAMODB' };
const EVENT_NAMES = new Set(['INSERT', 'MODIFY', 'REMOVE']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The named fields of `from` that are present, in that order (origin keeps what AWS sent). */
const pick = (from: Record<string, unknown>, names: string[]) =>
  Object.fromEntries(names.filter((n) => from[n] !== undefined).map((n) => [n, from[n]]));

export async function importRecords(
  handle: DatabaseHandle,
  catalog: StreamCatalog,
  events: EngineEvents,
  streamName: string,
  event: unknown,
): Promise<PutResult> {
  const parsed = parseEvent(event);
  const { stream, result } = await withOpenShards(handle, catalog, streamName, async (tx, stream, open) => {
    if (stream.kind !== parsed.kind) {
      throw invalidArgument(
        `event.Records[0].eventSource is "${parsed.source}", but ${streamName} is a ${stream.kind} stream; import ${stream.kind === 'KINESIS' ? 'aws:kinesis' : 'aws:dynamodb'} events into it.`,
      );
    }
    let targets: ShardInfo[];
    let pending: PendingRecord[];
    if (parsed.kind === 'KINESIS') {
      const router = new ShardRouter(open);
      targets = parsed.records.map((r) => router.route(hashKeyOf(r.partitionKey)));
      pending = parsed.records.map((r, i) => ({
        shardKey: targets[i]!.key, partitionKey: r.partitionKey, dataBase64: r.data, sizeBytes: r.size, eventId: r.eventId, origin: r.origin,
      }));
    } else {
      const route = partitionRouter(open);
      targets = parsed.records.map((r) => route(r.itemKey));
      await lockShards(handle, tx, targets);
      const stored = await loadItems(handle, tx, stream.id, parsed.records.map((r) => r.itemKey));
      const current = new Map<string, Item | undefined>(stored);
      pending = parsed.records.map((r, i) => {
        // A MODIFY captured without NewImage (KEYS_ONLY / OLD_IMAGE source) leaves the item as it is.
        if (r.eventName === 'REMOVE') current.set(r.itemKey, undefined);
        else if (r.newImage) current.set(r.itemKey, r.newImage);
        const images = imagesForView(stream.viewType, r.eventName, r.keys, r.newImage, r.oldImage);
        return dynamodbRecord(targets[i]!, r.itemKey, images, r.eventName, r.eventId, r.origin);
      });
      await saveItems(handle, tx, stream.id, stored, current);
    }
    const seqs = await appendRecords(handle, tx, pending);
    return targets.map((shard, i) => ({
      shardId: shard.shardId, sequenceNumber: formatSequenceNumber(seqs[i]!), errorCode: null, errorMessage: null,
    }));
  });
  events.emit('records', { streamId: stream.id, streamName: stream.name });
  return { failedRecordCount: 0, records: result };
}

function parseEvent(event: unknown): ParsedEvent {
  if (!isObject(event) || !Array.isArray(event.Records)) {
    throw invalidArgument('event must be a captured Lambda event: an object {"Records": [...]}.');
  }
  const records: unknown[] = event.Records;
  if (records.length === 0) throw invalidArgument(`event.Records must hold between 1 and ${IMPORT_LIMITS.maxRecords} records, got 0.`);
  if (records.length > IMPORT_LIMITS.maxRecords) {
    throw limitExceeded(`event.Records must hold at most ${IMPORT_LIMITS.maxRecords} records, got ${records.length}.`);
  }
  let source: string | undefined;
  records.forEach((record, i) => {
    const path = `event.Records[${i}]`;
    if (!isObject(record)) throw invalidArgument(`${path} must be an object.`);
    const own = record.eventSource;
    if (typeof own !== 'string' || !(own in SOURCES)) {
      throw invalidArgument(`${path}.eventSource must be "aws:kinesis" or "aws:dynamodb", got ${JSON.stringify(own)}.`);
    }
    source ??= own;
    if (own !== source) {
      throw invalidArgument(`${path}.eventSource is "${own}" but event.Records[0] is "${source}": an event holds records of one kind.`);
    }
  });
  const objects = records as Record<string, unknown>[];
  return SOURCES[source!] === 'KINESIS'
    ? { kind: 'KINESIS', source: source!, records: objects.map(parseKinesis) }
    : { kind: 'DYNAMODB', source: source!, records: objects.map(parseDynamodb) };
}

function optionalString(record: Record<string, unknown>, name: string, path: string): string | undefined {
  const value = record[name];
  if (value !== undefined && typeof value !== 'string') throw invalidArgument(`${path}.${name} must be a string.`);
  return value;
}

function parseKinesis(record: Record<string, unknown>, i: number): KinesisImport {
  const path = `event.Records[${i}]`;
  const kinesis = record.kinesis;
  if (!isObject(kinesis)) throw invalidArgument(`${path}.kinesis must be an object.`);
  const { partitionKey, data } = kinesis;
  if (typeof partitionKey !== 'string' || [...partitionKey].length < 1 || [...partitionKey].length > PUT_LIMITS.maxPartitionKeyChars) {
    throw invalidArgument(`${path}.kinesis.partitionKey must be a string of 1–${PUT_LIMITS.maxPartitionKeyChars} characters.`);
  }
  if (typeof data !== 'string' || !isBase64(data)) throw invalidArgument(`${path}.kinesis.data must be a base64 string.`);
  const size = base64Length(data) + Buffer.byteLength(partitionKey, 'utf8');
  if (size > PUT_LIMITS.maxRecordBytes) {
    throw limitExceeded(`${path}: data plus partitionKey must be at most 1 MiB (${PUT_LIMITS.maxRecordBytes} bytes), got ${size}.`);
  }
  optionalString(kinesis, 'sequenceNumber', `${path}.kinesis`);
  if (kinesis.approximateArrivalTimestamp !== undefined && typeof kinesis.approximateArrivalTimestamp !== 'number') {
    throw invalidArgument(`${path}.kinesis.approximateArrivalTimestamp must be a number (epoch seconds).`);
  }
  const eventId = optionalString(record, 'eventID', path) ?? null;
  return {
    partitionKey,
    data,
    size,
    eventId,
    origin: {
      ...pick(record, ['eventID']),
      ...pick(kinesis, ['sequenceNumber', 'approximateArrivalTimestamp']),
      ...pick(record, ['eventSourceARN', 'awsRegion', 'invokeIdentityArn']),
    },
  };
}

function parseDynamodb(record: Record<string, unknown>, i: number): DynamoImport {
  const path = `event.Records[${i}]`;
  const eventName = record.eventName;
  if (typeof eventName !== 'string' || !EVENT_NAMES.has(eventName)) {
    throw invalidArgument(`${path}.eventName must be INSERT, MODIFY or REMOVE, got ${JSON.stringify(eventName)}.`);
  }
  const dynamodb = record.dynamodb;
  if (!isObject(dynamodb)) throw invalidArgument(`${path}.dynamodb must be an object.`);
  const { keys, itemKey } = canonicalKey(dynamodb.Keys, `${path}.dynamodb.Keys`);
  const image = (name: 'NewImage' | 'OldImage', allowed: boolean): Item | undefined => {
    const value = dynamodb[name];
    if (value == null) return undefined;
    const imagePath = `${path}.dynamodb.${name}`;
    if (!allowed) throw invalidArgument(`${imagePath} must be absent on a ${eventName} record.`);
    const item = validateItem(value, imagePath);
    checkKeysMatch(item, keys, imagePath);
    const size = itemSize(item);
    if (size > MAX_ITEM_BYTES) throw limitExceeded(`${imagePath}: an item may be at most 400 KB (${MAX_ITEM_BYTES} bytes), got ${size}.`);
    return item;
  };
  const newImage = image('NewImage', eventName !== 'REMOVE');
  const oldImage = image('OldImage', eventName !== 'INSERT');
  const eventId = optionalString(record, 'eventID', path) ?? randomEventId();
  return {
    itemKey,
    keys,
    newImage,
    oldImage,
    eventName: eventName as DynamoEventName,
    eventId,
    origin: {
      ...pick(record, ['eventID']),
      ...pick(dynamodb, ['SequenceNumber', 'ApproximateCreationDateTime']),
      // userIdentity marks TTL deletes; consumers need it on replay.
      ...pick(record, ['eventSourceARN', 'awsRegion', 'userIdentity']),
    },
  };
}
