-- Functions, event source mappings, their leases (owner, expiry, fencing epoch, checkpoint),
-- and the invocation and failure logs; shards count their records for O(1) records-behind.
--> statement-breakpoint
CREATE TABLE "event_source_mappings" (
	"id" text PRIMARY KEY NOT NULL,
	"stream_id" bigint NOT NULL,
	"function_name" text NOT NULL,
	"enabled" boolean NOT NULL,
	"batch_size" integer NOT NULL,
	"maximum_batching_window_seconds" integer NOT NULL,
	"starting_position" text NOT NULL,
	"starting_position_timestamp" timestamp (3) with time zone,
	"parallelization_factor" integer NOT NULL,
	"bisect_batch_on_function_error" boolean NOT NULL,
	"maximum_retry_attempts" integer NOT NULL,
	"maximum_record_age_seconds" integer NOT NULL,
	"function_response_types" jsonb NOT NULL,
	"filter_patterns" jsonb NOT NULL,
	"tumbling_window_seconds" integer NOT NULL,
	"on_failure_url" text,
	"version" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "failures" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mapping_id" text NOT NULL,
	"kind" text NOT NULL,
	"shard_key" bigint NOT NULL,
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"record_count" integer NOT NULL,
	"attempt" integer NOT NULL,
	"message" text,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"destination_record" jsonb,
	"redriven_by" text
);
--> statement-breakpoint
CREATE TABLE "functions" (
	"name" text PRIMARY KEY NOT NULL,
	"url" text,
	"module" text,
	"timeout_seconds" integer NOT NULL,
	"reserved_concurrency" integer,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "invocations" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mapping_id" text NOT NULL,
	"shard_key" bigint NOT NULL,
	"lane" integer NOT NULL,
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"record_count" integer NOT NULL,
	"attempt" integer NOT NULL,
	"outcome" text NOT NULL,
	"duration_ms" integer NOT NULL,
	"error" text,
	"started_at" timestamp (3) with time zone NOT NULL,
	"replay_id" text
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"mapping_id" text NOT NULL,
	"shard_key" bigint NOT NULL,
	"lane" integer NOT NULL,
	"state" text NOT NULL,
	"owner" text,
	"expires_at" timestamp (3) with time zone,
	"epoch" bigint DEFAULT 0 NOT NULL,
	"checkpoint_seq" bigint,
	"checkpoint_ordinal" bigint DEFAULT 0 NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"iterator_age_ms" bigint,
	"last_invoked_at" timestamp (3) with time zone,
	"window_state" jsonb,
	"window_start" timestamp (3) with time zone,
	CONSTRAINT "leases_mapping_id_shard_key_lane_pk" PRIMARY KEY("mapping_id","shard_key","lane")
);
--> statement-breakpoint
ALTER TABLE "shards" ADD COLUMN "record_count" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "event_source_mappings_stream" ON "event_source_mappings" USING btree ("stream_id");--> statement-breakpoint
CREATE INDEX "failures_mapping" ON "failures" USING btree ("mapping_id","id");--> statement-breakpoint
CREATE INDEX "invocations_mapping" ON "invocations" USING btree ("mapping_id","id");--> statement-breakpoint
CREATE INDEX "leases_owner" ON "leases" USING btree ("owner");