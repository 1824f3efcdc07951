/**
 * writeItems for DYNAMODB streams: the server keeps each table's current items (the `items`
 * table) and turns each change into the stream record DynamoDB would emit (aws-semantics §3.2):
 * INSERT when no old item, MODIFY when it changed, REMOVE on delete of an existing item, and no
 * record at all for a change that alters nothing.
 *
 * All changes of an item go to the open shard of its partition (MD5 of the canonical key over
 * evenRanges(partitions)), so they stay in order. The items are read and written under that
 * shard's row lock, taken before anything else in the transaction: two writers of one item
 * are serial, and each derives its eventName from what the other committed.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';
import { invalidArgument, limitExceeded } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import { type PendingRecord, ShardMovedError, appendRecords, withOpenShards } from '../records/appendRecords.ts';
import type { PutResult, PutResultEntry } from '../records/putRecords.ts';
import { evenRanges, hashKeyOf } from '../streams/hashKeys.ts';
import type { ShardInfo, ViewType } from '../streams/model.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';
import {
  type Item,
  MAX_ITEM_BYTES,
  attributeValuesEqual,
  canonicalKey,
  itemSize,
  itemsEqual,
  storedNumbers,
  validateItem,
} from './attributeValues.ts';

export interface ItemChange { keys: unknown; oldImage?: unknown; newImage?: unknown }

export const WRITE_ITEMS_LIMITS = { maxChanges: 500 };

export type DynamoEventName = 'INSERT' | 'MODIFY' | 'REMOVE';

/** What a DYNAMODB record stores in `data` (readRecords parses exactly this shape). */
export interface StoredImages { Keys: Item; NewImage?: Item; OldImage?: Item }

interface ValidChange { itemKey: string; keys: Item; newImage: Item | null; oldImage: Item | undefined }

export async function writeItems(
  handle: DatabaseHandle,
  catalog: StreamCatalog,
  events: EngineEvents,
  streamName: string,
  changes: ItemChange[],
): Promise<PutResult> {
  const valid = validateChanges(changes);
  const { stream, result } = await withOpenShards(handle, catalog, streamName, async (tx, stream, open) => {
    if (stream.kind !== 'DYNAMODB') {
      throw invalidArgument(`writeItems writes to DYNAMODB streams; ${streamName} is a KINESIS stream (use putRecords).`);
    }
    const route = partitionRouter(open);
    const targets = valid.map((c) => route(c.itemKey));
    await lockShards(handle, tx, targets);
    const stored = await loadItems(handle, tx, stream.id, valid.map((c) => c.itemKey));
    const current = new Map<string, Item | undefined>(stored);
    const pending: PendingRecord[] = [];
    const written: (ShardInfo | null)[] = [];
    for (const [i, change] of valid.entries()) {
      const old = change.oldImage ?? current.get(change.itemKey);
      current.set(change.itemKey, change.newImage ?? undefined);
      const eventName = deriveEventName(old, change.newImage);
      if (eventName === undefined) {
        written.push(null);
        continue;
      }
      const images = imagesForView(stream.viewType, eventName, change.keys, change.newImage ?? undefined, old);
      pending.push(dynamodbRecord(targets[i]!, change.itemKey, images, eventName, randomEventId()));
      written.push(targets[i]!);
    }
    await saveItems(handle, tx, stream.id, stored, current);
    const seqs = await appendRecords(handle, tx, pending);
    let next = 0;
    return written.map((shard): PutResultEntry => shard === null
      ? { shardId: null, sequenceNumber: null, errorCode: null, errorMessage: null }
      : { shardId: shard.shardId, sequenceNumber: formatSequenceNumber(seqs[next++]!), errorCode: null, errorMessage: null });
  });
  // A call of no-ops only committed no record: nothing to wake subscribers for.
  if (result.some((r) => r.sequenceNumber !== null)) events.emit('records', { streamId: stream.id, streamName: stream.name });
  return { failedRecordCount: 0, records: result };
}

/** Checks the whole request before any write: a rejected request writes nothing. */
function validateChanges(changes: ItemChange[]): ValidChange[] {
  if (!Array.isArray(changes) || changes.length === 0) {
    throw invalidArgument(`changes must be a list of 1 to ${WRITE_ITEMS_LIMITS.maxChanges} item changes, got ${Array.isArray(changes) ? 'none' : typeof changes}.`);
  }
  if (changes.length > WRITE_ITEMS_LIMITS.maxChanges) {
    throw limitExceeded(`changes must hold at most ${WRITE_ITEMS_LIMITS.maxChanges} entries, got ${changes.length}.`);
  }
  return changes.map((change, i) => {
    const path = `changes[${i}]`;
    if (typeof change !== 'object' || change === null) throw invalidArgument(`${path} must be an object with keys and newImage.`);
    const { keys: givenKeys, itemKey } = canonicalKey(change.keys, `${path}.keys`);
    // Numbers are stored as DynamoDB stores them ("01.50" → "1.5"), so the records carry that form.
    const keys = storedNumbers(givenKeys);
    // null is treated like absent for both images, as GraphQL clients send either.
    const newImage = change.newImage == null ? null : storedNumbers(withKeys(validateItem(change.newImage, `${path}.newImage`), keys, `${path}.newImage`));
    // An explicit oldImage is a whole item too: it gets the key attributes it lacks.
    const oldImage = change.oldImage == null ? undefined : storedNumbers(withKeys(validateItem(change.oldImage, `${path}.oldImage`), keys, `${path}.oldImage`));
    for (const [image, name] of [[newImage, 'newImage'], [oldImage, 'oldImage']] as const) {
      const size = image ? itemSize(image) : 0;
      if (size > MAX_ITEM_BYTES) {
        throw limitExceeded(`${path}.${name}: an item may be at most 400 KB (${MAX_ITEM_BYTES} bytes), got ${size}.`);
      }
    }
    return { itemKey, keys, newImage, oldImage };
  });
}

