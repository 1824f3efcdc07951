-- A deleted rule is kept (marked) for the alerts that name it: Alert.rule is never null.
ALTER TABLE "alert_rules" ADD COLUMN "deleted_at" timestamp (3) with time zone;