"""The server goes away while the runner posts; every result still arrives once, in order."""

import threading
import time

from conftest import Server, free_port
from stpt_runner.client import Backoff, Reporter, Settings

STATUSES = ["passed", "failed", "warning", "error", "passed", "unknown"]


def plan(scenarios, tests):
    return {
        "file_path": "/rig/scenarios",
        "file_name": "master.py",
        "script": None,
        "scenarios": [
            {
                "file_path": "/rig/scenarios",
                "file_name": "scenario_%d.py" % s,
                "script": "",
                "tests": [
                    {"file_path": "/rig/tests", "file_name": "test_%d_%d.py" % (s, t), "script": None}
                    for t in range(tests)
                ],
            }
            for s in range(scenarios)
        ],
    }


def reporter_for(url, spool, machine):
    return Reporter(
        Settings(url=url, machine=machine, spool=spool, flush_timeout=60, environ={}),
        backoff=Backoff(base=0.05, cap=0.5),
    )


def test_a_server_killed_and_restarted_mid_run_gets_every_result_once_in_order(tmp_path):
    database = "sqlite://%s" % (tmp_path / "stpt.sqlite3")
    server = Server(database).start()
    token = server.create_token("bench", "bench-1")
    settings = Settings(url=server.url, token=token, machine="bench-1",
                        spool=str(tmp_path / "spool.journal"), flush_timeout=60, environ={})
    reporter = Reporter(settings, backoff=Backoff(base=0.05, cap=0.5))
    scenarios, tests = 3, 20
    plan_id = reporter.plan(plan(scenarios, tests))
    expected = []
    number = 0
    for s in range(scenarios):
        for t in range(tests):
            if number == 15:
                server.kill()  # SIGKILL, while events are in flight
            if number == 40:
                pending_while_down = reporter.pending()
                server.start()  # the same port and SQLite file
            reporter.start(plan_id, s, t)
            time.sleep(0.01)
            status = STATUSES[number % len(STATUSES)]
            reporter.stop(plan_id, s, t, status)
            expected.append(("scenario_%d.py" % s, "/rig/tests", "test_%d_%d.py" % (s, t), status))
            number += 1
    try:
        assert pending_while_down >= 2 * 25, "the events of the outage waited in the spool"
        assert reporter.close(timeout=60), "the spool drains once the server is back"
        assert reporter.rejected == [], "no event was refused or applied twice"
        runs = server.runs("bench-1")
        assert len(runs) == 1, "the plan is stored once"
        run = server.latest_run("bench-1")
        assert server.tests(run) == expected
        starts = [test["timestamp_start"] for scenario in run["scenarios"]
                  for test in scenario["tests"]]
        stops = [test["timestamp_stop"] for scenario in run["scenarios"]
                 for test in scenario["tests"]]
        # In order: each test started after the one before it stopped (RFC 3339 in UTC
        # sorts as text).
        for before, after in zip(stops, starts[1:]):
            assert before <= after
    finally:
        server.stop()


def test_a_runner_restarted_with_a_full_spool_sends_it_first(tmp_path):
    spool = str(tmp_path / "spool.journal")
    # The server is not there: the first runner spools, gives up waiting, and exits.
    offline = reporter_for("http://127.0.0.1:%d" % free_port(), spool, "bench-2")
    plan_id = offline.plan(plan(1, 3))
    for t in range(3):
        offline.start(plan_id, 0, t)
        offline.stop(plan_id, 0, t, "passed")
    assert not offline.close(timeout=0.5)
    server = Server("sqlite://%s" % (tmp_path / "stpt.sqlite3")).start()
    try:
        again = reporter_for(server.url, spool, "bench-2")
        assert again.pending() == 7
        assert again.close(timeout=30)
        run = server.latest_run("bench-2")
        assert [status for *_, status in server.tests(run)] == ["passed"] * 3
    finally:
        server.stop()


def test_a_refused_event_is_dropped_and_the_rest_goes_on(server, tmp_path):
    reporter = reporter_for(server.url, str(tmp_path / "spool.journal"), "bench-3")
    plan_id = reporter.plan(plan(1, 2))
    reporter.stop(plan_id, 0, 0, "passed")  # never started: matches nothing
    reporter.start(plan_id, 0, 1)
    reporter.stop(plan_id, 0, 1, "passed")
    reporter.stop(plan_id, 0, 7, "passed")  # no such test in the plan
    assert reporter.close(timeout=30)
    reasons = [reason for _, reason in reporter.rejected]
    assert len(reasons) == 2, reasons
    assert any("not waiting" in r or "not running" in r or "no test" not in r for r in reasons)
    assert any("has no test at scenario 0, test 7" in r for r in reasons), reasons
    run = server.latest_run("bench-3")
    assert [status for *_, status in server.tests(run)] == ["waiting", "passed"]


def test_events_are_sent_while_the_runner_keeps_testing(server, tmp_path):
    reporter = reporter_for(server.url, str(tmp_path / "spool.journal"), "bench-4")
    plan_id = reporter.plan(plan(1, 1))
    reporter.start(plan_id, 0, 0)
    deadline = time.time() + 10
    while time.time() < deadline and server.machine("bench-4") is None:
        time.sleep(0.05)
    run = server.latest_run("bench-4")
    while time.time() < deadline and server.tests(run)[0][3] != "running":
        time.sleep(0.05)
        run = server.latest_run("bench-4")
    assert server.tests(run)[0][3] == "running", "live, before the run ends"
    reporter.stop(plan_id, 0, 0, "passed")
    assert reporter.close(timeout=10)
    assert threading.active_count() >= 1
