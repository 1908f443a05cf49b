-- stpt schema, PostgreSQL. Everything lives in schema `stpt` (the migration bookkeeping too),
-- so a host application's own tables and migrations in the same database never collide.
CREATE SCHEMA IF NOT EXISTS stpt;

-- Each distinct script text once, addressed by its SHA-256.
CREATE TABLE stpt.scripts (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash BYTEA NOT NULL UNIQUE,
    body TEXT  NOT NULL
);

CREATE TABLE stpt.machines (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL,
    -- machine_key(name); "C" collation: listed in code-point order, as every backend.
    name_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    latest_run_id BIGINT,
    last_seen     TIMESTAMPTZ
);

CREATE TABLE stpt.runs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id      BIGINT NOT NULL REFERENCES stpt.machines (id),
    planned_at      TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    script_id       BIGINT REFERENCES stpt.scripts (id),
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
    timestamp_start TIMESTAMPTZ,
    timestamp_stop  TIMESTAMPTZ
);

ALTER TABLE stpt.machines
    ADD CONSTRAINT machines_latest_run_fk FOREIGN KEY (latest_run_id) REFERENCES stpt.runs (id);

-- A machine's runs, newest received first.
CREATE INDEX runs_by_machine ON stpt.runs (machine_id, id DESC);
-- A machine's ongoing runs.
CREATE INDEX runs_ongoing ON stpt.runs (machine_id, id DESC) WHERE status IN ('waiting', 'running');

CREATE TABLE stpt.scenarios (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          BIGINT NOT NULL REFERENCES stpt.runs (id),
    seq             BIGINT NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    script_id       BIGINT REFERENCES stpt.scripts (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled')),
    n_waiting       BIGINT NOT NULL,
    n_running       BIGINT NOT NULL,
    n_passed        BIGINT NOT NULL,
    n_warning       BIGINT NOT NULL,
    n_failed        BIGINT NOT NULL,
    n_error         BIGINT NOT NULL,
    n_unknown       BIGINT NOT NULL,
    n_cancelled     BIGINT NOT NULL,
    timestamp_start TIMESTAMPTZ,
    timestamp_stop  TIMESTAMPTZ,
    UNIQUE (run_id, seq)
);

CREATE TABLE stpt.tests (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          BIGINT NOT NULL REFERENCES stpt.runs (id),
    scenario_id     BIGINT NOT NULL REFERENCES stpt.scenarios (id),
    -- plan order within the whole run
    seq             BIGINT NOT NULL,
    file_path       TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    -- 64 bits of SHA-256(file_path, file_name): an index key of fixed size, however long
    -- the path and name are
    file_key        BIGINT NOT NULL,
    script_id       BIGINT REFERENCES stpt.scripts (id),
    status          TEXT NOT NULL CHECK (status IN ('waiting', 'running', 'passed', 'warning', 'failed', 'error', 'unknown', 'cancelled')),
    timestamp_start TIMESTAMPTZ,
    timestamp_stop  TIMESTAMPTZ,
    UNIQUE (run_id, seq)
);

CREATE INDEX tests_by_scenario ON stpt.tests (scenario_id);
-- test_start: the first waiting test of a path and name, in plan order.
CREATE INDEX tests_waiting ON stpt.tests (run_id, file_key, seq) WHERE status = 'waiting';
-- The running test of a run.
CREATE INDEX tests_running ON stpt.tests (run_id, seq) WHERE status = 'running';
-- Closing a run's ongoing tests at once.
CREATE INDEX tests_ongoing ON stpt.tests (run_id) WHERE status IN ('waiting', 'running');

-- Client event ids already applied, per machine: a retry is answered from here (idempotence).
CREATE TABLE stpt.events (
    machine_id  BIGINT NOT NULL REFERENCES stpt.machines (id),
    event_id    TEXT NOT NULL,
    -- the event's receipt as JSON; NULL for a plan, whose receipt is rebuilt from its run
    receipt     TEXT,
    new_run_id  BIGINT REFERENCES stpt.runs (id),
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (machine_id, event_id)
);
