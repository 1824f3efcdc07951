-- A replay range's open tumbling window and its state, so a job resumed elsewhere carries it on.
ALTER TABLE "replay_cursors" ADD COLUMN "window_start" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "replay_cursors" ADD COLUMN "window_state" jsonb;