-- The lane a failure happened on, of how many (the mapping's parallelizationFactor then), and
-- the lane of a replay range: a redrive reads only the failed lane's records of the range,
-- not the other lanes' records in between. Older rows: lane 0 of 1, the whole range as before.
ALTER TABLE "failures" ADD COLUMN "lane" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "failures" ADD COLUMN "lanes" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "replay_cursors" ADD COLUMN "lane_index" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "replay_cursors" ADD COLUMN "lane_count" integer DEFAULT 1 NOT NULL;