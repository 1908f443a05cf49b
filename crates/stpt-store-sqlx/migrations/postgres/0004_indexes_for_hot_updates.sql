-- Every event rewrites a test's row and its run's row. The store reads an ongoing run's tests
-- from its memory, never by status; and a run's status flips between waiting and running all
-- along, while its stop time is set once. Indexes that do not depend on those columns let the
-- rewrites be heap-only (HOT) updates that touch no index, given room on the row's page: hence
-- the tests' fill factor.
DROP INDEX stpt.tests_waiting;
DROP INDEX stpt.tests_running;
DROP INDEX stpt.tests_ongoing;
ALTER TABLE stpt.tests SET (fillfactor = 80);
DROP INDEX stpt.runs_ongoing;
-- A machine's unfinished runs (an ongoing run has no stop time yet).
CREATE INDEX runs_unfinished ON stpt.runs (machine_id, id DESC) WHERE timestamp_stop IS NULL;
