/**
 * A batch step's writes as one statement: the fenced progress (a lane's lease, here; a replay
 * job's counters in engine/replay/replayRunner.ts) and, only when that update applied, the
 * step's invocation, its failures and a discard's ledger entry. One statement is one
 * transaction, so they commit together or not at all, as they did in a BEGIN … COMMIT, in one
 * round trip instead of three: on a busy process each round trip waits for the event loop, and
 * the step's failures reach subscribers only after the commit.
 *
 * The inserts read the fence's RETURNING rows (`where exists (select 1 from saved)`), which
 * makes Postgres finish that update first: a lost lease writes nothing. The failures travel as
 * arrays, so the statement's text does not vary with their number and stays prepared, and come
 * back as stored, so the failures feed shows what a later read of them would.
 *
 * Text a function produced (error messages, the on-failure record) is made storable first: a
 * NUL, or half of a surrogate pair, would make Postgres refuse the statement, and the step would
 * be retried forever. Each becomes U+FFFD.
 */
import { type SQL, sql } from 'drizzle-orm';
import { type DatabaseHandle, retryingConflicts } from '../db.ts';
import type { failures } from '../schema.ts';
import type { FailureRow, InvocationRow } from './batchDelivery.ts';
import type { LeaseIdentity, LeaseProgress, LeaseTable } from './leaseTable.ts';

export type FailureRecord = typeof failures.$inferSelect;

/** Whose log a step's rows go to; `lanes`: the lane count `lane` is one of (the mapping's parallelizationFactor; 1 by default). */
export interface StepLogOwner { mappingId: string; shardKey: number; lane: number; lanes?: number; replayId?: string }

export interface StepLog {
  invocation?: InvocationRow;
  failures: FailureRow[];
}

/** Text Postgres can store: NUL and unpaired surrogates become U+FFFD. */
export function storableText(text: string): string;
export function storableText(text: string | null): string | null;
export function storableText(text: string | null): string | null {
  return text === null ? null : text.replace(/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** JSON text for a jsonb column, its strings made storable. */
function storableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? storableText(v) : v));
}

/**
 * The CTEs that log a step, each writing only while `guard` holds: `invoked` (the invocation, if
 * any) and `failed` (the failures, returning what was stored; read it with FAILED_ROWS).
 */
export function stepLogCtes(owner: StepLogOwner, log: StepLog, guard: SQL): SQL {
  const inv = log.invocation;
  const fs = log.failures;
  return sql`
    invoked as (
      insert into invocations (mapping_id, shard_key, lane, replay_id, first_seq, last_seq, record_count, attempt, outcome, duration_ms, error, started_at)
      select ${owner.mappingId}, ${owner.shardKey}::bigint, ${owner.lane}::int, ${owner.replayId ?? null}::text,
             ${inv ? String(inv.firstSeq) : null}::bigint, ${inv ? String(inv.lastSeq) : null}::bigint, ${inv?.recordCount ?? null}::int,
             ${inv?.attempt ?? null}::int, ${inv?.outcome ?? null}::text, ${inv?.durationMs ?? null}::int,
             ${inv ? storableText(inv.error) : null}::text, ${inv ? inv.startedAt.toISOString() : null}::timestamptz
       where ${inv !== undefined}::boolean and ${guard}
    ),
    failed as (
      insert into failures (mapping_id, shard_key, lane, lanes, kind, first_seq, last_seq, record_count, attempt, message, destination_record)
      select ${owner.mappingId}, ${owner.shardKey}::bigint, ${owner.lane}::int, ${owner.lanes ?? 1}::int,
             f.kind, f.first_seq, f.last_seq, f.record_count, f.attempt, f.message, f.destination_record
        from unnest(
          ${sql.param(fs.map((f) => f.kind))}::text[], ${sql.param(fs.map((f) => String(f.firstSeq)))}::bigint[],
          ${sql.param(fs.map((f) => String(f.lastSeq)))}::bigint[], ${sql.param(fs.map((f) => String(f.recordCount)))}::int[],
          ${sql.param(fs.map((f) => String(f.attempt)))}::int[], ${sql.param(fs.map((f) => storableText(f.message)))}::text[],
          ${sql.param(fs.map((f) => (f.destinationRecord === null ? null : storableJson(f.destinationRecord))))}::jsonb[]
        ) with ordinality as f(kind, first_seq, last_seq, record_count, attempt, message, destination_record, place)
       where ${guard}
       -- In this order the rows draw their ids: the stored rows are matched to the input by them.
       order by f.place
      returning id, at, message, destination_record
    )`;
}

