/** shardline redrive: redriveFailures of a mapping as a replay job; --wait follows it to the end. */
import type { Command } from '../command.ts';
import { JOB_FIELDS, type ReplayJob, reportJob } from '../jobs.ts';

export const redrive: Command = {
  spec: {
    name: 'redrive',
    summary: 'Re-deliver the records of a mapping\'s discarded batches (failures) as a replay job.',
    synopsis: 'shardline redrive --mapping ID [--failures id,id] [--function F] [--wait]',
    details: `  --mapping ID       the mapping whose failures to redrive
  --failures id,id   these failures (default: all discards of the mapping not yet redriven)
  --function F       deliver to this function instead of the mapping's
  --wait             follow the job to its end (progress on stderr); exit 3 if it FAILED or was CANCELLED`,
    options: {
      mapping: { type: 'string' },
      failures: { type: 'string' },
      function: { type: 'string' },
      wait: { type: 'boolean' },
    },
  },

  async run({ client, json, args }) {
    const variables = {
      mappingId: args.required('mapping', 'ID (the mapping whose failures to redrive)'),
      failureIds: args.list('failures'),
      functionName: args.string('function'),
    };
    const data = await client.request<{ redriveFailures: ReplayJob }>(
      `mutation($mappingId: ID!, $failureIds: [ID!], $functionName: String) {
        redriveFailures(mappingId: $mappingId, failureIds: $failureIds, functionName: $functionName) { ${JOB_FIELDS} } }`, variables);
    return reportJob(client, data.redriveFailures, { wait: args.flag('wait'), json, label: 'redrive' });
  },
};
