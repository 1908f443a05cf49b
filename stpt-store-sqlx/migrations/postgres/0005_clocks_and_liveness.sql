-- The runner clock's offset from the server's, as last estimated (milliseconds, runner minus
-- server), and when a run's runner went silent if the server closed the run for it.
ALTER TABLE stpt.machines ADD COLUMN clock_offset_ms BIGINT;
ALTER TABLE stpt.runs ADD COLUMN went_silent_at TIMESTAMPTZ;