/** The select-list column of the stored failures: [id, at (epoch ms), message, destination_record] in id order. */
export const FAILED_ROWS = sql`(select json_agg(json_build_array(id, (extract(epoch from at) * 1000)::float8, message, destination_record) order by id) from failed)`;

/**
 * The failure rows as stored, for the failures event; undefined when they cannot be matched to
 * the input (the feed then reads them back by id).
 */
export function storedFailures(owner: StepLogOwner, log: StepLog, raw: unknown): { ids: number[]; rows: FailureRecord[] | undefined } {
  const stored = (typeof raw === 'string' ? JSON.parse(raw) : raw ?? []) as [number | string, number, string | null, unknown][];
  const ids = stored.map(([id]) => Number(id));
  if (stored.length !== log.failures.length) return { ids, rows: undefined };
  return {
    ids,
    rows: log.failures.map((f, i) => {
      const [id, atMs, message, destinationRecord] = stored[i]!;
      return {
        id: Number(id), at: new Date(atMs), mappingId: owner.mappingId, shardKey: owner.shardKey, kind: f.kind,
        firstSeq: f.firstSeq, lastSeq: f.lastSeq, recordCount: f.recordCount, attempt: f.attempt,
        message, destinationRecord: destinationRecord ?? null, redrivenBy: null, lane: owner.lane, lanes: owner.lanes ?? 1,
      };
    }),
  };
}

export interface StepWrites extends StepLog {
  /** A discard moved the checkpoint past records nobody acknowledged: the ledger's entry. */
  ledger?: { fromSeq: bigint | null; toSeq: bigint; reason: string };
}

/**
 * Commits a lane's step; saved false when the lease was lost (nothing written). Always durable:
 * the step's rows are announced once it returns.
 */
export async function commitStep(
  handle: DatabaseHandle, leases: LeaseTable, lease: LeaseIdentity, progress: Omit<LeaseProgress, 'durable'>, writes: StepWrites,
  lanes = 1,
): Promise<{ saved: boolean; failures: { ids: number[]; rows: FailureRecord[] | undefined } }> {
  const owner: StepLogOwner = { mappingId: lease.mappingId, shardKey: lease.shardKey, lane: lease.lane, lanes };
  const saved = sql`exists (select 1 from saved)`;
  const ledger = writes.ledger;
  const [row] = await retryingConflicts(() => handle.prepared<{ saved: number; failed: unknown }>(sql`
    with saved as (${leases.saveStatement(lease, { ...progress, durable: true })}),
    ${stepLogCtes(owner, writes, saved)},
    ledgered as (
      insert into checkpoint_ledger (mapping_id, shard_key, lane, from_seq, to_seq, reason, actor)
      select ${lease.mappingId}, ${lease.shardKey}::bigint, ${lease.lane}::int, ${ledger?.fromSeq == null ? null : String(ledger.fromSeq)}::bigint,
             ${ledger ? String(ledger.toSeq) : null}::bigint, ${ledger?.reason ?? null}::text, 'engine'
       where ${ledger !== undefined}::boolean and ${saved}
    )
    select (select count(*) from saved)::int as saved, ${FAILED_ROWS} as failed`));
  if (!row || Number(row.saved) !== 1) return { saved: false, failures: { ids: [], rows: [] } };
  return { saved: true, failures: storedFailures(owner, writes, row.failed) };
}
