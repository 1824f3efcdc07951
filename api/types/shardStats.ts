/**
 * Shard.recordCount, for the dashboard's lineage tree: the records ever written to a shard
 * (the dense ordinal of its newest record, kept on the shard row by appendRecords, so reading
 * it never counts rows). Records trimmed by retention still count. The shards of one request
 * are read with one statement.
 */
import { sql } from 'drizzle-orm';
import type { DatabaseHandle } from '../../engine/db.ts';
import { builder } from '../builder.ts';
import { Shard } from './stream.ts';

type Waiter = { key: number; resolve: (n: number) => void; reject: (e: unknown) => void };
const queues = new WeakMap<DatabaseHandle, Waiter[]>();

/** Batches the lookups made in one tick (the shards of a list) into one query. */
function recordCount(handle: DatabaseHandle, key: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let queue = queues.get(handle);
    if (!queue) {
      const fresh: Waiter[] = [];
      queue = fresh;
      queues.set(handle, fresh);
      setImmediate(() => {
        queues.delete(handle);
        const keys = [...new Set(fresh.map((w) => w.key))];
        handle.query<{ key: unknown; record_count: unknown }>(sql`
          select key, record_count from shards where key in (${sql.join(keys.map((k) => sql`${k}::bigint`), sql`, `)})`)
          .then((rows) => {
            const counts = new Map(rows.map((r) => [Number(r.key), Number(r.record_count)]));
            for (const w of fresh) w.resolve(counts.get(w.key) ?? 0);
          }, (error) => {
            for (const w of fresh) w.reject(error);
          });
      });
    }
    queue.push({ key, resolve, reject });
  });
}

builder.objectField(Shard, 'recordCount', (t) => t.int({
  description: 'Records ever written to the shard (trimmed records still count).',
  resolve: (shard, _args, ctx) => recordCount(ctx.engine.handle, shard.key),
}));
