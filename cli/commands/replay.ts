/** shardline replay: startReplay over a window of a stream; --wait follows it to the end. */
import type { Command } from '../command.ts';
import { JOB_FIELDS, type ReplayJob, reportJob } from '../jobs.ts';

export const replay: Command = {
  spec: {
    name: 'replay',
    summary: 'Re-deliver a window of a stream\'s records to a function (a replay job).',
    synopsis: 'shardline replay --stream S --from <ISO time | TRIM_HORIZON | seq:<n> | after:<n>> [--to <ISO time | seq:<n>>]\n'
      + '         [--mapping ID | --function F] [--shards a,b] [--rate N] [--batch-size N] [--filter PATTERN]... [--dry-run] [--wait]',
    details: `  --stream S        the stream to read
  --from POS        start of the window (inclusive; after:<n> excludes record n)
  --to POS          end of the window, inclusive (default: the latest record when the job starts)
  --mapping ID      deliver with this mapping's function and settings
  --function F      or to this function (with --mapping: the mapping's settings, this function)
  --shards a,b      only these shards (a bare number n means shardId-<n, 12 digits>)
  --rate N          at most N records per second
  --batch-size N    records per invocation
  --filter PATTERN  an event filter pattern (JSON); may be repeated
  --dry-run         plan only: count the records of the window, invoke nothing
  --wait            follow the job to its end (progress on stderr); exit 3 if it FAILED or was CANCELLED`,
    options: {
      stream: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      mapping: { type: 'string' },
      function: { type: 'string' },
      shards: { type: 'string' },
      rate: { type: 'string' },
      'batch-size': { type: 'string' },
      filter: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean' },
      wait: { type: 'boolean' },
    },
  },

  async run({ client, json, args }) {
    const streamName = args.required('stream', 'S (the stream to replay)');
    const from = args.position('from', ['TRIM_HORIZON', 'AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'])
      ?? args.fail('--from is required: an ISO time such as 2026-11-01T10:00:00Z, TRIM_HORIZON, seq:<n> or after:<n>.');
    const to = args.position('to', ['AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER']);
    const filters = args.values.filter as string[] | undefined;
    for (const pattern of filters ?? []) {
      try {
        JSON.parse(pattern);
      } catch {
        args.fail(`--filter must be a JSON filter pattern such as '{"data":{"kind":["order"]}}', got ${pattern}.`);
      }
    }
    const input = {
      streamName,
      from,
      to,
      shardIds: args.shardIds('shards'),
      mappingId: args.string('mapping'),
      functionName: args.string('function'),
      ratePerSecond: args.positiveInt('rate'),
      batchSize: args.positiveInt('batch-size'),
      filterPatterns: filters,
      dryRun: args.flag('dry-run'),
    };
    const data = await client.request<{ startReplay: ReplayJob }>(
      `mutation($input: ReplayInput!) { startReplay(input: $input) { ${JOB_FIELDS} } }`, { input });
    return reportJob(client, data.startReplay, { wait: args.flag('wait'), json, label: 'replay' });
  },
};
