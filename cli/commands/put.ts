/**
 * shardline put: records from stdin, one JSON object per line, sent with putRecords in calls of
 * up to 500 records and 5 MiB (AWS's limits, counted as the server counts them: data bytes plus
 * partition key bytes). A line that cannot be sent stops the command (exit 2) after what was
 * already sent; records the server fails are counted, and any failure exits 3.
 */
import { createInterface } from 'node:readline';
import type { Command } from '../command.ts';
import { type CliError, EXIT, GraphQLResponseError, UsageError } from '../errors.ts';
import { print, printJson } from '../output.ts';
import { createProgress } from '../progress.ts';

export const PUT_BATCH = { maxRecords: 500, maxBytes: 5 * 1024 * 1024, maxRecordBytes: 1024 * 1024, maxPartitionKeyChars: 256 };

interface Entry { partitionKey: string; data: string; explicitHashKey?: string }
interface Pending { entry: Entry; line: number; size: number }
interface Failure { line: number; errorCode: string | null; errorMessage: string | null }

function lookup(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/**
 * One stdin line → a record. Without a key field a line is {"partitionKey", "data",
 * "explicitHashKey"?, "dataEncoding"?}; with --partition-key-field F the whole line is the data
 * and its field F (a dotted path) the partition key.
 */
export function recordOf(line: string, keyField: string | undefined): Entry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new Error(`not JSON (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('must be a JSON object');
  const object = parsed as Record<string, unknown>;
  let partitionKey: unknown;
  let data: unknown;
  let explicitHashKey: unknown;
  let encoding: unknown = 'utf8';
  if (keyField !== undefined) {
    partitionKey = lookup(object, keyField);
    if (typeof partitionKey === 'number' || typeof partitionKey === 'boolean') partitionKey = String(partitionKey);
    if (typeof partitionKey !== 'string') throw new Error(`has no string or number field "${keyField}" for the partition key`);
    data = object;
  } else {
    ({ partitionKey, data, explicitHashKey } = object);
    encoding = object.dataEncoding ?? 'utf8';
    if (typeof partitionKey !== 'string') throw new Error('needs "partitionKey" (a string), or use --partition-key-field');
    if (!('data' in object)) throw new Error('needs "data" (a string or any JSON)');
    if (explicitHashKey !== undefined && (typeof explicitHashKey !== 'string' || !/^\d+$/.test(explicitHashKey))) {
      throw new Error('"explicitHashKey" must be a decimal string');
    }
    if (encoding !== 'utf8' && encoding !== 'base64') throw new Error('"dataEncoding" must be "utf8" or "base64"');
  }
  const keyChars = [...(partitionKey as string)].length;
  if (keyChars < 1 || keyChars > PUT_BATCH.maxPartitionKeyChars) throw new Error(`the partition key must be 1–256 characters, got ${keyChars}`);
  let base64: string;
  if (encoding === 'base64') {
    if (typeof data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) {
      throw new Error('"data" is not base64 although "dataEncoding" is "base64"');
    }
    base64 = data;
  } else {
    base64 = Buffer.from(typeof data === 'string' ? data : JSON.stringify(data), 'utf8').toString('base64');
  }
  return { partitionKey: partitionKey as string, data: base64, ...(explicitHashKey !== undefined ? { explicitHashKey: explicitHashKey as string } : {}) };
}

function sizeOf(entry: Entry): number {
  const padding = entry.data.endsWith('==') ? 2 : entry.data.endsWith('=') ? 1 : 0;
  return (entry.data.length / 4) * 3 - padding + Buffer.byteLength(entry.partitionKey, 'utf8');
}

export const put: Command = {
  spec: {
    name: 'put',
    summary: 'Write records read from stdin (one JSON object per line) to a KINESIS stream.',
    synopsis: 'shardline put --stream S [--partition-key-field F]',
    details: `  --stream S                 the stream to write to
  --partition-key-field F    each line is the record's data as is, and its field F (a dotted
                             path such as customer.id) is the partition key
  Without --partition-key-field each line is
    {"partitionKey": "...", "data": <string or any JSON>, "explicitHashKey"?: "...", "dataEncoding"?: "base64"}
  data that is not a string is sent as its JSON text; text is base64-encoded for you, unless
  "dataEncoding" is "base64" (the form tail prints for binary data). Empty lines are skipped.
  Calls carry up to 500 records and 5 MiB. Prints a summary; exit 3 if any record failed.`,
    options: {
      stream: { type: 'string' },
      'partition-key-field': { type: 'string' },
    },
  },

  async run({ client, json, args }) {
    const streamName = args.required('stream', 'S (the stream to write to)');
    const keyField = args.string('partition-key-field');
    const progress = createProgress('put', 'records sent', process.stderr, false, true);
    let sent = 0;
    let failedCount = 0;
    const failures: Failure[] = [];
    let batch: Pending[] = [];
    let batchBytes = 0;

    /** A call the server refused: nothing of it was written; it names the stdin line, and the summary still prints. */
    let refused: CliError | undefined;
    const flush = async () => {
      if (batch.length === 0) return;
      let data;
      try {
        data = await client.request<{ putRecords: { failedRecordCount: number; records: { errorCode: string | null; errorMessage: string | null }[] } }>(
        `mutation($streamName: String!, $records: [PutRecordInput!]!) { putRecords(streamName: $streamName, records: $records) {
          failedRecordCount records { errorCode errorMessage } } }`,
        { streamName, records: batch.map((p) => p.entry) });
      } catch (error) {
        if (!(error instanceof GraphQLResponseError)) throw error;
        // records[k] counts within the call; the reader wants the line.
        const lines = batch.map((p) => p.line);
        error.message = error.message.replace(/\$?records\[(\d+)\]/g, (whole: string, k: string) => (lines[Number(k)] === undefined ? whole : `stdin line ${lines[Number(k)]} (${whole.replace('$', '')})`));
        refused = error;
        batch = [];
        return;
      }
      data.putRecords.records.forEach((result, i) => {
        if (result.errorCode) failures.push({ line: batch[i]!.line, errorCode: result.errorCode, errorMessage: result.errorMessage });
      });
      failedCount += data.putRecords.failedRecordCount;
      sent += batch.length;
      batch = [];
      batchBytes = 0;
      progress.update(sent, null, failedCount ? `${failedCount} failed,` : undefined);
    };

    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    let lineNumber = 0;
    let stopped: UsageError | undefined;
    try {
      for await (const line of lines) {
        lineNumber++;
        if (line.trim() === '') continue;
        let entry: Entry;
        try {
          entry = recordOf(line, keyField);
        } catch (error) {
          stopped = new UsageError(`stdin line ${lineNumber}: ${(error as Error).message}; stopped there.`);
          break;
        }
        const size = sizeOf(entry);
        if (size > PUT_BATCH.maxRecordBytes) {
          stopped = new UsageError(`stdin line ${lineNumber}: data plus partition key is ${size} bytes, more than the 1 MiB a record may hold; stopped there.`);
          break;
        }
        if (batch.length === PUT_BATCH.maxRecords || batchBytes + size > PUT_BATCH.maxBytes) await flush();
        if (refused) break;
        batch.push({ entry, line: lineNumber, size });
        batchBytes += size;
      }
      if (!stopped && !refused) await flush();
    } finally {
      progress.finish();
      lines.close();
    }
    const summary = { streamName, records: sent, written: sent - failedCount, failed: failedCount, failures };
    if ((stopped || refused) && sent === 0) {
      // nothing was sent: the error says it all
    } else if (json) {
      printJson(summary);
    } else {
      print(`put ${sent} records to ${streamName}: ${sent - failedCount} written, ${failedCount} failed`);
      for (const f of failures.slice(0, 10)) print(`  line ${f.line}: ${f.errorCode}${f.errorMessage ? ` ${f.errorMessage}` : ''}`);
      if (failures.length > 10) print(`  … and ${failures.length - 10} more (--json lists them all)`);
    }
    const halted = refused ?? stopped;
    if (halted) {
      if (sent) halted.message += ` (${sent} records before it were sent${refused ? '; the refused call wrote nothing' : ''})`;
      throw halted;
    }
    return failedCount > 0 ? EXIT.FAILED : EXIT.OK;
  },
};
