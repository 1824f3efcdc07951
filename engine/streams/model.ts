/** The stream model's values as the engine hands them out (api/ maps them to GraphQL). */
export type StreamKind = 'KINESIS' | 'DYNAMODB';
export type StreamStatus = 'CREATING' | 'ACTIVE' | 'UPDATING' | 'DELETING';
export type ViewType = 'KEYS_ONLY' | 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES';

export interface StreamInfo {
  id: number;
  name: string;
  kind: StreamKind;
  status: StreamStatus;
  retentionHours: number;
  viewType: ViewType | null;
  createdAt: Date;
  arn: string;
  /** AWS's per-shard read and write limits are enforced (streams/shardThroughput.ts). */
  enforceThroughput: boolean;
}

export interface ShardInfo {
  key: number;
  shardIndex: number;
  shardId: string;
  parentShardId: string | null;
  adjacentParentShardId: string | null;
  hashKeyRange: { startingHashKey: string; endingHashKey: string };
  startingSequenceNumber: string;
  endingSequenceNumber: string | null;
  createdAt: Date;
  closedAt: Date | null;
  partition: number | null;
}

export const shardIdOf = (index: number) => `shardId-${String(index).padStart(12, '0')}`;

/** Inverse of shardIdOf; undefined for anything that is not a shard id. */
export function shardIndexOf(shardId: string): number | undefined {
  const m = /^shardId-(\d{12})$/.exec(shardId);
  return m ? Number(m[1]) : undefined;
}

export const STREAM_NAME = /^[a-zA-Z0-9_.-]{1,128}$/;
export const MAX_SHARDS_PER_STREAM = 10_000;
export const MAX_DYNAMODB_PARTITIONS = 100;
