-- A run names its running test (the rules keep at most one). Reading the running test by
-- query is then a key lookup, and no index on stpt.tests covers a column that a test's start
-- or stop changes: every event's test update can be heap-only (HOT), touching no index. Each
-- event rewrites its run's row anyway, so keeping the id there costs nothing more; the column
-- has no index, so that rewrite stays heap-only too.
ALTER TABLE stpt.runs ADD COLUMN running_test_id BIGINT;
UPDATE stpt.runs r SET running_test_id = (
    SELECT t.id FROM stpt.tests t
    WHERE t.run_id = r.id AND t.status = 'running' ORDER BY t.seq LIMIT 1
) WHERE r.n_running > 0;
DROP INDEX stpt.tests_running;
