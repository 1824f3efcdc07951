/**
 * Replay jobs as the CLI shows them (replay and redrive both start one): the fields read, the
 * text form, and --wait: polling replay(id) every 250 ms with progress on stderr until the job
 * ends. SUCCEEDED with every record delivered exits 0; FAILED, CANCELLED, or records that
 * failed (discarded after their retries, as put's failed records) exit 3.
 */
import { EXIT, GraphQLResponseError } from './errors.ts';
import type { GraphQLClient } from './graphqlClient.ts';
import { formatTable, print, printJson } from './output.ts';
import { createProgress } from './progress.ts';

export const JOB_FIELDS = `id state streamName functionName mappingId from to totalRecords deliveredRecords failedRecords
  dryRun requestedBy createdAt finishedAt error shards { shardId cursorSequenceNumber delivered done }`;

export interface ReplayJob {
  id: string;
  state: 'PENDING' | 'RUNNING' | 'PAUSED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
  streamName: string;
  functionName: string;
  mappingId: string | null;
  from: string;
  to: string | null;
  totalRecords: number | null;
  deliveredRecords: number;
  failedRecords: number;
  dryRun: boolean;
  requestedBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  error: string | null;
  shards: { shardId: string; cursorSequenceNumber: string | null; delivered: number; done: boolean }[];
}

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
export const POLL_MS = 250;

export function isFinal(job: ReplayJob): boolean {
  return FINAL.has(job.state);
}

export function exitCodeOf(job: ReplayJob): number {
  return job.state === 'FAILED' || job.state === 'CANCELLED' || job.failedRecords > 0 ? EXIT.FAILED : EXIT.OK;
}

/** Polls the job until it ends, drawing progress on stderr; returns the final job. */
export async function waitForJob(client: GraphQLClient, job: ReplayJob, label: string): Promise<ReplayJob> {
  const progress = createProgress(`${label} ${job.id}`, 'delivered');
  const onInterrupt = () => {
    progress.finish();
    process.stderr.write(`shardline: stopped waiting; job ${job.id} goes on (state ${job.state}).\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    let current = job;
    for (;;) {
      progress.update(current.deliveredRecords, current.totalRecords, current.state);
      if (isFinal(current)) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const data = await client.request<{ replay: ReplayJob | null }>(`query($id: ID!) { replay(id: $id) { ${JOB_FIELDS} } }`, { id: job.id });
      if (!data.replay) {
        throw new GraphQLResponseError([{ message: `Replay job ${job.id} no longer exists.`, extensions: { code: 'REPLAY_NOT_FOUND' } }]);
      }
      current = data.replay;
    }
    return current;
  } finally {
    progress.finish();
    process.removeListener('SIGINT', onInterrupt);
  }
}

export function printJob(job: ReplayJob, json: boolean, label: string): void {
  if (json) {
    printJson(job);
    return;
  }
  const lines = [
    `${label} ${job.id}  ${job.state}${job.dryRun ? ' (dry run: nothing invoked)' : ''}`,
    `  stream     ${job.streamName} → function ${job.functionName}${job.mappingId ? ` (mapping ${job.mappingId})` : ''}`,
    `  window     ${job.from} → ${job.to ?? 'the latest record when the job started'}`,
    `  records    ${job.totalRecords ?? '?'} total, ${job.deliveredRecords} delivered, ${job.failedRecords} failed`,
  ];
  if (job.finishedAt) lines.push(`  finished   ${job.finishedAt}`);
  if (job.error) lines.push(`  error      ${job.error}`);
  print(lines.join('\n'));
  if (job.shards.length) {
    print(formatTable(
      [{ header: 'SHARD' }, { header: 'DELIVERED', right: true }, { header: 'DONE' }, { header: 'CURSOR' }],
      job.shards.map((s) => [s.shardId, s.delivered, s.done ? 'yes' : 'no', s.cursorSequenceNumber]),
    ).replace(/^/gm, '  '));
  }
}

/** Prints the job, waiting for it first with --wait; returns the exit code. */
export async function reportJob(client: GraphQLClient, job: ReplayJob, options: { wait: boolean; json: boolean; label: string }): Promise<number> {
  const final = options.wait ? await waitForJob(client, job, options.label) : job;
  printJob(final, options.json, options.label);
  if (!options.wait) return EXIT.OK;
  if (final.state !== 'SUCCEEDED') process.stderr.write(`shardline: ${options.label} ${final.id} ended ${final.state}${final.error ? `: ${final.error}` : ''}\n`);
  else if (final.failedRecords > 0) process.stderr.write(`shardline: ${options.label} ${final.id} ended with ${final.failedRecords} record(s) failed (discarded after their retries)\n`);
  return exitCodeOf(final);
}
