/**
 * Stores a page of captured records in their local shard and moves the source shard's position
 * to the page's last original sequence number, in one transaction (through appendRecords, the
 * one write path): a restarted capture resumes after that number, so nothing is stored twice
 * and nothing is skipped. The lease check in the same transaction keeps a process that lost
 * the source from writing; a page whose local stream was deleted throws LocalStreamGone.
 *
 * Each record keeps its partition key; its original sequence number (text: AWS's exceed 64
 * bits) and arrival time go to `origin`, in the shape importRecords gives captured Lambda
 * events, since the local sequence numbers and arrival times are this server's own.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { canonicalKey } from '../dynamodb/attributeValues.ts';
import { dynamodbRecord, imagesForView } from '../dynamodb/writeItems.ts';
import { type PendingRecord, ShardMovedError, appendRecords } from '../records/appendRecords.ts';
import { ensurePartitionsForDatabaseTime, isMissingPartition } from '../records/partitions.ts';
import type { ShardInfo, ViewType } from '../streams/model.ts';
import { type CaptureLease, LocalStreamGone, checkLease } from './mirrorShards.ts';
import type { SourceRecord } from './sourceClient.ts';

export interface CapturedPage {
  sourceShardId: string;
  shardKey: number;
  records: SourceRecord[];
  millisBehindLatest: number;
  /** The source stream's ARN and region, kept in each record's origin. */
  sourceArn: string;
  region: string;
  viewType: ViewType | null;
}

const epochSeconds = (d: Date | null) => (d === null ? undefined : d.getTime() / 1000);

function pendingOf(page: CapturedPage): PendingRecord[] {
  const shard = { key: page.shardKey } as ShardInfo;
  return page.records.map((r, i): PendingRecord => {
    if (r.kind === 'KINESIS') {
      const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
      return {
        shardKey: page.shardKey,
        partitionKey: r.partitionKey,
        dataBase64: data.toString('base64'),
        sizeBytes: data.length + Buffer.byteLength(r.partitionKey, 'utf8'),
        origin: {
          sequenceNumber: r.sequenceNumber,
          ...(r.arrival ? { approximateArrivalTimestamp: epochSeconds(r.arrival) } : {}),
          eventSourceARN: page.sourceArn,
          awsRegion: page.region,
        },
      };
    }
    const { keys, itemKey } = canonicalKey(r.keys, `records[${i}].dynamodb.Keys`);
    const images = imagesForView(page.viewType, r.eventName, keys, r.newImage as never, r.oldImage as never);
    return dynamodbRecord(shard, itemKey, images, r.eventName, r.eventId ?? `${page.sourceShardId}:${r.sequenceNumber}`, {
      ...(r.eventId ? { eventID: r.eventId } : {}),
      SequenceNumber: r.sequenceNumber,
      ...(r.arrival ? { ApproximateCreationDateTime: Math.floor(r.arrival.getTime() / 1000) } : {}),
      eventSourceARN: page.sourceArn,
      awsRegion: r.awsRegion ?? page.region,
      ...(r.userIdentity ? { userIdentity: r.userIdentity } : {}),
    });
  });
}

export async function storeCaptured(handle: DatabaseHandle, lease: CaptureLease, page: CapturedPage): Promise<void> {
  if (page.records.length === 0) return;
  const pending = pendingOf(page);
  const last = page.records.at(-1)!.sequenceNumber;
  for (let attempt = 1; ; attempt++) {
    try {
      await handle.transaction(async (tx) => {
        await checkLease(handle, tx, lease, pending.length);
        await appendRecords(handle, tx, pending);
        await handle.query(sql`
          update capture_shards
             set last_sequence_number = ${last}, records_captured = records_captured + ${pending.length}::bigint,
                 millis_behind_latest = ${page.millisBehindLatest}::bigint, updated_at = now()
           where source_id = ${lease.sourceId} and source_shard_id = ${page.sourceShardId}`, tx);
      });
      return;
    } catch (raw) {
      // The day's partition may not exist yet on a fresh database: create it and write again.
      if (attempt < 3 && isMissingPartition(raw)) await ensurePartitionsForDatabaseTime(handle);
      else if (raw instanceof ShardMovedError && await streamDeleted(handle, lease)) {
        // Nothing else closes a captured stream's open shard: its stream was deleted.
        throw new LocalStreamGone();
      } else throw raw;
    }
  }
}

async function streamDeleted(handle: DatabaseHandle, lease: CaptureLease): Promise<boolean> {
  const live = await handle.query(sql`
    select 1 from capture_sources c join streams st on st.id = c.stream_id
     where c.id = ${lease.sourceId} and st.deleted_at is null`);
  return live.length === 0;
}
