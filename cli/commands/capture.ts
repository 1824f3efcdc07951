/** shardline capture: start (or resume), stop and list capture sources (startCapture, stopCapture, captureSources). */
import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { parsePosition } from '../args.ts';
import { formatTable, print, printJson } from '../output.ts';

export const CAPTURE_FIELDS = `id kind endpoint region sourceStream streamName startingPosition state lastError lastErrorAt
  recordsCaptured maxMillisBehindLatest owner
  lag { sourceShardId shardId state lastSequenceNumber millisBehindLatest recordsCaptured }`;

export interface CaptureView {
  id: string;
  kind: string;
  endpoint: string | null;
  region: string;
  sourceStream: string;
  streamName: string;
  startingPosition: string;
  state: string;
  lastError: string | null;
  lastErrorAt: string | null;
  recordsCaptured: number;
  maxMillisBehindLatest: number | null;
  owner: string | null;
  lag: { sourceShardId: string; shardId: string | null; state: string; lastSequenceNumber: string | null; millisBehindLatest: number | null; recordsCaptured: number }[];
}

const POSITIONS = ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'];

export function formatCapture(c: CaptureView): string {
  const head = `capture ${c.id}: ${c.kind} ${c.sourceStream} at ${c.endpoint ?? `AWS ${c.region}`} → ${c.streamName}  `
    + `state ${c.state}  records ${c.recordsCaptured}  behind ${c.maxMillisBehindLatest ?? '-'} ms`;
  const error = c.lastError ? `\nlast error (${c.lastErrorAt}): ${c.lastError}` : '';
  if (c.lag.length === 0) return `${head}${error}\n`;
  const table = formatTable(
    [{ header: 'SOURCE SHARD' }, { header: 'LOCAL SHARD' }, { header: 'STATE' }, { header: 'RECORDS', right: true },
      { header: 'BEHIND MS', right: true }, { header: 'LAST SOURCE SEQUENCE NUMBER' }],
    c.lag.map((l) => [l.sourceShardId, l.shardId, l.state, l.recordsCaptured, l.millisBehindLatest, l.lastSequenceNumber]),
  );
  return `${head}${error}\n${table}\n`;
}

export const capture: Command = {
  spec: {
    name: 'capture',
    summary: 'Tail a stream of a Kinesis-compatible (or DynamoDB Streams) endpoint into a local stream of the same shard layout.',
    synopsis: `shardline capture --stream NAME [--endpoint URL] [--region R] [--into LOCAL_STREAM] [--from TRIM_HORIZON|LATEST|AT_TIMESTAMP] [--timestamp ISO] [--dynamodb]
       shardline capture --list
       shardline capture --stop ID`,
    details: `  --stream NAME     the source stream: a Kinesis stream name or ARN (with --dynamodb: the DynamoDB stream ARN)
  --endpoint URL    the source service, e.g. http://localhost:4567 (kinesalite, LocalStack); default AWS's own
  --region R        the source's region (default: the server's)
  --into NAME       the local stream (default: the source stream's or table's name); starting again
                    into the local stream of a stopped capture resumes it where it stopped
  --from POS        TRIM_HORIZON (default), LATEST (records put after the start) or AT_TIMESTAMP
  --timestamp ISO   with --from AT_TIMESTAMP, e.g. 2026-11-01T10:00:00Z
  --dynamodb        the source is a DynamoDB stream (read through the DynamoDB Streams API)
  --list            list the capture sources with their lag per shard
  --stop ID         stop a capture source (its position is kept)
The server reads the source with the AWS SDK's default credentials (AWS_ACCESS_KEY_ID …, profiles, roles).`,
    options: {
      stream: { type: 'string' },
      endpoint: { type: 'string' },
      region: { type: 'string' },
      into: { type: 'string' },
      from: { type: 'string' },
      timestamp: { type: 'string' },
      dynamodb: { type: 'boolean' },
      list: { type: 'boolean' },
      stop: { type: 'string' },
    },
  },

  async run({ client, json, args }) {
    args.exclusive('list', 'stop', 'stream');
    if (args.flag('list')) {
      const data = await client.request<{ captureSources: CaptureView[] }>(`{ captureSources { ${CAPTURE_FIELDS} } }`);
      if (json) printJson(data.captureSources);
      else print(data.captureSources.length === 0 ? 'no capture sources\n' : data.captureSources.map(formatCapture).join('\n'));
      return EXIT.OK;
    }
    const stop = args.string('stop');
    if (stop !== undefined) {
      const data = await client.request<{ stopCapture: CaptureView }>(
        `mutation($id: ID!) { stopCapture(id: $id) { ${CAPTURE_FIELDS} } }`, { id: stop });
      if (json) printJson(data.stopCapture);
      else print(`stopped ${formatCapture(data.stopCapture)}`);
      return EXIT.OK;
    }
    const stream = args.required('stream', 'NAME (the source stream; or --list, or --stop ID)');
    const from = args.string('from')?.toUpperCase();
    if (from !== undefined && !POSITIONS.includes(from)) args.fail(`--from must be ${POSITIONS.join(' | ')}, got "${args.string('from')}".`);
    const timestampText = args.string('timestamp');
    let timestamp: string | undefined;
    if (timestampText !== undefined) {
      // As replay and seek read times: a zone is required, and "1" is no time.
      try {
        timestamp = parsePosition(timestampText, ['AT_TIMESTAMP']).timestamp;
      } catch (error) {
        args.fail(`--timestamp ${(error as Error).message}`);
      }
    }
    if (from === 'AT_TIMESTAMP' && timestamp === undefined) args.fail('--timestamp is required with --from AT_TIMESTAMP.');
    if (timestamp !== undefined && from !== 'AT_TIMESTAMP') args.fail('--timestamp goes with --from AT_TIMESTAMP.');
    const input = {
      kind: args.flag('dynamodb') ? 'DYNAMODB' : 'KINESIS',
      stream,
      endpoint: args.string('endpoint'),
      region: args.string('region'),
      into: args.string('into'),
      from,
      timestamp,
    };
    const data = await client.request<{ startCapture: CaptureView }>(
      `mutation($input: StartCaptureInput!) { startCapture(input: $input) { ${CAPTURE_FIELDS} } }`, { input });
    if (json) printJson(data.startCapture);
    else print(`started ${formatCapture(data.startCapture)}(shardline capture --list shows its progress; --stop ${data.startCapture.id} stops it)\n`);
    return EXIT.OK;
  },
};
