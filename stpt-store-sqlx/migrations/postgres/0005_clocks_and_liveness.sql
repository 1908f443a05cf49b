-- The runner clock's offset from the server's, as last estimated (milliseconds, runner minus
-- server), and when a run's runner went silent if the server closed the run for it.
ALTER TABLE stpt.machines ADD COLUMN clock_offset_ms BIGINT;
ALTER TABLE stpt.runs ADD COLUMN went_silent_at TIMESTAMPTZ;

-- Each test identity's last durations (milliseconds, comma-separated, oldest first), per
-- machine and across machines (machine 0), for estimates that never scan past runs.
CREATE TABLE stpt.durations (
    machine_id BIGINT NOT NULL,
    file_path  TEXT   NOT NULL,
    file_name  TEXT   NOT NULL,
    samples    TEXT   NOT NULL,
    PRIMARY KEY (machine_id, file_path, file_name)
);
