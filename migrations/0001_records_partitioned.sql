-- Records, partitioned by arrival time so that retention drops whole expired partitions
-- instead of deleting hundreds of millions of rows. Daily partitions are created ahead by the
-- housekeeper (and on demand by a writer that finds none). There is no default partition:
-- it would forbid DETACH PARTITION CONCURRENTLY, which lets retention drop a day unblocked.
-- Sequence numbers come from one sequence, taken while the shard row is locked, so they rise
-- within a shard in commit order and compare across shards in arrival order.
CREATE SEQUENCE "record_seq" AS bigint START WITH 1000;
--> statement-breakpoint
CREATE TABLE "records" (
	"shard_key" bigint NOT NULL,
	"seq" bigint NOT NULL,
	"arrived_at" timestamp (6) with time zone NOT NULL,
	"partition_key" text NOT NULL,
	"data" bytea NOT NULL,
	"size_bytes" integer NOT NULL,
	"event_name" text,
	"event_id" text,
	"origin" jsonb,
	CONSTRAINT "records_pk" PRIMARY KEY ("shard_key", "seq", "arrived_at")
) PARTITION BY RANGE ("arrived_at");
--> statement-breakpoint
CREATE INDEX "records_shard_arrival" ON "records" USING btree ("shard_key", "arrived_at");
