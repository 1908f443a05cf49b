-- Bumped by every write to a machine's runs (as on PostgreSQL, where server instances
-- caching a machine's ongoing run check it).
ALTER TABLE stpt_machines ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
