/**
 * kinesalite (an independent, in-memory Kinesis implementation that reverse-engineered AWS) on
 * a loopback ephemeral port, with stream changes taking effect at once, and an SDK client for
 * it. It speaks HTTP/1.1 only, so its client uses a NodeHttpHandler.
 */
import type { AddressInfo } from 'node:net';
import { CreateStreamCommand, DeleteStreamCommand, DescribeStreamSummaryCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import kinesalite from 'kinesalite';

export interface Kinesalite { endpoint: string; client: KinesisClient; close: () => Promise<void> }

export async function startKinesalite(): Promise<Kinesalite> {
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new KinesisClient({
    endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    requestHandler: new NodeHttpHandler(), maxAttempts: 1,
  });
  return {
    endpoint,
    client,
    close: async () => {
      client.destroy();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Awaits a kinesalite stream's ACTIVE status (it flips on a timer even at 0 ms). */
export async function activeStream(client: KinesisClient, name: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (s?.StreamStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`kinesalite stream ${name} did not become ACTIVE`);
}

/**
 * Deletes a kinesalite stream and creates it again under its name with `shardCount` shards,
 * ACTIVE: a stream a capture no longer follows, though its shard ids are the old ones'.
 */
export async function recreateStream(client: KinesisClient, name: string, shardCount: number): Promise<void> {
  await client.send(new DeleteStreamCommand({ StreamName: name }));
  for (let i = 0; ; i++) {
    try {
      await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    } catch {
      break;
    }
    if (i >= 1000) throw new Error(`kinesalite stream ${name} was not deleted`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 1100)); // its creation time must differ (seconds)
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
  await activeStream(client, name);
}
