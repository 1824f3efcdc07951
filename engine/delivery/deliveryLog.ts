/** Reading the invocation and failure logs of a mapping: newest first, keyset pages by id. */
import { and, desc, eq, lt } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { MAX_PAGE_SIZE, pageSize } from '../pageSize.ts';
import { invalidArgument } from '../errors.ts';
import { failures, invocations, shards } from '../schema.ts';
import { shardIdOf } from '../streams/model.ts';
import { formatSequenceNumber } from '../streams/sequenceNumbers.ts';

export const LOG_PAGE = { default: 50, max: MAX_PAGE_SIZE };

export interface LogPage<T> { items: { cursor: string; node: T }[]; hasNextPage: boolean; endCursor: string | null }

function pageArgs(first: number | null | undefined, after: string | null | undefined): { limit: number; before?: number } {
  const limit = pageSize(first ?? LOG_PAGE.default, LOG_PAGE.max);
  if (after == null) return { limit };
  // Ids are bigserial: a longer number is no cursor of ours, and would be a database error.
  if (!/^\d{1,15}$/.test(after)) throw invalidArgument('after is not a cursor returned by this API.');
  return { limit, before: Number(after) };
}

function page<T extends { id: number }>(rows: T[], limit: number): LogPage<T> {
  const items = rows.slice(0, limit).map((node) => ({ cursor: String(node.id), node }));
  return { items, hasNextPage: rows.length > limit, endCursor: items.at(-1)?.cursor ?? null };
}

export async function listInvocations(handle: DatabaseHandle, mappingId: string,
  args: { first?: number | null; after?: string | null; outcome?: string | null }) {
  const { limit, before } = pageArgs(args.first, args.after);
  const rows = await handle.db.select({ row: invocations, shardIndex: shards.shardIndex }).from(invocations)
    .innerJoin(shards, eq(shards.key, invocations.shardKey))
    .where(and(
      eq(invocations.mappingId, mappingId),
      args.outcome ? eq(invocations.outcome, args.outcome as 'OK') : undefined,
      before !== undefined ? lt(invocations.id, before) : undefined,
    )).orderBy(desc(invocations.id)).limit(limit + 1);
  return page(rows.map(({ row, shardIndex }) => ({
    id: row.id,
    shardId: shardIdOf(shardIndex),
    lane: row.lane,
    firstSequenceNumber: formatSequenceNumber(row.firstSeq),
    lastSequenceNumber: formatSequenceNumber(row.lastSeq),
    recordCount: row.recordCount,
    attempt: row.attempt,
    outcome: row.outcome,
    durationMs: row.durationMs,
    error: row.error,
    startedAt: row.startedAt,
    replayId: row.replayId,
  })), limit);
}

export async function listFailures(handle: DatabaseHandle, mappingId: string,
  args: { first?: number | null; after?: string | null; kind?: string | null }) {
  const { limit, before } = pageArgs(args.first, args.after);
  const rows = await handle.db.select({ row: failures, shardIndex: shards.shardIndex }).from(failures)
    .innerJoin(shards, eq(shards.key, failures.shardKey))
    .where(and(
      eq(failures.mappingId, mappingId),
      args.kind ? eq(failures.kind, args.kind as 'BISECTED') : undefined,
      before !== undefined ? lt(failures.id, before) : undefined,
    )).orderBy(desc(failures.id)).limit(limit + 1);
  return page(rows.map(({ row, shardIndex }) => toFailureView(row, shardIndex)), limit);
}

/** A failure row as the API shows it (the Failure type). */
export function toFailureView(row: typeof failures.$inferSelect, shardIndex: number) {
  return {
    id: row.id,
    kind: row.kind,
    mappingId: row.mappingId,
    shardId: shardIdOf(shardIndex),
    lane: row.lane,
    firstSequenceNumber: formatSequenceNumber(row.firstSeq),
    lastSequenceNumber: formatSequenceNumber(row.lastSeq),
    recordCount: row.recordCount,
    attempt: row.attempt,
    message: row.message,
    at: row.at,
    destinationRecord: row.destinationRecord,
    redrivenBy: row.redrivenBy,
  };
}

export type FailureView = ReturnType<typeof toFailureView>;
export type InvocationView = Awaited<ReturnType<typeof listInvocations>>['items'][number]['node'];
