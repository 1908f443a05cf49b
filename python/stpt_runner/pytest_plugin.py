"""A pytest plugin reporting the session to stpt, on with ``--stpt-url URL`` (or ``STPT_URL``).

The collected items are the plan: the session is the master scenario, each module a
scenario, each test (each parametrization) a test. Each test is started when pytest starts
it and stopped, once its teardown is done, with:

* ``passed`` when setup, call and teardown passed;
* ``failed`` when the test's call failed (a strict ``xpass`` too);
* ``error`` when setup or teardown failed (a fixture broke, not the check);
* ``warning`` for an ``xfail`` (expected failure) or a non-strict ``xpass``: known,
  not clean;
* ``unknown`` when skipped. Not ``cancelled``: stopping one test as ``cancelled`` cancels
  the whole run, and ``unknown`` is stpt's "finished without a known result".

At the end of the session no test is left waiting or running. A test can only be stopped
once started, so each test that never ran (``-x``, ``--maxfail``, a crash) is started and at
once stopped as ``unknown``. An interrupted session (Ctrl-C) is cancelled: one test is
stopped as ``cancelled``, which cancels every test of the run that has not finished.

A stop says how the test ended when pytest does: the one-line message of the report that
decided its status (the failed assertion, the exception, the skip or xfail reason) and the
tail of that report's ``longrepr`` (the traceback), which the test's stpt page shows.

Events go through the spool (see :mod:`stpt_runner.client`): a session goes on when the
server is away, and what could not be sent is sent by the next session.
"""

import inspect
import logging
import os

from .client import Reporter, Settings, fit_details

log = logging.getLogger("stpt_runner")

#: Longest script sent per item, in characters (the server's body limit is for a whole plan).
MAX_SCRIPT_CHARS = 200000
MAX_NAME_CHARS = 256
MAX_PATH_CHARS = 1024

_RANK = {"passed": 0, "warning": 1, "unknown": 2, "error": 3, "failed": 4}


def pytest_addoption(parser):
    group = parser.getgroup("stpt", "report the session to an stpt server")
    group.addoption("--stpt-url", default=None,
                    help="report to this stpt server (default: $STPT_URL; off without either). "
                    "The runner token is read from $STPT_TOKEN.")
    group.addoption("--stpt-machine", default=None,
                    help="the machine to report as (default: $STPT_MACHINE, else the host name)")
    group.addoption("--stpt-spool", default=None,
                    help="the spool file of unsent events (default: $STPT_SPOOL, else one per "
                    "machine under ~/.local/state/stpt-runner/)")


def pytest_configure(config):
    url = config.getoption("stpt_url") or os.environ.get("STPT_URL")
    if not url or hasattr(config, "workerinput"):  # xdist workers: the controller reports
        return
    settings = Settings(url=url, machine=config.getoption("stpt_machine"),
                        spool=config.getoption("stpt_spool"))
    config.pluginmanager.register(SessionReporter(config, settings), "stpt-session-reporter")


def _fit(text, limit):
    text = text if text.strip() else "."
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _read(path):
    try:
        with open(path) as source:
            return source.read(MAX_SCRIPT_CHARS)
    except (IOError, OSError, UnicodeDecodeError):
        return None


def _source_of(item):
    function = getattr(item, "function", None)
    if function is None:
        return None
    try:
        return inspect.getsource(function)[:MAX_SCRIPT_CHARS]
    except (IOError, OSError, TypeError):
        return None


def _said(report):
    """The one-line message and the longrepr text of a report that is not a plain pass."""
    if getattr(report, "wasxfail", None) is not None and not report.failed:
        reason = report.wasxfail or ""
        return "xfail" + (": " + reason if reason else ""), None
    longrepr = report.longrepr
    if longrepr is None:
        return None, None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2]), None
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    text = getattr(report, "longreprtext", None) or str(longrepr)
    lines = (crash or text).strip().splitlines()
    message = lines[0] if lines else None
    if crash is None:
        # No crash line (a collection error, a plugin's own repr): its last line says most.
        message = text.strip().splitlines()[-1] if text.strip() else None
    return message, text or None


