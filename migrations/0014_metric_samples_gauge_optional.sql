-- A step whose gauges were not sampled (its counters recomputed from the log) has no records-behind figure: null, not 0.
ALTER TABLE "metric_samples" ALTER COLUMN "records_behind" DROP NOT NULL;