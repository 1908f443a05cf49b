-- History across runs. A test's identity is its scenario's file with its own; its key is 64
-- bits of SHA-256 over the four strings (stpt_core::history::TestKey), computed by stpt and
-- stored with every test, so a history read is an index lookup. Rows from before this
-- migration get their key when the store first opens (a backfill in batches).
ALTER TABLE stpt.tests ADD COLUMN identity_key BIGINT;
-- The test's machine (its run's, which never changes), so that a history on one machine is
-- one index range, never a walk over every machine's results.
ALTER TABLE stpt.tests ADD COLUMN machine_id BIGINT;
UPDATE stpt.tests SET machine_id = (SELECT r.machine_id FROM stpt.runs r WHERE r.id = stpt.tests.run_id);
-- An identity's results, newest (highest id) first; also finds rows still to backfill.
CREATE INDEX tests_by_identity ON stpt.tests (identity_key, id);
-- The same on one machine.
CREATE INDEX tests_by_identity_machine ON stpt.tests (identity_key, machine_id, id);

-- Each identity once, with its lowercased text for search.
CREATE TABLE stpt.test_identities (
    identity_key  BIGINT PRIMARY KEY,
    scenario_path TEXT NOT NULL,
    scenario_name TEXT NOT NULL,
    file_path     TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    search_text   TEXT NOT NULL
);

-- Each identity's latest outcomes on a machine (P/F, oldest first) with their flips and
-- failures, kept incrementally as tests finish (stpt_core::history::FlakyWindow).
CREATE TABLE stpt.flaky (
    machine_id   BIGINT  NOT NULL,
    identity_key BIGINT  NOT NULL,
    outcomes     TEXT    NOT NULL,
    flips        BIGINT  NOT NULL,
    failures     BIGINT  NOT NULL,
    PRIMARY KEY (machine_id, identity_key)
);
CREATE INDEX flaky_by_flips ON stpt.flaky (flips);

-- A machine's runs of one master scenario: the previous run, the matrix's latest runs.
CREATE INDEX runs_by_master ON stpt.runs (file_name, file_path, machine_id, id);
