CREATE TABLE "capture_shards" (
	"source_id" text NOT NULL,
	"source_shard_id" text NOT NULL,
	"parent_shard_id" text,
	"adjacent_parent_shard_id" text,
	"hash_start" numeric(39, 0) NOT NULL,
	"hash_end" numeric(39, 0) NOT NULL,
	"shard_key" bigint,
	"state" text NOT NULL,
	"start_type" text NOT NULL,
	"last_sequence_number" text,
	"millis_behind_latest" bigint,
	"records_captured" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "capture_shards_source_id_source_shard_id_pk" PRIMARY KEY("source_id","source_shard_id")
);
--> statement-breakpoint
CREATE TABLE "capture_sources" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"endpoint" text,
	"region" text NOT NULL,
	"source_stream" text NOT NULL,
	"stream_id" bigint NOT NULL,
	"starting_position" text NOT NULL,
	"starting_timestamp" timestamp (3) with time zone NOT NULL,
	"state" text NOT NULL,
	"last_error" text,
	"last_error_at" timestamp (3) with time zone,
	"records_captured" bigint DEFAULT 0 NOT NULL,
	"owner" text,
	"expires_at" timestamp (3) with time zone,
	"epoch" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "streams" ADD COLUMN "enforce_throughput" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "capture_shards" ADD CONSTRAINT "capture_shards_source_id_capture_sources_id_fk" FOREIGN KEY ("source_id") REFERENCES "public"."capture_sources"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "capture_sources_stream" ON "capture_sources" USING btree ("stream_id");