class SessionReporter(object):
    def __init__(self, config, settings):
        self.config = config
        self.settings = settings
        self.reporter = None
        self.plan_id = None
        self.slots = {}  # nodeid -> (scenario index, test index)
        self.order = []  # nodeids in plan order
        self.outcomes = {}  # nodeid -> status so far
        self.said = {}  # nodeid -> (message, details) of the report that decided the status
        self.started = set()
        self.stopped = set()

    # -- the plan --------------------------------------------------------------------------

    def pytest_collection_finish(self, session):
        if not session.items:
            return
        # `rootpath` and `item.path` since pytest 7; `rootdir` and `fspath` before.
        rootdir = str(getattr(self.config, "rootpath", None) or self.config.rootdir)
        scenarios = []
        by_module = {}
        for item in session.items:
            module_path = str(getattr(item, "path", None) or item.fspath)
            relative = os.path.relpath(module_path, rootdir)
            if module_path not in by_module:
                by_module[module_path] = len(scenarios)
                scenarios.append({
                    "file_path": _fit(os.path.dirname(relative), MAX_PATH_CHARS),
                    "file_name": _fit(os.path.basename(relative), MAX_NAME_CHARS),
                    "script": _read(module_path),
                    "tests": [],
                })
            scenario = by_module[module_path]
            tests = scenarios[scenario]["tests"]
            # The test's place in its module: `tests/test_x.py` or `tests/test_x.py::Class`.
            place = item.nodeid.rsplit("::", 1)[0]
            self.slots[item.nodeid] = (scenario, len(tests))
            self.order.append(item.nodeid)
            tests.append({
                "file_path": _fit(place, MAX_PATH_CHARS),
                "file_name": _fit(item.name, MAX_NAME_CHARS),
                "script": _source_of(item),
            })
        args = " ".join(self.config.invocation_params.args) if hasattr(
            self.config, "invocation_params") else ""
        master = {
            "file_path": _fit(rootdir, MAX_PATH_CHARS),
            "file_name": _fit("pytest " + args if args else "pytest", MAX_NAME_CHARS),
            "script": "pytest " + args,
            "scenarios": scenarios,
        }
        try:
            self.reporter = Reporter(self.settings)
        except Exception as error:  # a locked or unwritable spool must not stop the tests
            log.error("stpt: not reporting this session: %s", error)
            self._warn("stpt: not reporting this session: %s" % error)
            return
        self.plan_id = self.reporter.plan(master)

    # -- each test -------------------------------------------------------------------------

    def pytest_runtest_logstart(self, nodeid, location):
        slot = self.slots.get(nodeid)
        if self.reporter is None or slot is None or nodeid in self.started:
            return
        self.started.add(nodeid)
        self.reporter.start(self.plan_id, slot[0], slot[1])

    def pytest_runtest_logreport(self, report):
        if report.nodeid not in self.slots:
            return
        status = None
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                status = "warning" if xfail else "passed"
            elif report.failed:
                status = "failed"
            elif report.skipped:
                status = "warning" if xfail else "unknown"
        elif report.failed:  # setup or teardown: the test's fixtures, not its check
            status = "error"
        elif report.skipped:  # skipped in setup (a skip mark, a skipif)
            status = "warning" if xfail else "unknown"
        if status is not None:
            current = self.outcomes.get(report.nodeid)
            if current is None or _RANK[status] > _RANK[current]:
                self.outcomes[report.nodeid] = status
                self.said[report.nodeid] = _said(report) if status != "passed" else (None, None)

    def pytest_runtest_logfinish(self, nodeid, location):
        self._stop(nodeid, self.outcomes.get(nodeid, "unknown"))

    def _stop(self, nodeid, status):
        slot = self.slots.get(nodeid)
        if self.reporter is None or slot is None or nodeid in self.stopped:
            return
        if nodeid not in self.started:
            self.started.add(nodeid)
            self.reporter.start(self.plan_id, slot[0], slot[1])
        self.stopped.add(nodeid)
        message, details = self.said.get(nodeid, (None, None))
        # The end of a traceback says where it failed: keep the tail.
        self.reporter.stop(self.plan_id, slot[0], slot[1], status, message=message,
                           details=fit_details(details, keep_head=False))

    # -- the end ---------------------------------------------------------------------------

    def pytest_sessionfinish(self, session, exitstatus):
        if self.reporter is None:
            return
        interrupted = int(exitstatus) == 2  # pytest.ExitCode.INTERRUPTED
        running = [n for n in self.order if n in self.started and n not in self.stopped]
        waiting = [n for n in self.order if n not in self.started]
        if interrupted and (running or waiting):
            # Ctrl-C: the operator cancelled the run; one cancelled test cancels the rest.
            self._stop((running or waiting)[0], "cancelled")
        else:
            for nodeid in running + waiting:
                self._stop(nodeid, "unknown")
        self.sent_all = self.reporter.close()

    def pytest_terminal_summary(self, terminalreporter):
        if self.reporter is None:
            return
        if getattr(self, "sent_all", False):
            terminalreporter.write_line("stpt: the session is reported to %s as machine %s"
                                        % (self.settings.url, self.settings.machine))
        else:
            terminalreporter.write_line(
                "stpt: %s could not take every event yet; the rest waits in %s for the next "
                "session" % (self.settings.url, self.reporter.spool.path), yellow=True)

    def _warn(self, message):
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(message, red=True)
