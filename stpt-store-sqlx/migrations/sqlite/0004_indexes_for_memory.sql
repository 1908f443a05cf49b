-- Every event rewrites a test's row and its run's row. The store answers an event from its
-- memory of the ongoing runs, so indexes on the columns an event changes were only write
-- cost: each start and stop moved entries of three partial indexes on the test's status and
-- one on the run's. Reads by query (loading a machine into memory, a file another process
-- wrote to) use indexes on columns an event never changes.
DROP INDEX stpt_tests_waiting;
DROP INDEX stpt_tests_running;
DROP INDEX stpt_tests_ongoing;
-- The first waiting test of a path and name, in plan order, among the few tests of that name.
CREATE INDEX stpt_tests_by_file ON stpt_tests (run_id, file_key, seq);
DROP INDEX stpt_runs_ongoing;
-- A machine's unfinished runs (an ongoing run has no stop time yet; a run's status flips
-- between waiting and running all along, its stop time is set once).
CREATE INDEX stpt_runs_unfinished ON stpt_runs (machine_id, id DESC) WHERE timestamp_stop IS NULL;
