/**
 * Daily partitions of the records table (records_pYYYYMMDD, UTC days). The housekeeper creates
 * them a few days ahead (a writer that meets a missing one creates it and retries), and drops
 * a whole partition once no live stream can still read from it: that keeps retention cheap at
 * hundreds of millions of rows.
 *
 * On Postgres a partition is detached CONCURRENTLY (outside a transaction) before it is
 * dropped, so writers to the other partitions are not blocked by a lock on the parent.
 */
import { sql } from 'drizzle-orm';
import { type DatabaseHandle, databaseError } from '../db.ts';

const DAY_MS = 24 * 3600 * 1000;
const PARTITION_NAME = /^records_p(\d{4})(\d{2})(\d{2})$/;
const LOCK_ID = 7_262_002;

export const partitionName = (day: Date) => `records_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
const startOfDay = (ms: number) => new Date(Math.floor(ms / DAY_MS) * DAY_MS);

export interface PartitionInfo { name: string; from: Date; to: Date }

export async function listPartitions(handle: DatabaseHandle): Promise<PartitionInfo[]> {
  const rows = await handle.query<{ name: string }>(sql`
    select c.relname as name from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      join pg_class p on p.oid = i.inhparent
     where p.relname = 'records' and p.relnamespace = c.relnamespace
       and p.relnamespace = (select oid from pg_namespace where nspname = current_schema())`);
  return rows.flatMap(({ name }) => {
    const m = PARTITION_NAME.exec(name);
    if (!m) return [];
    const from = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    return [{ name, from, to: new Date(from.getTime() + DAY_MS) }];
  }).sort((a, b) => a.from.getTime() - b.from.getTime());
}

/** Creates the partitions of today and the next `daysAhead` days (UTC) that do not exist yet. */
export async function ensurePartitions(handle: DatabaseHandle, now: Date, daysAhead = 2): Promise<string[]> {
  const existing = new Set((await listPartitions(handle)).map((p) => p.name));
  const created: string[] = [];
  for (let d = 0; d <= daysAhead; d++) {
    const from = startOfDay(now.getTime() + d * DAY_MS);
    const name = partitionName(from);
    if (existing.has(name)) continue;
    const to = new Date(from.getTime() + DAY_MS);
    await handle.transaction(async (tx) => {
      if (handle.kind === 'postgres') await tx.execute(sql`select pg_advisory_xact_lock(${LOCK_ID})`);
      await tx.execute(sql.raw(
        `create table if not exists ${name} partition of records for values from ('${from.toISOString()}') to ('${to.toISOString()}')`,
      ));
    });
    created.push(name);
  }
  return created;
}

/** Ensures partitions around the database's own clock (what a writer's arrival time uses). */
export async function ensurePartitionsForDatabaseTime(handle: DatabaseHandle): Promise<void> {
  const [row] = await handle.query<{ ms: number }>(sql`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`);
  await ensurePartitions(handle, new Date(row!.ms - DAY_MS), 3);
}

/** True for the error of an INSERT that found no partition for its arrival time. */
export function isMissingPartition(raw: unknown): boolean {
  const { code, message } = databaseError(raw);
  return code === '23514' && message.includes('no partition of relation');
}

/**
 * Detaches and drops one partition; false when another process is doing it. Several
 * processes' trimmers may pick the same partition at once: one that deadlocks with another's
 * detach leaves it to that one (the partition stays listed until it is gone, so a later tick
 * tries again if that one stops short), one that finds this partition's detach left pending
 * finishes it, and one that finds it detached already just drops it.
 */
export async function dropPartition(handle: DatabaseHandle, name: string): Promise<boolean> {
  if (!PARTITION_NAME.test(name)) throw new Error(`Refusing to drop "${name}": not a records partition.`);
  if (handle.kind === 'postgres') {
    // DETACH … CONCURRENTLY cannot run inside a transaction block: run it on its own.
    try {
      await handle.db.execute(sql.raw(`alter table records detach partition ${name} concurrently`));
    } catch (raw) {
      const { code, message } = databaseError(raw);
      if (code === '40P01') return false;
      if (message.includes(`"${name}" already pending detach`)) {
        try {
          await handle.db.execute(sql.raw(`alter table records detach partition ${name} finalize`));
        } catch (again) {
          // Its detach is still under way in another process (we deadlocked with it, or it got
          // there first): that one drops it, or a later tick does.
          if (anotherProcessOnIt(again)) return false;
          throw again;
        }
      } else if (code !== '42P01' && !message.includes('is not a partition')) {
        throw raw;
      }
    }
  } else {
    await handle.db.execute(sql.raw(`alter table records detach partition ${name}`));
  }
  await handle.db.execute(sql.raw(`drop table if exists ${name}`));
  return true;
}

function anotherProcessOnIt(raw: unknown): boolean {
  const { code, message } = databaseError(raw);
  return code === '40P01' || code === '42P01' || /no pending concurrent detach|is not a partition/.test(message);
}

/**
 * Drops the record tables no longer attached to `records` (Postgres) and returns their names:
 * a process that detached one and stopped before its drop leaves it behind, and a detached
 * table is never read again.
 */
export async function dropDetachedPartitions(handle: DatabaseHandle): Promise<string[]> {
  if (handle.kind !== 'postgres') return [];
  const rows = await handle.query<{ name: string }>(sql`
    select c.relname as name from pg_class c
     where c.relkind = 'r' and c.relname ~ '^records_p[0-9]{8}$'
       and c.relnamespace = (select oid from pg_namespace where nspname = current_schema())
       and not exists (select 1 from pg_inherits i where i.inhrelid = c.oid)`);
  const names = rows.map((r) => r.name).filter((name) => PARTITION_NAME.test(name));
  for (const name of names) await handle.db.execute(sql.raw(`drop table if exists ${name}`));
  return names;
}
