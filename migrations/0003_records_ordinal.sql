-- A dense per-shard ordinal on every record (1, 2, 3 … within its shard), taken with the
-- sequence number under the shard lock: records behind a checkpoint is then a subtraction.
ALTER TABLE "records" ADD COLUMN "ordinal" bigint NOT NULL DEFAULT 0;
