/**
 * The SourceClient of a Kinesis-compatible endpoint (AWS, LocalStack, kinesalite, shardline)
 * through @aws-sdk/client-kinesis. Credentials come from the SDK's default provider chain
 * (environment, shared files, container and instance roles). The client speaks HTTP/1.1
 * (NodeHttpHandler): every Kinesis implementation serves it, while some emulators do not
 * serve the HTTP/2 the client would otherwise use.
 */
import {
  DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand, type Shard,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { SourceAddress, SourceClient, SourceDescription, SourcePage, SourceShard, SourceStart } from './sourceClient.ts';

/** Records per GetRecords call (AWS's maximum). */
const GET_RECORDS_LIMIT = 10_000;

export class KinesisSource implements SourceClient {
  readonly #client: KinesisClient;
  readonly #ref: { StreamName?: string; StreamARN?: string };

  constructor(address: SourceAddress) {
    this.#client = new KinesisClient({
      region: address.region,
      ...(address.endpoint ? { endpoint: address.endpoint } : {}),
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }),
      maxAttempts: 1,
    });
    this.#ref = address.stream.startsWith('arn:') ? { StreamARN: address.stream } : { StreamName: address.stream };
  }

  async describe(): Promise<SourceDescription> {
    const { StreamDescriptionSummary: summary } = await this.#client.send(new DescribeStreamSummaryCommand(this.#ref));
    return {
      arn: summary!.StreamARN!, retentionHours: summary!.RetentionPeriodHours ?? 24, viewType: null,
      createdAt: summary!.StreamCreationTimestamp ?? null,
    };
  }

  async listShards(): Promise<SourceShard[]> {
    const shards: Shard[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#client.send(new ListShardsCommand(nextToken ? { NextToken: nextToken } : { ...this.#ref }));
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
    }));
    return output.ShardIterator!;
  }

  async getRecords(iterator: string): Promise<SourcePage> {
    const output = await this.#client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: GET_RECORDS_LIMIT }));
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
