/** shardline seek: moves a mapping's checkpoints (seekEventSourceMapping). */
import { describePosition } from '../args.ts';
import type { Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { print, printJson } from '../output.ts';
import { MAPPING_FIELDS, type MappingLag, formatMapping, mappingJson } from './lag.ts';

export const seek: Command = {
  spec: {
    name: 'seek',
    summary: 'Move the checkpoints of an event source mapping; its next batch starts there.',
    synopsis: 'shardline seek --mapping ID --to <TRIM_HORIZON | LATEST | ISO time | seq:<n> | after:<n>> [--shards a,b]',
    details: `  --mapping ID   the mapping to move (it may keep running)
  --to POS       where its next batch starts
  --shards a,b   only these shards (a bare number n means shardId-<n, 12 digits>)`,
    options: {
      mapping: { type: 'string' },
      to: { type: 'string' },
      shards: { type: 'string' },
    },
  },

  async run({ client, json, args }) {
    const id = args.required('mapping', 'ID (the mapping to move)');
    const position = args.position('to', ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER'])
      ?? args.fail('--to is required: TRIM_HORIZON, LATEST, an ISO time such as 2026-11-01T10:00:00Z, seq:<n> or after:<n>.');
    const shardIds = args.shardIds('shards');
    const data = await client.request<{ seekEventSourceMapping: MappingLag }>(
      `mutation($id: ID!, $position: PositionInput!, $shardIds: [String!]) {
        seekEventSourceMapping(id: $id, position: $position, shardIds: $shardIds) { ${MAPPING_FIELDS} } }`,
      { id, position, shardIds });
    const mapping = data.seekEventSourceMapping;
    if (json) {
      printJson({ position, shardIds: shardIds ?? null, mapping: mappingJson(mapping) });
    } else {
      print(`sought mapping ${mapping.id} to ${describePosition(position)}${shardIds ? ` on ${shardIds.join(', ')}` : ''}\n`);
      print(formatMapping(mapping));
    }
    return EXIT.OK;
  },
};
