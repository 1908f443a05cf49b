"""The seed runner library's data model, with the same names and shapes, reporting through
:mod:`stpt_runner.client` (tokens, the spool, ``/api/v1``) instead of bare ``requests``.

``RUN_DATA.last_status`` is what a test case script sets to report its result, as before.
"""

import atexit
import logging
import random
import threading
from datetime import datetime

from . import client

log = logging.getLogger("stpt_runner")

CANCELLED = "cancelled"
RUNNING = "running"
WAITING = "waiting"
UNKNOWN = "unknown"
FAILED = "failed"
ERROR = "error"
WARNING = "warning"
PASSED = "passed"

#: The statuses ``RunData.get_random_finished_status`` picks from, as the seed's.
STATUS_FINISHED = [FAILED, ERROR, WARNING, PASSED]

_reporter = None
_reporter_lock = threading.Lock()


def get_reporter():
    """The process's :class:`~stpt_runner.client.Reporter`, made on first use from the
    environment (``STPT_URL``, ``STPT_TOKEN``, ``STPT_MACHINE``, ``STPT_SPOOL``)."""
    global _reporter
    with _reporter_lock:
        if _reporter is None:
            _reporter = client.Reporter(client.Settings())
            atexit.register(_close_reporter)
        return _reporter


def set_reporter(reporter):
    """Uses ``reporter`` from now on (tests, or a runner that configures its own)."""
    global _reporter
    with _reporter_lock:
        _reporter = reporter


def _close_reporter():
    reporter = _reporter
    if reporter is not None:
        reporter.close()


def machine_name():
    return get_reporter().settings.machine


class RunData(object):
    """What the runner knows about the current run; ``RUN_DATA`` is the one instance."""

    def __init__(self):
        self._dry_run_active = False
        self.dry_run_data = None
        self.wet_run_data = None
        self.is_running = False
        self.last_status = None
        # The last plan spooled by a dry run, and which of its tests have started: a wet
        # run's test is the first not yet started test with its path and name, in plan order,
        # as the server matches them.
        self.plan_id = None
        self._plan_tests = []
        self._started = set()

    @property
    def dry_run(self):
        return self._dry_run_active

    @dry_run.setter
    def dry_run(self, state):
        if state:
            self.dry_run_data = DryRunData()
        self._dry_run_active = state

    @staticmethod
    def get_random_finished_status():
        return random.choice(STATUS_FINISHED)

    def remember_plan(self, plan_id, dry_run_data):
        self.plan_id = plan_id
        self._started = set()
        self._plan_tests = []
        master = dry_run_data.master_scenario
        for s, scenario in enumerate(master.scenarios if master else []):
            for t, test in enumerate(scenario.tests):
                self._plan_tests.append((s, t, test.file_path, test.file_name))

    def claim_planned_test(self, file_path, file_name):
        """``(scenario, test)`` of the next planned test with this path and name, or None."""
        for s, t, path, name in self._plan_tests:
            if (s, t) not in self._started and path == file_path and name == file_name:
                self._started.add((s, t))
                return s, t
        return None


RUN_DATA = RunData()


class DryRunData(object):
    """The plan collected by a dry run."""

    def __init__(self):
        self.machine_name = machine_name()
        self.timestamp = datetime.now()
        self.master_scenario = None

    def add_script(self, script_object):
        if isinstance(script_object, MasterScenarioData):
            self.master_scenario = script_object
        elif isinstance(script_object, ScenarioData):
            self.master_scenario.scenarios.append(script_object)
        elif isinstance(script_object, TestCaseData):
            if not self.master_scenario.scenarios:
                raise TypeError("test case %s is run outside any scenario" % script_object)
            self.master_scenario.scenarios[-1].tests.append(script_object)
        else:
            raise TypeError("Unknown script type")

    def convert_to_dict(self):
        return {
            "machine_name": self.machine_name,
            "timestamp": str(self.timestamp),
            "master_scenario": self.master_scenario.convert_to_dict(),
        }

    def toJSON(self):  # noqa: N802 - the seed's name
        import json

        return json.dumps(self.convert_to_dict(), sort_keys=True, indent=4)


class ScriptData(object):
    def __init__(self, file_path, file_name, script):
        self.file_path = file_path
        self.file_name = file_name
        self.script = script

    def convert_to_dict(self):
        return {"file_path": self.file_path, "file_name": self.file_name, "script": self.script}

    def __str__(self):
        return self.file_name


class MasterScenarioData(ScriptData):
    def __init__(self, file_path, file_name, script):
        self.scenarios = []
        ScriptData.__init__(self, file_path, file_name, script)

    def convert_to_dict(self):
        data = ScriptData.convert_to_dict(self)
        # As the seed: an empty list is sent as null (the server accepts both).
        data["scenarios"] = [s.convert_to_dict() for s in self.scenarios] or None
        return data


class ScenarioData(ScriptData):
    def __init__(self, file_path, file_name, script):
        self.tests = []
        ScriptData.__init__(self, file_path, file_name, script)

    def convert_to_dict(self):
        data = ScriptData.convert_to_dict(self)
        data["tests"] = [t.convert_to_dict() for t in self.tests] or None
        return data


class TestCaseData(ScriptData):
    pass


class WetRunData(ScriptData):
    """One test case being run: sends its start and its stop."""

    def __init__(self, file_path, file_name):
        self.machine_name = machine_name()
        self.file_path = file_path
        self.file_name = file_name
        self.script = None
        self._slot = RUN_DATA.claim_planned_test(file_path, file_name)
        self._plan_id = RUN_DATA.plan_id if self._slot is not None else None

    def convert_to_dict(self):
        return {
            "machine_name": self.machine_name,
            "file_path": self.file_path,
            "file_name": self.file_name,
        }

    def get_wet_start_dict(self):
        data = self.convert_to_dict()
        data["timestamp_start"] = str(datetime.now())
        return data

    def get_wet_stop_dict(self, status):
        data = self.convert_to_dict()
        data["status"] = status
        data["timestamp_stop"] = str(datetime.now())
        return data

    def send_start(self):
        reporter = get_reporter()
        named = (self.file_path, self.file_name)
        if self._slot is None:
            reporter.start(None, None, None, named=named)
        else:
            reporter.start(self._plan_id, self._slot[0], self._slot[1], named=named)

    def send_stop(self, status):
        if status not in client.FINISHED_STATUSES:
            # The seed sent this as it was and the server refused it, leaving the test
            # running forever; stop it as unknown instead, and say so.
            log.error("stpt: test %s/%s finished with RUN_DATA.last_status = %r, which is not "
                      "one of %s; reporting it as unknown", self.file_path, self.file_name,
                      status, ", ".join(client.FINISHED_STATUSES))
            status = UNKNOWN
        reporter = get_reporter()
        named = (self.file_path, self.file_name)
        if self._slot is None:
            reporter.stop(None, None, None, status, named=named)
        else:
            reporter.stop(self._plan_id, self._slot[0], self._slot[1], status, named=named)

    def __str__(self):
        return self.file_name
