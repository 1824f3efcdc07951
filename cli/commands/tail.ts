/**
 * shardline tail: the records subscription over graphql-ws, one JSON line per record on
 * stdout. data is decoded from base64 to text when it is valid UTF-8 ("dataEncoding": "utf8"),
 * else left as base64 ("dataEncoding": "base64"); put reads the same shape back.
 */
import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';

interface TailRecord {
  eventID: string;
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: string;
  approximateArrivalTimestamp: string;
  eventName: string | null;
  keys: unknown;
  newImage: unknown;
  oldImage: unknown;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** base64 → text when the bytes are valid UTF-8. */
export function decodeData(base64: string): { data: string; dataEncoding: 'utf8' | 'base64' } {
  try {
    return { data: utf8.decode(Buffer.from(base64, 'base64')), dataEncoding: 'utf8' };
  } catch {
    return { data: base64, dataEncoding: 'base64' };
  }
}

export function recordLine(record: TailRecord): string {
  const { eventName, keys, newImage, oldImage } = record;
  return JSON.stringify({
    shardId: record.shardId,
    sequenceNumber: record.sequenceNumber,
    partitionKey: record.partitionKey,
    approximateArrivalTimestamp: record.approximateArrivalTimestamp,
    // A DYNAMODB record's data is the JSON of its `dynamodb` object, not base64: its fields are below.
    ...(eventName ? {} : decodeData(record.data)),
    ...(eventName ? { eventName } : {}),
    ...(keys ? { keys } : {}),
    ...(newImage ? { newImage } : {}),
    ...(oldImage ? { oldImage } : {}),
  });
}

export const tail: Command = {
  spec: {
    name: 'tail',
    summary: 'Print records as they are written to a stream, one JSON line each.',
    synopsis: 'shardline tail --stream S [--shard ID] [--count N]',
    details: `  --stream S   the stream to follow (from now on: records written after tail starts)
  --shard ID   only this shard (a bare number n means shardId-<n, 12 digits>)
  --count N    stop after N records (default: until interrupted)
  Each line: shardId, sequenceNumber, partitionKey, approximateArrivalTimestamp, data and
  dataEncoding ("utf8" when data was valid UTF-8 text, else "base64"); DYNAMODB records have
  eventName, keys, newImage and oldImage instead of data. --json changes nothing: the output is JSON already.`,
    options: {
      stream: { type: 'string' },
      shard: { type: 'string' },
      count: { type: 'string' },
    },
  },

  async run({ client, args }) {
    const streamName = args.required('stream', 'S (the stream to follow)');
    const shardId = args.shardIds('shard');
    if (shardId && shardId.length !== 1) args.fail('--shard takes one shard id; run one tail per shard, or none for all.');
    const count = args.positiveInt('count');
    let received = 0;
    let closedOutput = false;
    const subscription = await client.subscribe<{ records: TailRecord }>(
      `subscription($streamName: String!, $shardId: String) { records(streamName: $streamName, shardId: $shardId) {
        eventID shardId sequenceNumber partitionKey data approximateArrivalTimestamp eventName keys newImage oldImage } }`,
      { streamName, shardId: shardId?.[0] },
      {
        next: (data) => {
          if (closedOutput || (count !== undefined && received >= count)) return;
          received++;
          process.stdout.write(`${recordLine(data.records)}\n`);
          if (count !== undefined && received >= count) void subscription.stop();
        },
      },
    );
    // A reader that went away (`| head`) ends the tail quietly.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') {
        closedOutput = true;
        void subscription.stop();
      }
    });
    const interrupt = () => void subscription.stop();
    process.once('SIGINT', interrupt);
    process.once('SIGTERM', interrupt);
    if (process.stderr.isTTY) process.stderr.write(`shardline: tailing ${streamName}${shardId ? ` ${shardId[0]}` : ''} (Ctrl-C to stop)\n`);
    try {
      await subscription.done;
    } finally {
      process.removeListener('SIGINT', interrupt);
      process.removeListener('SIGTERM', interrupt);
    }
    return EXIT.OK;
  },
};
