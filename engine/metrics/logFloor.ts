/**
 * Reading the invocation and failure logs incrementally without an index on time.
 *
 * A log row is inserted after the thing it records ended (an invocation's finish, started_at
 * + duration_ms; a failure's transaction start, `at`), in the short transaction that logs
 * it, and ids come from a sequence in insertion order. So when a row R ended before
 * `cutoff - COMMIT_MARGIN_MS`, every row with a smaller id was inserted before R and has
 * committed by `cutoff`, and every row that ends at or after `cutoff` has a larger id than R.
 * R's id is a *floor*: `id > floor` covers everything recent, through the primary key.
 *
 * Finding it is a backward scan of the primary key that stops at the first old-enough row,
 * so its cost is the number of rows logged during the last COMMIT_MARGIN_MS, whatever the
 * size of the log.
 */
import { sql } from 'drizzle-orm';
import type { Database, DatabaseHandle } from '../db.ts';

/** Longer than any gap between a row's end and its commit (a lane's logging transaction). */
export const COMMIT_MARGIN_MS = 10_000;

/** The invocations' end time, for SQL. */
export const INVOCATION_END = sql`(started_at + duration_ms * interval '1 millisecond')`;

/** The id below which every invocation is committed and ended before `cutoff` (0 when none is). */
export async function invocationFloor(handle: DatabaseHandle, cutoff: Date, executor?: Database): Promise<number> {
  const before = new Date(cutoff.getTime() - COMMIT_MARGIN_MS).toISOString();
  const [row] = await handle.query<{ id: unknown }>(sql`
    select id from invocations where ${INVOCATION_END} < ${before}::timestamptz order by id desc limit 1`, executor);
  return row ? Number(row.id) : 0;
}

/** The id below which every failure row is committed and recorded before `cutoff` (0 when none is). */
export async function failureFloor(handle: DatabaseHandle, cutoff: Date, executor?: Database): Promise<number> {
  const before = new Date(cutoff.getTime() - COMMIT_MARGIN_MS).toISOString();
  const [row] = await handle.query<{ id: unknown }>(sql`
    select id from failures where at < ${before}::timestamptz order by id desc limit 1`, executor);
  return row ? Number(row.id) : 0;
}
