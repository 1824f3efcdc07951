-- Metrics history samples, alert rules and alerts.
--> statement-breakpoint
CREATE TABLE "alert_rules" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"mapping_id" text,
	"metric" text NOT NULL,
	"threshold" double precision NOT NULL,
	"for_seconds" integer NOT NULL,
	"condition_since" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "alerts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"rule_id" text NOT NULL,
	"state" text NOT NULL,
	"value" double precision NOT NULL,
	"started_at" timestamp (3) with time zone NOT NULL,
	"resolved_at" timestamp (3) with time zone
);
--> statement-breakpoint
CREATE TABLE "metric_samples" (
	"mapping_id" text NOT NULL,
	"shard_key" bigint NOT NULL,
	"step_seconds" integer NOT NULL,
	"at" timestamp (3) with time zone NOT NULL,
	"iterator_age_ms" bigint,
	"records_behind" bigint NOT NULL,
	"invocations" integer NOT NULL,
	"errors" integer NOT NULL,
	"records_processed" integer NOT NULL,
	CONSTRAINT "metric_samples_mapping_id_shard_key_step_seconds_at_pk" PRIMARY KEY("mapping_id","shard_key","step_seconds","at")
);
--> statement-breakpoint
CREATE INDEX "alerts_rule" ON "alerts" USING btree ("rule_id","id");