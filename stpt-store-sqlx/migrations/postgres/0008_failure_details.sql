-- What a test's stop said about how it ended: a short message and a longer text (a
-- traceback, a log tail), bounded by the protocol. NULL: nothing said. Long details are
-- TOASTed, so a row stays narrow for the updates and scans of live runs.
ALTER TABLE stpt.tests ADD COLUMN failure_message TEXT, ADD COLUMN failure_details TEXT;
