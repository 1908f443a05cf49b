-- Bumped by every write to a machine's runs, so a server instance that keeps a machine's
-- ongoing run in memory can tell whether another instance wrote since.
ALTER TABLE stpt.machines ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
