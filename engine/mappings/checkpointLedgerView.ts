/** Reading the checkpoint ledger of a mapping: newest first. */
import { desc, eq } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { pageSize } from '../pageSize.ts';
import { checkpointLedger, shards } from '../schema.ts';
import { shardIdOf } from '../streams/model.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';

export interface CheckpointMove {
  id: number; shardId: string; lane: number; fromSequenceNumber: string | null; toSequenceNumber: string | null;
  reason: string; actor: string; jobId: string | null; at: Date;
}

export async function listCheckpointMoves(handle: DatabaseHandle, mappingId: string, first = 100): Promise<CheckpointMove[]> {
  const rows = await handle.db.select({ l: checkpointLedger, shardIndex: shards.shardIndex }).from(checkpointLedger)
    .innerJoin(shards, eq(shards.key, checkpointLedger.shardKey))
    .where(eq(checkpointLedger.mappingId, mappingId)).orderBy(desc(checkpointLedger.id)).limit(pageSize(first));
  return rows.map(({ l, shardIndex }) => ({
    id: l.id, shardId: shardIdOf(shardIndex), lane: l.lane,
    fromSequenceNumber: l.fromSeq === null ? null : formatSequenceNumber(l.fromSeq),
    toSequenceNumber: l.toSeq === null ? null : formatSequenceNumber(l.toSeq),
    reason: l.reason, actor: l.actor, jobId: l.jobId, at: l.at,
  }));
}
