/**
 * The SourceClient of a Kinesis-compatible endpoint (AWS, LocalStack, kinesalite, shardline)
 * through @aws-sdk/client-kinesis. Credentials come from the SDK's default provider chain
 * (environment, shared files, container and instance roles); HTTP as sourceHttp.ts sets it up.
 */
import {
  DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand, type Shard,
} from '@aws-sdk/client-kinesis';
import type { SourceAddress, SourceClient, SourceClientOptions, SourceDescription, SourcePage, SourceShard, SourceStart } from './sourceClient.ts';
import { sourceHttpHandler } from './sourceHttp.ts';

/** Records per GetRecords call (AWS's maximum). */
const GET_RECORDS_LIMIT = 10_000;

export class KinesisSource implements SourceClient {
  readonly #client: KinesisClient;
  /** Every call carries the run's signal: a stop aborts the one in flight. */
  readonly #call: { abortSignal: AbortSignal };
  readonly #ref: { StreamName?: string; StreamARN?: string };

  constructor(address: SourceAddress, options: SourceClientOptions) {
    this.#client = new KinesisClient({
      region: address.region,
      ...(address.endpoint ? { endpoint: address.endpoint } : {}),
      requestHandler: sourceHttpHandler(options.requestTimeoutMs),
      maxAttempts: 1,
    });
    this.#call = { abortSignal: options.signal };
    this.#ref = address.stream.startsWith('arn:') ? { StreamARN: address.stream } : { StreamName: address.stream };
  }

  async describe(): Promise<SourceDescription> {
    const { StreamDescriptionSummary: summary } = await this.#client.send(new DescribeStreamSummaryCommand(this.#ref), this.#call);
    return {
      arn: summary!.StreamARN!, retentionHours: summary!.RetentionPeriodHours ?? 24, viewType: null,
      createdAt: summary!.StreamCreationTimestamp ?? null,
    };
  }

  async listShards(): Promise<SourceShard[]> {
    const shards: Shard[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#client.send(new ListShardsCommand(nextToken ? { NextToken: nextToken } : { ...this.#ref }), this.#call);
      shards.push(...(page.Shards ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
    return shards.map((s) => ({
      shardId: s.ShardId!,
      parentShardId: s.ParentShardId ?? null,
      adjacentParentShardId: s.AdjacentParentShardId ?? null,
      startingHashKey: s.HashKeyRange!.StartingHashKey!,
      endingHashKey: s.HashKeyRange!.EndingHashKey!,
      endingSequenceNumber: s.SequenceNumberRange?.EndingSequenceNumber ?? null,
    }));
  }

  async iterator(shardId: string, start: SourceStart): Promise<string> {
    const output = await this.#client.send(new GetShardIteratorCommand({
      ...this.#ref,
      ShardId: shardId,
      ShardIteratorType: start.type,
      ...(start.type === 'AT_TIMESTAMP' ? { Timestamp: start.timestamp } : {}),
      ...(start.type === 'AFTER_SEQUENCE_NUMBER' ? { StartingSequenceNumber: start.sequenceNumber } : {}),
    }), this.#call);
    return output.ShardIterator!;
  }

  async getRecords(iterator: string): Promise<SourcePage> {
    const output = await this.#client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: GET_RECORDS_LIMIT }), this.#call);
    return {
      records: (output.Records ?? []).map((r) => ({
        kind: 'KINESIS' as const,
        sequenceNumber: r.SequenceNumber!,
        partitionKey: r.PartitionKey!,
        data: r.Data ?? new Uint8Array(),
        arrival: r.ApproximateArrivalTimestamp ?? null,
      })),
      next: output.NextShardIterator ?? null,
      millisBehindLatest: output.MillisBehindLatest ?? null,
    };
  }

  destroy(): void {
    this.#client.destroy();
  }
}
