-- Which source stream a capture follows (its ARN and creation time), so one deleted and created
-- again under the same name is noticed instead of being taken for the old one.
ALTER TABLE "capture_sources" ADD COLUMN "source_identity" text;