-- What a test's stop said about how it ended: a short message and a longer text (a
-- traceback, a log tail), bounded by the protocol. NULL: nothing said.
ALTER TABLE stpt_tests ADD COLUMN failure_message TEXT;
ALTER TABLE stpt_tests ADD COLUMN failure_details TEXT;
