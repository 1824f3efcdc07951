/**
 * Retention: records older than their stream's retention are unreadable at once (readers
 * filter on arrival), and this trimmer removes them in the background:
 *
 * 1. A daily partition is dropped whole when every live stream whose retention still covers
 *    part of that day has no record in it (an index probe per such stream's shards).
 * 2. Otherwise expired records of a stream are deleted in bounded batches (trimBatchSize per
 *    statement, each statement its own transaction), so writers are never blocked for long.
 * 3. Records of deleted streams are purged the same way, then their shard, item and stream rows.
 * 4. The invocation log keeps INVOCATION_LOG_DAYS; older rows go in bounded batches too.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../db.ts';
import { dropDetachedPartitions, dropPartition, listPartitions } from './partitions.ts';

/** How long after its day ends a partition is left alone. */
const PARTITION_GRACE_MS = 3600_000;

/** How long invocation rows are kept (failures stay: redrive needs them while records live). */
export const INVOCATION_LOG_DAYS = 7;

export interface TrimReport { droppedPartitions: string[]; deletedRecords: number; purgedStreams: number }

interface StreamRetention { id: number; retention_hours: number; deleted: boolean; keys: number[] }

export class RetentionTrimmer {
  constructor(
    private readonly handle: DatabaseHandle,
    private readonly batchSize: number,
  ) {}

  async trim(now: Date = new Date()): Promise<TrimReport> {
    const report: TrimReport = { droppedPartitions: [], deletedRecords: 0, purgedStreams: 0 };
    const streams = (await this.handle.query<{ id: unknown; retention_hours: number; deleted: boolean; keys: unknown[] | null }>(sql`
      select s.id, s.retention_hours, s.deleted_at is not null as deleted,
             array_agg(sh.key order by sh.key) filter (where sh.key is not null) as keys
        from streams s left join shards sh on sh.stream_id = s.id
       group by s.id`)).map((r): StreamRetention => ({
      id: Number(r.id), retention_hours: r.retention_hours, deleted: r.deleted, keys: (r.keys ?? []).map(Number),
    }));
    const cutoff = (s: StreamRetention) => (s.deleted ? Infinity : now.getTime() - s.retention_hours * 3600_000);

    for (const partition of await listPartitions(this.handle)) {
      // An hour's grace past the day's end: a row stamped just before midnight by the
      // database's clock may still be uncommitted (invisible to the probe below), or the
      // clocks may disagree.
      if (partition.to.getTime() > now.getTime() - PARTITION_GRACE_MS) continue;
      const stillLive = streams.filter((s) => cutoff(s) < partition.to.getTime()).flatMap((s) => s.keys);
      if (stillLive.length > 0) {
        const probe = await this.handle.query(sql`
          select 1 from ${sql.identifier(partition.name)} where shard_key = any(${sql.param(stillLive)}::bigint[]) limit 1`);
        if (probe.length > 0) continue;
      }
      if (await dropPartition(this.handle, partition.name)) report.droppedPartitions.push(partition.name);
    }
    report.droppedPartitions.push(...await dropDetachedPartitions(this.handle));

    for (const stream of streams) {
      const until = cutoff(stream);
      for (const key of stream.keys) {
        report.deletedRecords += await this.#deleteBefore(key, until === Infinity ? null : new Date(until));
      }
      if (stream.deleted) {
        await this.handle.transaction(async (tx) => {
          await tx.execute(sql`delete from shards where stream_id = ${stream.id}`);
          await tx.execute(sql`delete from items where stream_id = ${stream.id}`);
          await tx.execute(sql`delete from scalings where stream_id = ${stream.id}`);
          await tx.execute(sql`delete from streams where id = ${stream.id}`);
        });
        report.purgedStreams++;
      }
    }
    await this.#expireInvocations(now);
    return report;
  }

  async #expireInvocations(now: Date): Promise<void> {
    const before = new Date(now.getTime() - INVOCATION_LOG_DAYS * 86_400_000).toISOString();
    for (;;) {
      const [row] = await this.handle.query<{ n: number }>(sql`
        with gone as (
          delete from invocations where id in (
            -- The oldest rows by id (ids follow time): a primary-key range, no scan of the log.
            select id from (select id, started_at from invocations order by id limit ${this.batchSize}::int) oldest
             where started_at < ${before}::timestamptz)
          returning 1)
        select count(*)::int as n from gone`);
      if ((row?.n ?? 0) < this.batchSize) return;
    }
  }

  /** Deletes a shard's records that arrived before `until` (all when null), batch by batch. */
  async #deleteBefore(shardKey: number, until: Date | null): Promise<number> {
    let total = 0;
    const before = until === null ? sql`true` : sql`arrived_at < ${until.toISOString()}::timestamptz`;
    for (;;) {
      const [row] = await this.handle.query<{ n: number }>(sql`
        with gone as (
          delete from records r
           using (select shard_key, seq, arrived_at from records
                   where shard_key = ${shardKey} and ${before}
                   order by arrived_at limit ${this.batchSize}::int) d
           where r.shard_key = d.shard_key and r.seq = d.seq and r.arrived_at = d.arrived_at
          returning 1)
        select count(*)::int as n from gone`);
      const deleted = row?.n ?? 0;
      total += deleted;
      if (deleted < this.batchSize) return total;
    }
  }
}