/** Rejects key attributes of an image that differ from the change's keys. */
export function checkKeysMatch(image: Item, keys: Item, path: string): void {
  for (const [name, value] of Object.entries(keys)) {
    const own = image[name];
    if (own !== undefined && !attributeValuesEqual(own, value)) {
      throw invalidArgument(`${path}.${name} must equal the key attribute ${name} given in keys (${JSON.stringify(value)}).`);
    }
  }
}

/** The image with the key attributes it lacks added (images are whole items, keys included). */
export function withKeys(image: Item, keys: Item, path: string): Item {
  checkKeysMatch(image, keys, path);
  return { ...keys, ...image };
}

function deriveEventName(old: Item | undefined, next: Item | null): DynamoEventName | undefined {
  if (next === null) return old === undefined ? undefined : 'REMOVE';
  if (old === undefined) return 'INSERT';
  return itemsEqual(old, next) ? undefined : 'MODIFY';
}

/** Keys always; NewImage on INSERT/MODIFY and OldImage on MODIFY/REMOVE, as the view type allows. */
export function imagesForView(
  viewType: ViewType | null,
  eventName: DynamoEventName,
  keys: Item,
  newImage: Item | undefined,
  oldImage: Item | undefined,
): StoredImages {
  const images: StoredImages = { Keys: keys };
  const view = viewType ?? 'NEW_AND_OLD_IMAGES';
  if (newImage && eventName !== 'REMOVE' && (view === 'NEW_IMAGE' || view === 'NEW_AND_OLD_IMAGES')) images.NewImage = newImage;
  if (oldImage && eventName !== 'INSERT' && (view === 'OLD_IMAGE' || view === 'NEW_AND_OLD_IMAGES')) images.OldImage = oldImage;
  return images;
}

export function dynamodbRecord(
  shard: ShardInfo, itemKey: string, images: StoredImages, eventName: DynamoEventName, eventId: string, origin?: unknown,
): PendingRecord {
  const json = JSON.stringify(images);
  return {
    shardKey: shard.key,
    partitionKey: itemKey,
    dataBase64: Buffer.from(json, 'utf8').toString('base64'),
    // SizeBytes as DynamoDB counts it: the item sizes of the images the record carries.
    sizeBytes: itemSize(images.Keys) + (images.NewImage ? itemSize(images.NewImage) : 0) + (images.OldImage ? itemSize(images.OldImage) : 0),
    eventName,
    eventId,
    origin,
  };
}

/** 32 hex characters, like DynamoDB's eventID. */
export const randomEventId = () => randomBytes(16).toString('hex');

/** Maps an item's canonical key to the open shard of its partition. */
export function partitionRouter(open: ShardInfo[]): (itemKey: string) => ShardInfo {
  const byPartition = new Map(open.map((s) => [s.partition, s]));
  const ranges = evenRanges(byPartition.size);
  return (itemKey) => {
    const hash = hashKeyOf(itemKey);
    const partition = ranges.findIndex((r) => hash >= r.start && hash <= r.end);
    const shard = byPartition.get(partition);
    if (!shard) throw new Error(`No open shard serves partition ${partition}; the shard set has a hole.`);
    return shard;
  };
}

/**
 * Locks the target shards in key order before the items are read, so the read sees every
 * earlier writer of those items; a shard that closed meanwhile sends the caller to route again.
 * (appendRecords locks the same rows again later, which is a no-op within the transaction.)
 */
export async function lockShards(handle: DatabaseHandle, tx: Database, targets: ShardInfo[]): Promise<void> {
  const keys = [...new Set(targets.map((s) => s.key))].sort((a, b) => a - b);
  if (keys.length === 0) return;
  const locked = await handle.query<{ key: unknown }>(sql`
    select key from shards where key = any(${sql.param(keys)}::bigint[]) and closed_at is null order by key for update`, tx);
  if (locked.length !== keys.length) throw new ShardMovedError('A target shard closed; routing again.');
}

export async function loadItems(handle: DatabaseHandle, tx: Database, streamId: number, itemKeys: string[]): Promise<Map<string, Item>> {
  const rows = await handle.query<{ item_key: string; item: string }>(sql`
    select item_key, item::text as item from items
     where stream_id = ${streamId} and item_key = any(${sql.param([...new Set(itemKeys)])}::text[])`, tx);
  return new Map(rows.map((r) => [r.item_key, JSON.parse(r.item) as Item]));
}

/** Writes each item whose final state is not the row loaded into `before` (undefined = deleted). */
export async function saveItems(
  handle: DatabaseHandle, tx: Database, streamId: number, before: Map<string, Item>, after: Map<string, Item | undefined>,
): Promise<void> {
  const upserts: [string, Item][] = [];
  const deletes: string[] = [];
  for (const [key, item] of after) {
    const was = before.get(key);
    if (item === undefined) {
      if (was !== undefined) deletes.push(key);
    } else if (item !== was) {
      upserts.push([key, item]);
    }
  }
  if (deletes.length > 0) {
    await tx.execute(sql`delete from items where stream_id = ${streamId} and item_key = any(${sql.param(deletes)}::text[])`);
  }
  if (upserts.length > 0) {
    await tx.execute(sql`
      insert into items (stream_id, item_key, item)
      select ${streamId}::bigint, u.k, u.v::jsonb
        from unnest(${sql.param(upserts.map(([k]) => k))}::text[], ${sql.param(upserts.map(([, v]) => JSON.stringify(v)))}::text[]) as u(k, v)
      on conflict (stream_id, item_key) do update set item = excluded.item`);
  }
}
