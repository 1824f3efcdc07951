-- Replay jobs and their per-range cursors, the checkpoint ledger, and the audit log.
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"target" text NOT NULL,
	"details" jsonb
);
--> statement-breakpoint
CREATE TABLE "checkpoint_ledger" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mapping_id" text NOT NULL,
	"shard_key" bigint NOT NULL,
	"lane" integer NOT NULL,
	"from_seq" bigint,
	"to_seq" bigint,
	"reason" text NOT NULL,
	"actor" text NOT NULL,
	"job_id" text,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "replay_cursors" (
	"job_id" text NOT NULL,
	"idx" integer NOT NULL,
	"shard_key" bigint NOT NULL,
	"after_seq" bigint NOT NULL,
	"end_seq" bigint NOT NULL,
	"cursor_seq" bigint,
	"total" integer DEFAULT 0 NOT NULL,
	"delivered" integer DEFAULT 0 NOT NULL,
	"done" boolean DEFAULT false NOT NULL,
	CONSTRAINT "replay_cursors_job_id_idx_pk" PRIMARY KEY("job_id","idx")
);
--> statement-breakpoint
CREATE TABLE "replay_jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"stream_id" bigint NOT NULL,
	"function_name" text NOT NULL,
	"mapping_id" text,
	"from_spec" text NOT NULL,
	"to_spec" text,
	"settings" jsonb NOT NULL,
	"rate_per_second" integer,
	"dry_run" boolean NOT NULL,
	"state" text NOT NULL,
	"total_records" integer,
	"total_bytes" bigint,
	"delivered_records" integer DEFAULT 0 NOT NULL,
	"failed_records" integer DEFAULT 0 NOT NULL,
	"requested_by" text,
	"redrive_of" jsonb,
	"owner" text,
	"expires_at" timestamp (3) with time zone,
	"epoch" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp (3) with time zone,
	"error" text
);
--> statement-breakpoint
CREATE INDEX "checkpoint_ledger_mapping" ON "checkpoint_ledger" USING btree ("mapping_id","at");