-- The runner clock's offset from the server's, as last estimated (milliseconds, runner minus
-- server), and when a run's runner went silent if the server closed the run for it.
ALTER TABLE stpt_machines ADD COLUMN clock_offset_ms INTEGER;
ALTER TABLE stpt_runs ADD COLUMN went_silent_at TEXT;
