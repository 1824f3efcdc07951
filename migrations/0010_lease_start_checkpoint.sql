-- A lease's checkpoint set by the mapping's starting position (LATEST, AT_TIMESTAMP), until the
-- lane moves it: the API shows no checkpoint then (the mapping is done with no record yet).
ALTER TABLE "leases" ADD COLUMN "checkpoint_is_start" boolean DEFAULT false NOT NULL;