/**
 * The SourceClient of a DynamoDB stream through @aws-sdk/client-dynamodb-streams. DynamoDB
 * Streams shards carry no hash key range (a table's partitions are not hash ranges the client
 * sees): every shard is given the whole key space. The service has no MillisBehindLatest; the
 * capture derives it from record creation times. Credentials as in kinesisSource.ts.
 */
import {
  DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand, type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import { MAX_HASH_KEY } from '../streams/hashKeys.ts';
import type { ViewType } from '../streams/model.ts';
import type { SourceAddress, SourceClient, SourceClientOptions, SourceDescription, SourcePage, SourceShard, SourceStart } from './sourceClient.ts';
import { sourceHttpHandler } from './sourceHttp.ts';

/** Records per GetRecords call (the service's maximum). */
const GET_RECORDS_LIMIT = 1000;

/** SDK AttributeValues hold binary values as Uint8Array; the local store keeps AttributeValue JSON (base64). */
export function attributeJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(attributeJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k, v]) => k !== '$unknown' && v !== undefined).map(([k, v]) => [k, attributeJson(v)]));
  }
  return value;
}

const asItem = (value: unknown) => (value === undefined ? undefined : attributeJson(value) as Record<string, unknown>);

export class DynamodbStreamsSource implements SourceClient {
  readonly #client: DynamoDBStreamsClient;
  /** Every call carries the run's signal: a stop aborts the one in flight. */
  readonly #call: { abortSignal: AbortSignal };
  readonly #arn: string;

  constructor(address: SourceAddress, options: SourceClientOptions) {
    this.#client = new DynamoDBStreamsClient({
      region: address.region,
      ...(address.endpoint ? { endpoint: address.endpoint } : {}),
      requestHandler: sourceHttpHandler(options.requestTimeoutMs),
      maxAttempts: 1,
    });
    this.#call = { abortSignal: options.signal };
    this.#arn = address.stream;
  }

  async #describe(exclusiveStartShardId?: string) {
    const { StreamDescription: d } = await this.#client.send(new DescribeStreamCommand({
      StreamArn: this.#arn, ...(exclusiveStartShardId ? { ExclusiveStartShardId: exclusiveStartShardId } : {}),
    }), this.#call);
    return d!;
  }

  async describe(): Promise<SourceDescription> {
    const d = await this.#describe();
    // A DynamoDB stream's ARN ends in its creation label: a new stream has a new ARN.
    return { arn: d.StreamArn!, retentionHours: 24, viewType: (d.StreamViewType as ViewType | undefined) ?? 'NEW_AND_OLD_IMAGES', createdAt: null };
  }

  async listShards(): Promise<SourceShard[]> {
    const shards: Shard[] = [];
    let last: string | undefined;
    do {
      const d = await this.#describe(last);
      shards.push(...(d.Shards ?? []));
      last = d.LastEvaluatedShardId;
    } while (last);
    return shards.map((s) => ({
      shardId: s.ShardId!,
      parentShardId: s.ParentShardId ?? null,
      adjacentParentShardId: null,
      startingHashKey: '0',
      endingHashKey: MAX_HASH_KEY.toString(),
      endingSequenceNumber: s.SequenceNumberRange?.EndingSequenceNumber ?? null,
    }));
  }

  async iterator(shardId: string, start: SourceStart): Promise<string> {
    if (start.type === 'AT_TIMESTAMP') throw new Error('DynamoDB Streams has no AT_TIMESTAMP iterator.');
    const output = await this.#client.send(new GetShardIteratorCommand({
      StreamArn: this.#arn,
      ShardId: shardId,
      ShardIteratorType: start.type,
      ...(start.type === 'AFTER_SEQUENCE_NUMBER' ? { SequenceNumber: start.sequenceNumber } : {}),
    }), this.#call);
    return output.ShardIterator!;
  }

  async getRecords(iterator: string): Promise<SourcePage> {
    const output = await this.#client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: GET_RECORDS_LIMIT }), this.#call);
    return {
      records: (output.Records ?? []).map((r) => ({
        kind: 'DYNAMODB' as const,
        sequenceNumber: r.dynamodb!.SequenceNumber!,
        eventId: r.eventID ?? null,
        eventName: r.eventName as 'INSERT' | 'MODIFY' | 'REMOVE',
        keys: asItem(r.dynamodb!.Keys) ?? {},
        newImage: asItem(r.dynamodb!.NewImage),
        oldImage: asItem(r.dynamodb!.OldImage),
        arrival: r.dynamodb!.ApproximateCreationDateTime ?? null,
        awsRegion: r.awsRegion ?? null,
        // The Streams API's Identity ({PrincipalId, Type}) as Lambda events spell it ({type, principalId}).
        userIdentity: r.userIdentity ? { type: r.userIdentity.Type, principalId: r.userIdentity.PrincipalId } : null,
      })),
      next: output.NextShardIterator ?? null,
      millisBehindLatest: null,
    };
  }

  destroy(): void {
    this.#client.destroy();
  }
}
