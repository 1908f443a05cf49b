-- stpt schema, SQLite. Every table is prefixed `stpt_` (the migration bookkeeping too), so a
-- host application's own tables in the same file never collide. Timestamps are TEXT in one
-- fixed-width RFC 3339 UTC form with microseconds: `2026-11-24T13:00:00.123456Z`.

-- Each distinct script text once, addressed by its SHA-256.
CREATE TABLE stpt_scripts (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE,
    body TEXT  NOT NULL
);

CREATE TABLE stpt_machines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    -- machine_key(name); BINARY collation (the default): listed in code-point order.
    name_key      TEXT NOT NULL UNIQUE,
    latest_run_id INTEGER REFERENCES stpt_runs (id),
    last_seen     TEXT
);

CREATE TABLE stpt_runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id      BIGINT NOT NULL REFERENCES stpt_machines (id),
    planned_at      TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    script_id       BIGINT REFERENCES stpt_scripts (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled')),
    scenario_count  BIGINT NOT NULL,
    n_waiting       BIGINT NOT NULL,
    n_running       BIGINT NOT NULL,
    n_passed        BIGINT NOT NULL,
    n_warning       BIGINT NOT NULL,
    n_failed        BIGINT NOT NULL,
    n_error         BIGINT NOT NULL,
    n_unknown       BIGINT NOT NULL,
    n_cancelled     BIGINT NOT NULL,
    timestamp_start TEXT,
    timestamp_stop  TEXT
);

-- A machine's runs, newest received first.
CREATE INDEX stpt_runs_by_machine ON stpt_runs (machine_id, id DESC);
-- A machine's ongoing runs.
CREATE INDEX stpt_runs_ongoing ON stpt_runs (machine_id, id DESC) WHERE status IN ('waiting', 'running');

CREATE TABLE stpt_scenarios (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          BIGINT NOT NULL REFERENCES stpt_runs (id),
    seq             BIGINT NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    script_id       BIGINT REFERENCES stpt_scripts (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled')),
    n_waiting       BIGINT NOT NULL,
    n_running       BIGINT NOT NULL,
    n_passed        BIGINT NOT NULL,
    n_warning       BIGINT NOT NULL,
    n_failed        BIGINT NOT NULL,
    n_error         BIGINT NOT NULL,
    n_unknown       BIGINT NOT NULL,
    n_cancelled     BIGINT NOT NULL,
    timestamp_start TEXT,
    timestamp_stop  TEXT,
    UNIQUE (run_id, seq)
);

CREATE TABLE stpt_tests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          BIGINT NOT NULL REFERENCES stpt_runs (id),
    scenario_id     BIGINT NOT NULL REFERENCES stpt_scenarios (id),
    -- plan order within the whole run
    seq             BIGINT NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    -- 64 bits of SHA-256(file_path, file_name): an index key of fixed size, however long
    -- the path and name are
    file_key        BIGINT NOT NULL,
    script_id       BIGINT REFERENCES stpt_scripts (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled')),
    timestamp_start TEXT,
    timestamp_stop  TEXT,
    UNIQUE (run_id, seq)
);

CREATE INDEX stpt_tests_by_scenario ON stpt_tests (scenario_id);
-- test_start: the first waiting test of a path and name, in plan order.
CREATE INDEX stpt_tests_waiting ON stpt_tests (run_id, file_key, seq) WHERE status = 'waiting';
-- The running test of a run.
CREATE INDEX stpt_tests_running ON stpt_tests (run_id, seq) WHERE status = 'running';
-- Closing a run's ongoing tests at once.
CREATE INDEX stpt_tests_ongoing ON stpt_tests (run_id) WHERE status IN ('waiting', 'running');

-- Client event ids already applied, per machine: a retry is answered from here (idempotence).
CREATE TABLE stpt_events (
    machine_id  INTEGER NOT NULL REFERENCES stpt_machines (id),
    event_id    TEXT NOT NULL,
    -- the event's receipt as JSON; NULL for a plan, whose receipt is rebuilt from its run
    receipt     TEXT,
    new_run_id  INTEGER REFERENCES stpt_runs (id),
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (machine_id, event_id)
);
