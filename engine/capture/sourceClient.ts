/**
 * What a capture source needs from the stream it tails, whatever the service: the stream's
 * description, its shards with their lineage, shard iterators and record pages. The Kinesis
 * and DynamoDB Streams adapters (kinesisSource.ts, dynamodbStreamsSource.ts) map the AWS SDK
 * clients onto it, so the capture logic is written once.
 */
import type { ViewType } from '../streams/model.ts';

export interface SourceDescription {
  arn: string;
  /** Kinesis: the stream's retention; DynamoDB Streams: always 24. */
  retentionHours: number;
  /** DynamoDB Streams: the stream's view type. */
  viewType: ViewType | null;
  /** When the stream was created (Kinesis), so one created again under the same name is told apart; null when unknown. */
  createdAt: Date | null;
}

export interface SourceShard {
  shardId: string;
  parentShardId: string | null;
  adjacentParentShardId: string | null;
  startingHashKey: string;
  endingHashKey: string;
  /** Set once the source shard is closed. */
  endingSequenceNumber: string | null;
}

export type SourceStart =
  | { type: 'TRIM_HORIZON' | 'LATEST' }
  | { type: 'AT_TIMESTAMP'; timestamp: Date }
  | { type: 'AFTER_SEQUENCE_NUMBER'; sequenceNumber: string };

export interface SourceKinesisRecord {
  kind: 'KINESIS';
  sequenceNumber: string;
  partitionKey: string;
  data: Uint8Array;
  arrival: Date | null;
}

export interface SourceDynamodbRecord {
  kind: 'DYNAMODB';
  sequenceNumber: string;
  eventId: string | null;
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  /** AttributeValue JSON (binary values as base64), as the local store keeps it. */
  keys: Record<string, unknown>;
  newImage: Record<string, unknown> | undefined;
  oldImage: Record<string, unknown> | undefined;
  arrival: Date | null;
  awsRegion: string | null;
  userIdentity: unknown;
}

export type SourceRecord = SourceKinesisRecord | SourceDynamodbRecord;

export interface SourcePage {
  records: SourceRecord[];
  /** null once a closed shard has been read to its end. */
  next: string | null;
  /** How far the page lies behind the tip of the shard, when the service says (Kinesis). */
  millisBehindLatest: number | null;
}

export interface SourceClient {
  describe(): Promise<SourceDescription>;
  listShards(): Promise<SourceShard[]>;
  iterator(shardId: string, start: SourceStart): Promise<string>;
  getRecords(iterator: string): Promise<SourcePage>;
  destroy(): void;
}

/** How a client calls its source, given by the run that uses it. */
export interface SourceClientOptions {
  /** A call that gets no answer for this long fails (TimeoutError), and is retried like any error. */
  requestTimeoutMs: number;
  /** Aborted when the run stops: a call in flight ends then, rather than holding the stop up. */
  signal: AbortSignal;
}

/** Where a capture source reads: the service, its endpoint (null: AWS's own) and region. */
export interface SourceAddress {
  kind: 'KINESIS' | 'DYNAMODB';
  endpoint: string | null;
  region: string;
  stream: string;
}

/** An error of the source service worth telling apart: the iterator expired, or a timestamp is ahead of its clock. */
export function sourceErrorName(raw: unknown): string {
  return (raw as { name?: string })?.name ?? 'Error';
}
