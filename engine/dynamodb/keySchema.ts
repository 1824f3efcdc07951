/**
 * The key attributes of a DYNAMODB stream's table, for DynamoDB Streams' DescribeStream
 * KeySchema. shardline keeps no table definition, so they are read off the newest record of
 * one of the stream's shards: its Keys, in the order the writer gave them (the first is taken
 * for the partition key, a second for the sort key). A stream without records has none.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import type { StreamInfo } from '../streams/model.ts';

export interface KeySchemaElement { attributeName: string; keyType: 'HASH' | 'RANGE' }

export async function inferKeySchema(handle: DatabaseHandle, stream: StreamInfo): Promise<KeySchemaElement[] | undefined> {
  const [row] = await handle.query<{ data: string }>(sql`
    select convert_from(r.data, 'UTF8') as data
      from shards s
      cross join lateral (select data from records r where r.shard_key = s.key order by r.seq desc limit 1) r
     where s.stream_id = ${stream.id}
     order by s.shard_index desc
     limit 1`);
  if (!row) return undefined;
  try {
    const keys = (JSON.parse(row.data) as { Keys?: Record<string, unknown> }).Keys;
    const names = keys && typeof keys === 'object' ? Object.keys(keys) : [];
    if (names.length === 0 || names.length > 2) return undefined;
    return names.map((attributeName, i) => ({ attributeName, keyType: i === 0 ? 'HASH' : 'RANGE' }));
  } catch {
    return undefined;
  }
}
