"""The sender's decisions, against a scripted server: what is retried, what is dropped."""

from stpt_runner.client import Answer, Backoff, Reporter, Settings, Transient


class ScriptedHttp(object):
    """Answers each post from ``script`` (an Answer, a Transient to raise, or a function of
    the payload), then accepts everything; records what was posted."""

    def __init__(self, script):
        self.script = list(script)
        self.posts = []
        self.next_test_id = 100

    def post(self, path, payload=None, headers=None, **_):
        self.posts.append((path, payload, headers))
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step(payload) if callable(step) else step
        return self.accept(path, payload)

    def accept(self, path, payload):
        if path == "/api/v1/plans":
            scenarios = payload["master_scenario"]["scenarios"]
            answer = {"scenarios": []}
            for scenario in scenarios:
                ids = list(range(self.next_test_id, self.next_test_id + len(scenario["tests"])))
                self.next_test_id += len(ids)
                answer["scenarios"].append({"test_ids": ids})
            return Answer(201, answer)
        return Answer(200, {"results": [{"outcome": "applied"} for _ in payload["events"]]})

    def sent_events(self):
        return [event for path, payload, _ in self.posts if path == "/api/v1/events"
                for event in payload["events"]]


def master(tests):
    return {"file_path": "/rig", "file_name": "master.py", "scenarios": [
        {"file_path": "/rig", "file_name": "s.py", "tests": [
            {"file_path": "/rig", "file_name": "t%d.py" % t} for t in range(tests)]}]}


def reporter(tmp_path, http):
    settings = Settings(url="http://stpt.invalid", machine="rig", environ={},
                        spool=str(tmp_path / "spool.journal"), flush_timeout=10)
    return Reporter(settings, http=http, backoff=Backoff(base=0.01, cap=0.05))


def test_busy_and_unreachable_servers_are_retried_in_order(tmp_path):
    http = ScriptedHttp([
        Transient("cannot reach"),
        Transient("the server answered 503", retry_after=0.01),
        Transient("the server answered 429"),
    ])
    runner = reporter(tmp_path, http)
    plan = runner.plan(master(2))
    for test in range(2):
        runner.start(plan, 0, test)
        runner.stop(plan, 0, test, "passed")
    assert runner.close(10)
    keys = [headers["Idempotency-Key"] for path, _, headers in http.posts if path.endswith("plans")]
    assert len(keys) == 4 and len(set(keys)) == 1, "every retry of the plan carries one key"
    events = http.sent_events()
    assert [(e["type"], e["test_id"]) for e in events] == [
        ("test_start", 100), ("test_stop", 100), ("test_start", 101), ("test_stop", 101)]
    assert len({e["event_id"] for e in events}) == 4
    assert runner.rejected == []


class JudgingHttp(ScriptedHttp):
    """Refuses a batch with ``400`` naming its first event whose timestamp is not a time."""

    def post(self, path, payload=None, headers=None, **_):
        if path == "/api/v1/events":
            for index, event in enumerate(payload["events"]):
                if event["timestamp"] == "not a time":
                    self.posts.append((path, {"events": []}, headers))
                    return Answer(400, {"error": {
                        "code": "invalid_input", "message": "bad timestamp",
                        "field": "events[%d].timestamp" % index}})
        return ScriptedHttp.post(self, path, payload, headers)


def test_an_event_the_server_calls_invalid_is_dropped_and_the_rest_is_sent(tmp_path):
    http = JudgingHttp([])
    runner = reporter(tmp_path, http)
    plan = runner.plan(master(1))
    first = runner.start(plan, 0, 0)
    bad = runner.stop(plan, 0, 0, "failed", timestamp="not a time")
    last = runner.stop(plan, 0, 0, "passed")
    assert runner.close(10)
    assert [(entry["id"], reason) for entry, reason in runner.rejected] == [
        (bad, "invalid_input: bad timestamp")]
    assert [e["event_id"] for e in http.sent_events()] == [first, last]


def test_a_refused_plan_drops_its_events_and_not_the_next_plan(tmp_path):
    http = ScriptedHttp([Answer(403, {"error": {"code": "forbidden", "message": "not yours"}})])
    runner = reporter(tmp_path, http)
    refused = runner.plan(master(1))
    runner.start(refused, 0, 0)
    accepted = runner.plan(master(1))
    runner.start(accepted, 0, 0)
    assert runner.close(10)
    reasons = [reason for _, reason in runner.rejected]
    assert reasons == ["forbidden: not yours", "its plan was refused"]
    assert [e["test_id"] for e in http.sent_events()] == [100]


def test_an_invalid_status_is_refused_before_it_is_spooled(tmp_path):
    runner = reporter(tmp_path, ScriptedHttp([]))
    plan = runner.plan(master(1))
    try:
        runner.stop(plan, 0, 0, "running")
    except ValueError as error:
        assert "not 'running'" in str(error)
    else:
        raise AssertionError("a non-final status was accepted")
    assert runner.close(10)


def test_failure_texts_are_spooled_within_the_server_bounds(tmp_path):
    http = ScriptedHttp([])
    runner = reporter(tmp_path, http)
    plan = runner.plan(master(2))
    runner.start(plan, 0, 0)
    traceback = "Traceback\n" + "  frame\n" * 20000 + "AssertionError: 2 != 3\n"
    runner.stop(plan, 0, 0, "failed", message="x" * 5000, details=traceback)
    runner.start(plan, 0, 1)
    runner.stop(plan, 0, 1, "passed")
    assert runner.close(10)
    failed, passed = [e for e in http.sent_events() if e["type"] == "test_stop"]
    assert len(failed["message"]) == 1000 and failed["message"].endswith("\u2026")
    assert len(failed["details"].encode("utf-8")) <= 64 * 1024
    assert failed["details"].startswith("Traceback\n")
    assert failed["details"].endswith("AssertionError: 2 != 3\n")
    assert "cut by stpt" in failed["details"]
    assert "message" not in passed and "details" not in passed


def test_a_replay_after_an_outage_says_how_much_is_left(tmp_path):
    http = ScriptedHttp([Transient("cannot reach")])
    runner = reporter(tmp_path, http)
    plan = runner.plan(master(3))
    for test in range(2):
        runner.start(plan, 0, test)
        runner.stop(plan, 0, test, "passed")
    assert runner.flush(10)
    runner.start(plan, 0, 2)  # live again: no header
    assert runner.close(10)
    headers = [headers or {} for _, _, headers in http.posts]
    assert "Stpt-Backlog" not in headers[0], "the first try, before any outage"
    said = [h.get("Stpt-Backlog") for h in headers]
    assert "0" in said, headers
    end = said.index("0")  # the replay ends with the request that leaves none
    replay = said[1:end + 1]
    assert None not in replay, headers
    assert [int(left) for left in replay] == sorted((int(left) for left in replay), reverse=True)
    assert said[end + 1:] == [None] * (len(said) - end - 1), "live again: no header"
