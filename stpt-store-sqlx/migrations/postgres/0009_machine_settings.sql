-- Settings an admin gives one machine or run. A machine's own liveness thresholds (seconds;
-- NULL: the server's); its own retention policy when own_retention is set (keep_days and
-- keep_runs NULL: no such limit), else the server's; and runs marked kept, which pruning
-- never deletes.
ALTER TABLE stpt.machines ADD COLUMN quiet_after_secs BIGINT;
ALTER TABLE stpt.machines ADD COLUMN offline_after_secs BIGINT;
ALTER TABLE stpt.machines ADD COLUMN own_retention BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE stpt.machines ADD COLUMN keep_days BIGINT;
ALTER TABLE stpt.machines ADD COLUMN keep_runs BIGINT;
ALTER TABLE stpt.runs ADD COLUMN kept BOOLEAN NOT NULL DEFAULT FALSE;
