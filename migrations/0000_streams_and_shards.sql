-- Streams, shards with their lineage, DYNAMODB table items, and the updateShardCount history.
--> statement-breakpoint
CREATE TABLE "items" (
	"stream_id" bigint NOT NULL,
	"item_key" text NOT NULL,
	"item" jsonb NOT NULL,
	CONSTRAINT "items_stream_id_item_key_pk" PRIMARY KEY("stream_id","item_key")
);
--> statement-breakpoint
CREATE TABLE "scalings" (
	"stream_id" bigint NOT NULL,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "shards" (
	"key" bigserial PRIMARY KEY NOT NULL,
	"stream_id" bigint NOT NULL,
	"shard_index" integer NOT NULL,
	"parent_index" integer,
	"adjacent_parent_index" integer,
	"hash_start" numeric(39, 0) NOT NULL,
	"hash_end" numeric(39, 0) NOT NULL,
	"partition" integer,
	"starting_seq" bigint NOT NULL,
	"ending_seq" bigint,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"closed_at" timestamp (3) with time zone,
	"last_arrival" timestamp (6) with time zone
);
--> statement-breakpoint
CREATE TABLE "streams" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"status" text NOT NULL,
	"retention_hours" integer NOT NULL,
	"view_type" text,
	"next_shard_index" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp (3) with time zone
);
--> statement-breakpoint
CREATE INDEX "scalings_stream_at" ON "scalings" USING btree ("stream_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "shards_stream_index" ON "shards" USING btree ("stream_id","shard_index");--> statement-breakpoint
CREATE INDEX "shards_open" ON "shards" USING btree ("stream_id") WHERE closed_at is null;--> statement-breakpoint
CREATE UNIQUE INDEX "streams_live_name" ON "streams" USING btree ("name") WHERE deleted_at is null;