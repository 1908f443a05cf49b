-- A run names its running test (the rules keep at most one), so reading the running test by
-- query is a key lookup instead of a walk over the run's tests. Each event rewrites its run's
-- row anyway; the column has no index.
ALTER TABLE stpt_runs ADD COLUMN running_test_id INTEGER;
UPDATE stpt_runs SET running_test_id = (
    SELECT t.id FROM stpt_tests t
    WHERE t.run_id = stpt_runs.id AND t.status = 'running' ORDER BY t.seq LIMIT 1
) WHERE n_running > 0;
