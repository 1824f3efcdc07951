/**
 * Writing the checkpoint ledger: the lease rows a statement moved (as `returning shard_key,
 * lane, <old checkpoint> as from_seq, <new checkpoint> as to_seq`), one ledger row each, in the
 * caller's transaction. Seeks, restores, relanes and window restarts all record their moves so.
 */
import type { Database } from '../db.ts';
import { checkpointLedger } from '../schema.ts';

export interface MovedLease { shard_key: unknown; lane: number; from_seq: string | null; to_seq: string | null }

export async function recordCheckpointMoves(
  tx: Database, mappingId: string, moved: MovedLease[], reason: string, actor: string,
): Promise<void> {
  if (moved.length === 0) return;
  await tx.insert(checkpointLedger).values(moved.map((m) => ({
    mappingId, shardKey: Number(m.shard_key), lane: m.lane,
    fromSeq: m.from_seq === null ? null : BigInt(m.from_seq), toSeq: m.to_seq === null ? null : BigInt(m.to_seq),
    reason, actor,
  })));
}
