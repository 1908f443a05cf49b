-- The runner clock's offset from the server's, as last estimated (milliseconds, runner minus
-- server), and when a run's runner went silent if the server closed the run for it.
ALTER TABLE stpt_machines ADD COLUMN clock_offset_ms INTEGER;
ALTER TABLE stpt_runs ADD COLUMN went_silent_at TEXT;

-- Each test identity's last durations (milliseconds, comma-separated, oldest first), per
-- machine and across machines (machine 0), for estimates that never scan past runs.
CREATE TABLE stpt_durations (
    machine_id INTEGER NOT NULL,
    file_path  TEXT    NOT NULL,
    file_name  TEXT    NOT NULL,
    samples    TEXT    NOT NULL,
    PRIMARY KEY (machine_id, file_path, file_name)
);
