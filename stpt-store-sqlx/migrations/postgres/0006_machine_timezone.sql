-- The IANA time zone a machine's runner writes naive timestamps in, when an admin set one
-- (NULL: the server's default).
ALTER TABLE stpt.machines ADD COLUMN runner_timezone TEXT;
