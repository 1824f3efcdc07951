/** shardline lag: per mapping, a table of its shard lanes with records behind and iterator age. */
import type { Command } from '../command.ts';
import { EXIT, GraphQLResponseError } from '../errors.ts';
import { formatTable, print, printJson } from '../output.ts';

export const MAPPING_FIELDS = `id state stream { name } function { name } recordsBehind maxIteratorAgeMs
  lag { shardId lane state owner checkpointSequenceNumber latestSequenceNumber recordsBehind iteratorAgeMs
        oldestUnprocessedAgeMs consecutiveFailures lastInvokedAt }`;

export interface ShardLag {
  shardId: string;
  lane: number;
  state: string;
  owner: string | null;
  checkpointSequenceNumber: string | null;
  latestSequenceNumber: string | null;
  recordsBehind: number;
  iteratorAgeMs: number | null;
  oldestUnprocessedAgeMs: number | null;
  consecutiveFailures: number;
  lastInvokedAt: string | null;
}

export interface MappingLag {
  id: string;
  state: string;
  stream: { name: string };
  function: { name: string };
  recordsBehind: number;
  maxIteratorAgeMs: number | null;
  lag: ShardLag[];
}

/** The JSON form: flat names, the shard rows and the mapping's totals. */
export function mappingJson(m: MappingLag) {
  return {
    id: m.id,
    streamName: m.stream.name,
    functionName: m.function.name,
    state: m.state,
    recordsBehind: m.recordsBehind,
    maxIteratorAgeMs: m.maxIteratorAgeMs,
    consecutiveFailures: m.lag.reduce((sum, s) => sum + s.consecutiveFailures, 0),
    shards: m.lag,
  };
}

export function formatMapping(m: MappingLag): string {
  const failures = m.lag.reduce((sum, s) => sum + s.consecutiveFailures, 0);
  const table = formatTable(
    [
      { header: 'SHARD' }, { header: 'LANE', right: true }, { header: 'STATE' }, { header: 'OWNER' },
      { header: 'RECORDS BEHIND', right: true }, { header: 'ITERATOR AGE (ms)', right: true }, { header: 'CONSECUTIVE FAILURES', right: true },
    ],
    [
      ...m.lag.map((s) => [s.shardId, s.lane, s.state, s.owner, s.recordsBehind, s.iteratorAgeMs, s.consecutiveFailures]),
      ['total', '', '', '', m.recordsBehind, m.maxIteratorAgeMs, failures],
    ],
  );
  return `mapping ${m.id}  ${m.stream.name} → ${m.function.name}  ${m.state}\n${table}`;
}

export const lag: Command = {
  spec: {
    name: 'lag',
    summary: 'Show how far event source mappings are behind their streams.',
    synopsis: 'shardline lag [--mapping ID | --stream S]',
    details: `  --mapping ID   this mapping only
  --stream S     the mappings of this stream (default: every mapping)
  The total row holds the mapping's records behind and its largest iterator age.`,
    options: {
      mapping: { type: 'string' },
      stream: { type: 'string' },
    },
  },

  async run({ client, json, args }) {
    args.exclusive('mapping', 'stream');
    const id = args.string('mapping');
    let mappings: MappingLag[];
    if (id !== undefined) {
      const data = await client.request<{ eventSourceMapping: MappingLag | null }>(
        `query($id: ID!) { eventSourceMapping(id: $id) { ${MAPPING_FIELDS} } }`, { id });
      if (!data.eventSourceMapping) {
        throw new GraphQLResponseError([{ message: `Event source mapping "${id}" does not exist.`, extensions: { code: 'MAPPING_NOT_FOUND' } }]);
      }
      mappings = [data.eventSourceMapping];
    } else {
      const streamName = args.string('stream');
      const data = await client.request<{ eventSourceMappings: MappingLag[] }>(
        `query($streamName: String) { eventSourceMappings(streamName: $streamName) { ${MAPPING_FIELDS} } }`, { streamName });
      mappings = data.eventSourceMappings;
    }
    if (json) {
      printJson({ mappings: mappings.map(mappingJson) });
    } else if (mappings.length === 0) {
      print('no event source mappings');
    } else {
      print(mappings.map(formatMapping).join('\n\n'));
    }
    return EXIT.OK;
  },
};
