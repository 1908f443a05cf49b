-- Every event rewrites a test's row and its run's row. A store reads the ongoing runs it
-- remembers from memory; only a machine that several instances write to in turn is read by
-- query. Indexes on columns an event does not change let most rewrites be heap-only (HOT)
-- updates that touch no index, given room on the row's page: hence the tests' fill factor.
DROP INDEX stpt.tests_waiting;
DROP INDEX stpt.tests_ongoing;
ALTER TABLE stpt.tests SET (fillfactor = 80);
-- test_start read by query: the first waiting test of a path and name, in plan order, among
-- the few tests of that name (no `status` in the index, so it costs no HOT update).
CREATE INDEX tests_by_file ON stpt.tests (run_id, file_key, seq);
-- `tests_running` (on `status`) stays: reading the running test by query must not scan the
-- run; it costs each test's start and stop its HOT update.
DROP INDEX stpt.runs_ongoing;
-- A machine's unfinished runs (an ongoing run has no stop time yet; a run's status flips
-- between waiting and running all along, its stop time is set once).
CREATE INDEX runs_unfinished ON stpt.runs (machine_id, id DESC) WHERE timestamp_stop IS NULL;
