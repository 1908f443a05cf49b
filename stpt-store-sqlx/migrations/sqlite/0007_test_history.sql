-- History across runs. A test's identity is its scenario's file with its own; its key is 64
-- bits of SHA-256 over the four strings (stpt_core::history::TestKey), computed by stpt and
-- stored with every test, so a history read is an index lookup. Rows from before this
-- migration get their key when the store first opens (a backfill in batches).
ALTER TABLE stpt_tests ADD COLUMN identity_key BIGINT;
-- The test's machine (its run's, which never changes), so that a history on one machine is
-- one index range, never a walk over every machine's results.
ALTER TABLE stpt_tests ADD COLUMN machine_id BIGINT;
UPDATE stpt_tests SET machine_id = (SELECT r.machine_id FROM stpt_runs r WHERE r.id = stpt_tests.run_id);
-- An identity's results, newest (highest id) first; also finds rows still to backfill.
CREATE INDEX stpt_tests_by_identity ON stpt_tests (identity_key, id);
-- The same on one machine.
CREATE INDEX stpt_tests_by_identity_machine ON stpt_tests (identity_key, machine_id, id);

-- Each identity once, with its lowercased text for search.
CREATE TABLE stpt_test_identities (
    identity_key  BIGINT PRIMARY KEY,
    scenario_path TEXT NOT NULL,
    scenario_name TEXT NOT NULL,
    file_path     TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    search_text   TEXT NOT NULL
);

-- Each identity's latest outcomes on a machine (P/F, oldest first) with their flips and
-- failures, kept incrementally as tests finish (stpt_core::history::FlakyWindow).
CREATE TABLE stpt_flaky (
    machine_id   BIGINT  NOT NULL,
    identity_key BIGINT  NOT NULL,
    outcomes     TEXT    NOT NULL,
    flips        INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    PRIMARY KEY (machine_id, identity_key)
);
CREATE INDEX stpt_flaky_by_flips ON stpt_flaky (flips);

-- A machine's runs of one master scenario: the previous run, the matrix's latest runs.
CREATE INDEX stpt_runs_by_master ON stpt_runs (file_name, file_path, machine_id, id);
