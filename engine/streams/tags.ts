/**
 * Tags of KINESIS streams: key → value, at most 50 per stream (AWS's documented quota). Adding
 * overwrites existing keys; the per-stream limit is checked under the stream row lock, so two
 * concurrent adds cannot together pass it. Rows are keyed by the stream's id, so a stream
 * deleted and created again under the same name starts without tags.
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { ShardlineError, invalidArgument } from '../errors.ts';
import { streamTags } from '../schema.ts';
import type { StreamInfo } from './model.ts';
import type { StreamCatalog } from './streamCatalog.ts';

export const TAG_LIMITS = { maxTagsPerStream: 50, maxKeyChars: 128, maxValueChars: 256 };

export interface Tag { key: string; value: string }

export class StreamTags {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly catalog: StreamCatalog,
  ) {}

  /** Adds or overwrites tags; fails as a whole when the stream would hold more than 50. */
  async add(streamName: string, tags: Tag[]): Promise<StreamInfo> {
    for (const tag of tags) checkTag(tag);
    return this.handle.transaction(async (tx) => {
      const stream = await this.catalog.lock(tx, streamName);
      const existing = await tx.select({ key: streamTags.key }).from(streamTags).where(eq(streamTags.streamId, stream.id));
      const keys = new Set([...existing.map((r) => r.key), ...tags.map((t) => t.key)]);
      if (keys.size > TAG_LIMITS.maxTagsPerStream) {
        throw new ShardlineError('LIMIT_EXCEEDED',
          `A stream may hold at most ${TAG_LIMITS.maxTagsPerStream} tags; stream ${streamName} would hold ${keys.size}.`);
      }
      if (tags.length > 0) {
        await tx.insert(streamTags).values(tags.map((t) => ({ streamId: stream.id, key: t.key, value: t.value })))
          .onConflictDoUpdate({ target: [streamTags.streamId, streamTags.key], set: { value: sql`excluded.value` } });
      }
      return stream;
    });
  }

  /** Removes the named keys; keys the stream does not have are ignored (as in AWS). */
  async remove(streamName: string, keys: string[]): Promise<void> {
    await this.handle.transaction(async (tx) => {
      const stream = await this.catalog.lock(tx, streamName);
      if (keys.length > 0) {
        await tx.delete(streamTags).where(and(eq(streamTags.streamId, stream.id), inArray(streamTags.key, keys)));
      }
    });
  }

  /** Tags in key order, after `exclusiveStartKey` when given, at most `limit`. */
  async list(stream: StreamInfo, options: { exclusiveStartKey?: string | null; limit: number }): Promise<{ tags: Tag[]; hasMore: boolean }> {
    const rows = await this.handle.db.select({ key: streamTags.key, value: streamTags.value }).from(streamTags)
      .where(and(
        eq(streamTags.streamId, stream.id),
        options.exclusiveStartKey == null ? undefined : sql`${streamTags.key} collate "C" > ${options.exclusiveStartKey}`,
      ))
      .orderBy(asc(sql`${streamTags.key} collate "C"`))
      .limit(options.limit + 1);
    return { tags: rows.slice(0, options.limit), hasMore: rows.length > options.limit };
  }
}

function checkTag(tag: Tag): void {
  const keyChars = [...tag.key].length;
  const valueChars = [...tag.value].length;
  if (keyChars < 1 || keyChars > TAG_LIMITS.maxKeyChars) {
    throw invalidArgument(`A tag key must be 1–${TAG_LIMITS.maxKeyChars} characters, got ${keyChars}.`);
  }
  if (valueChars > TAG_LIMITS.maxValueChars) {
    throw invalidArgument(`A tag value must be at most ${TAG_LIMITS.maxValueChars} characters, got ${valueChars}.`);
  }
}
