/**
 * Tables managed by drizzle-kit (`npm run db:generate` writes migrations/ from this file).
 * The records table is partitioned by arrival time, which drizzle-kit cannot express; it is
 * created by a custom migration and described in engine/records/recordsTable.ts.
 */
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

export const streams = pgTable(
  'streams',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    name: text('name').notNull(),
    kind: text('kind', { enum: ['KINESIS', 'DYNAMODB'] }).notNull(),
    status: text('status', { enum: ['CREATING', 'ACTIVE', 'UPDATING', 'DELETING'] }).notNull(),
    retentionHours: integer('retention_hours').notNull(),
    viewType: text('view_type', { enum: ['KEYS_ONLY', 'NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES'] }),
    /** Next shard index to hand out: shard ids are never reused. */
    nextShardIndex: integer('next_shard_index').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    /** Set by deleteStream; the housekeeper purges the records, then the rows. */
    deletedAt: timestamp('deleted_at', { withTimezone: true, precision: 3 }),
  },
  (t) => [uniqueIndex('streams_live_name').on(t.name).where(sql`deleted_at is null`)],
);

export const shards = pgTable(
  'shards',
  {
    /** Internal key; records reference it instead of the text shard id. */
    key: bigserial('key', { mode: 'number' }).primaryKey(),
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    shardIndex: integer('shard_index').notNull(),
    parentIndex: integer('parent_index'),
    adjacentParentIndex: integer('adjacent_parent_index'),
    hashStart: numeric('hash_start', { precision: 39, scale: 0 }).notNull(),
    hashEnd: numeric('hash_end', { precision: 39, scale: 0 }).notNull(),
    /** DYNAMODB: the table partition this shard serves (children keep it). */
    partition: integer('partition'),
    startingSeq: bigint('starting_seq', { mode: 'bigint' }).notNull(),
    endingSeq: bigint('ending_seq', { mode: 'bigint' }),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    closedAt: timestamp('closed_at', { withTimezone: true, precision: 3 }),
    /** Arrival time of the newest record: arrivals never go backwards within a shard. */
    lastArrival: timestamp('last_arrival', { withTimezone: true, precision: 6 }),
  },
  (t) => [
    uniqueIndex('shards_stream_index').on(t.streamId, t.shardIndex),
    index('shards_open').on(t.streamId).where(sql`closed_at is null`),
  ],
);

/** updateShardCount history, for AWS's limit of 10 scalings per rolling 24 hours. */
export const scalings = pgTable(
  'scalings',
  {
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('scalings_stream_at').on(t.streamId, t.at)],
);

/** DYNAMODB streams: each table's current items, keyed by the canonical JSON of their keys. */
export const items = pgTable(
  'items',
  {
    streamId: bigint('stream_id', { mode: 'number' }).notNull(),
    itemKey: text('item_key').notNull(),
    item: jsonb('item').notNull(),
  },
  (t) => [primaryKey({ columns: [t.streamId, t.itemKey] })],
);
