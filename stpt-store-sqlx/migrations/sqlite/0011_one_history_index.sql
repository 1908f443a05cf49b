-- One index serves both histories of a test identity, in place of two: newest first across
-- machines is a walk of (identity_key, id); on one machine, the same walk skips other
-- machines' entries by the machine id in the entry itself, without reading their rows. Every
-- planned test inserts an entry into each identity index, at a place that its key's hash
-- makes random, so a second one nearly doubled that cost of each plan.
CREATE INDEX stpt_tests_by_identity_newest ON stpt_tests (identity_key, id, machine_id);
DROP INDEX stpt_tests_by_identity;
DROP INDEX stpt_tests_by_identity_machine;
