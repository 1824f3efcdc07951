-- Tags of KINESIS streams (the Kinesis API's AddTagsToStream, RemoveTagsFromStream, ListTagsForStream);
-- they go with their stream row when the retention trimmer purges a deleted stream.
--> statement-breakpoint
CREATE TABLE "stream_tags" (
	"stream_id" bigint NOT NULL,
	"key" text NOT NULL,
	"value" text NOT NULL,
	CONSTRAINT "stream_tags_stream_id_key_pk" PRIMARY KEY("stream_id","key")
);
--> statement-breakpoint
ALTER TABLE "stream_tags" ADD CONSTRAINT "stream_tags_stream_id_streams_id_fk" FOREIGN KEY ("stream_id") REFERENCES "public"."streams"("id") ON DELETE cascade ON UPDATE no action;