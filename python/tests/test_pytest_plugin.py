"""The pytest plugin driving a small real suite against a real stpt-server."""

import os
import textwrap

from conftest import run_python

SUITE = {
    "test_mixed.py": '''\
        import pytest


        @pytest.fixture
        def broken():
            raise RuntimeError("the fixture broke")


        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("the teardown broke")


        def test_pass():
            assert 1 + 1 == 2


        def test_fail():
            assert 1 + 1 == 3


        def test_setup_error(broken):
            pass


        def test_teardown_error(bad_teardown):
            pass


        @pytest.mark.skip(reason="not on this rig")
        def test_skip():
            pass


        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert False


        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            assert n
        ''',
    "sub/test_other.py": '''\
        class TestDoor:
            def test_open(self):
                pass

            def test_close(self):
                pass
        ''',
}


def make_suite(root, extra=None):
    files = dict(SUITE)
    files.update(extra or {})
    for name, text in files.items():
        path = os.path.join(str(root), name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "w") as out:
            out.write(textwrap.dedent(text))
    return root


def pytest_run(server, tmp_path, machine, *args):
    suite = make_suite(tmp_path / "suite", {"test_stop.py": STOP} if "stop" in machine else None)
    return run_python(
        ["-m", "pytest", "-p", "no:cacheprovider", "--stpt-url", server.url,
         "--stpt-machine", machine, "--stpt-spool", str(tmp_path / "spool.journal"),
         "-p", "no:randomly"] + list(args),
        {}, cwd=suite)


STOP = '''\
    def test_interrupted():
        raise KeyboardInterrupt


    def test_never_run():
        pass
    '''


def test_outcomes_become_statuses(server, tmp_path):
    code, output = pytest_run(server, tmp_path, "pytest-rig", "test_mixed.py", "sub")
    assert code == 1, output  # a failure: pytest's own exit code is kept
    assert "stpt: the session is reported to" in output, output
    run = server.latest_run("pytest-rig")
    assert server.tests(run) == [
        ("test_mixed.py", "test_mixed.py", "test_pass", "passed"),
        ("test_mixed.py", "test_mixed.py", "test_fail", "failed"),
        ("test_mixed.py", "test_mixed.py", "test_setup_error", "error"),
        ("test_mixed.py", "test_mixed.py", "test_teardown_error", "error"),
        ("test_mixed.py", "test_mixed.py", "test_skip", "unknown"),
        ("test_mixed.py", "test_mixed.py", "test_xfail", "warning"),
        ("test_mixed.py", "test_mixed.py", "test_param[1]", "passed"),
        ("test_mixed.py", "test_mixed.py", "test_param[2]", "passed"),
        ("test_other.py", "sub/test_other.py::TestDoor", "test_open", "passed"),
        ("test_other.py", "sub/test_other.py::TestDoor", "test_close", "passed"),
    ]
    assert run["scenarios"][1]["file"]["file_path"] == "sub"
    assert run["summary"]["status"] == "unknown"  # skipped outranks failed, as the SPEC orders
    test_id = run["scenarios"][0]["tests"][0]["id"]
    assert "def test_pass" in server.get("/api/v1/tests/%d" % test_id)["script"]


def test_stops_say_how_tests_ended(server, tmp_path):
    code, output = pytest_run(server, tmp_path, "pytest-said", "test_mixed.py")
    assert code == 1, output
    run = server.latest_run("pytest-said")
    said = {}
    for test in run["scenarios"][0]["tests"]:
        item = server.get("/api/v1/tests/%d" % test["id"])
        said[item["file"]["file_name"]] = (item.get("message"), item.get("details"))
    message, details = said["test_fail"]
    assert message.startswith("assert") and "\n" not in message, message
    assert "def test_fail" in details and details.rstrip().endswith("AssertionError"), details
    message, details = said["test_setup_error"]
    assert "the fixture broke" in message, message
    assert "RuntimeError" in details, details
    assert said["test_skip"] == ("Skipped: not on this rig", None)
    assert said["test_xfail"] == ("xfail: known bug", None)
    assert said["test_pass"] == (None, None)


def test_exitfirst_closes_the_tests_that_did_not_run(server, tmp_path):
    code, output = pytest_run(server, tmp_path, "pytest-x", "-x", "test_mixed.py")
    assert code == 1, output
    run = server.latest_run("pytest-x")
    statuses = [status for *_, status in server.tests(run)]
    assert statuses[:2] == ["passed", "failed"]
    assert statuses[2:] == ["unknown"] * 6  # closed at the end, none left waiting
    assert run["summary"]["timestamp_stop"] is not None


def test_an_interrupted_session_cancels_the_run(server, tmp_path):
    code, output = pytest_run(server, tmp_path, "pytest-stop", "test_stop.py")
    assert code == 2, output
    run = server.latest_run("pytest-stop")
    assert [status for *_, status in server.tests(run)] == ["cancelled", "cancelled"]
    assert run["summary"]["status"] == "cancelled"


def test_without_a_url_the_plugin_is_off(tmp_path):
    suite = make_suite(tmp_path / "suite")
    code, output = run_python(["-m", "pytest", "-p", "no:cacheprovider", "sub"], {}, cwd=suite)
    assert code == 0, output
    assert "stpt:" not in output


def test_a_junit_report_of_pytest_uploads_through_the_command_line(server, tmp_path):
    suite = make_suite(tmp_path / "suite")
    report = str(tmp_path / "report.xml")
    code, output = run_python(
        ["-m", "pytest", "-p", "no:cacheprovider", "--junitxml", report, "test_mixed.py"],
        {}, cwd=suite)
    assert code == 1, output
    token = server.create_token("ci")
    code, output = run_python(
        ["-m", "stpt_runner", "junit", report, "--machine", "ci-pytest"],
        {"STPT_URL": server.url, "STPT_TOKEN": token}, cwd=tmp_path)
    assert code == 0, output
    assert "8 tests in 1 scenarios" in output, output
    run = server.latest_run("ci-pytest")
    assert [status for *_, status in server.tests(run)] == [
        "passed", "failed", "error", "error", "unknown", "warning", "passed", "passed"]
    failed = server.get("/api/v1/tests/%d" % run["scenarios"][0]["tests"][1]["id"])
    assert failed["message"].startswith("assert"), failed
    assert "def test_fail" in failed["details"], failed


def test_a_refused_junit_upload_says_why(server, tmp_path):
    report = tmp_path / "report.xml"
    report.write_text("<testsuite><testcase name='a'>")
    code, output = run_python(
        ["-m", "stpt_runner", "junit", str(report), "--machine", "ci"],
        {"STPT_URL": server.url}, cwd=tmp_path)
    assert code == 1
    assert "malformed_xml" in output and "ends before" in output, output
