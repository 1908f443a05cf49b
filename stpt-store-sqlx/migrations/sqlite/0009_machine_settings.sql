-- Settings an admin gives one machine or run. A machine's own liveness thresholds (seconds;
-- NULL: the server's); its own retention policy when own_retention is 1 (keep_days and
-- keep_runs NULL: no such limit), else the server's; and runs marked kept, which pruning
-- never deletes.
ALTER TABLE stpt_machines ADD COLUMN quiet_after_secs INTEGER;
ALTER TABLE stpt_machines ADD COLUMN offline_after_secs INTEGER;
ALTER TABLE stpt_machines ADD COLUMN own_retention INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stpt_machines ADD COLUMN keep_days INTEGER;
ALTER TABLE stpt_machines ADD COLUMN keep_runs INTEGER;
ALTER TABLE stpt_runs ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
