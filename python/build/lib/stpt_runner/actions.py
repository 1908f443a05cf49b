"""Drop-in for the seed runner library's ``test_runner.actions``: a rig replaces
``from test_runner.actions import *`` with ``from stpt_runner.actions import *`` and keeps
its scripts. The functions, their arguments and ``RUN_DATA.last_status`` are the seed's;
what changes is the reporting: runner tokens, an on-disk spool that survives the server (or
the runner) going away, and stpt's ``/api/v1``.

Two differences a rig can notice, both fixes: a test case that raises is reported as
``error`` (and logged) and the run goes on, where the seed stopped with the test left
running; a test that leaves ``RUN_DATA.last_status`` unset or invalid is reported as
``unknown``, where the seed's server refused the stop.
"""

import logging
import os
import traceback

from .models import (  # noqa: F401 - re-exported, as the seed's module did
    RUN_DATA,
    DryRunData,
    MasterScenarioData,
    ScenarioData,
    TestCaseData,
    WetRunData,
    get_reporter,
)

__all__ = [
    "RUN_DATA",
    "run_script",
    "run_test_case",
    "run_test_scenario",
    "run_scenario_master",
]

log = logging.getLogger("stpt_runner")


def run_script(script_path, type_=None):
    """Runs one script: ``"master"``, ``"scenario_parent"`` or ``"test_case"``. In a dry
    run it is recorded into the plan (test cases are not executed); in a wet run a test
    case is executed between a start and a stop."""
    file_path, file_name = os.path.split(script_path)
    print("START  - %s" % file_name)
    with open(script_path) as script_file:
        script_data = script_file.read()
    script_compiled = compile(script_data, os.path.basename(script_path), "exec")
    if RUN_DATA.dry_run:
        kinds = {
            "master": MasterScenarioData,
            "scenario_parent": ScenarioData,
            "test_case": TestCaseData,
        }
        if type_ not in kinds:
            raise ValueError("unknown script type %r for %s" % (type_, script_path))
        RUN_DATA.dry_run_data.add_script(kinds[type_](file_path, file_name, script_data))

    if type_ in ("scenario_parent", "master"):
        # The scripts see this module's names (RUN_DATA, run_test_case, ...), as the seed's did.
        exec(script_compiled)
    elif not RUN_DATA.dry_run and type_ == "test_case":
        RUN_DATA.wet_run_data = WetRunData(file_path=file_path, file_name=file_name)
        RUN_DATA.last_status = None
        RUN_DATA.wet_run_data.send_start()
        try:
            exec(script_compiled)
        except KeyboardInterrupt:
            # The operator stopped the rig: cancelling the test cancels the run.
            RUN_DATA.wet_run_data.send_stop(status="cancelled")
            get_reporter().flush(5)
            raise
        except Exception:
            log.error("stpt: test case %s raised; reporting it as error\n%s",
                      script_path, traceback.format_exc())
            RUN_DATA.last_status = "error"
        RUN_DATA.wet_run_data.send_stop(status=RUN_DATA.last_status)

    print("FINISH - %s" % file_name)


def run_test_case(test_case_path):
    run_script(test_case_path, "test_case")


def run_test_scenario(test_scenario_path):
    run_script(test_scenario_path, "scenario_parent")


def run_scenario_master(scenario_master_path, dry_run=False):
    """A dry run spools the plan; a wet run executes the test cases, and at its end waits
    (up to ``STPT_FLUSH_TIMEOUT`` seconds) for the server to have every event."""
    RUN_DATA.is_running = True
    RUN_DATA.dry_run = dry_run
    try:
        run_script(scenario_master_path, "master")
        reporter = get_reporter()
        if dry_run:
            plan = RUN_DATA.dry_run_data.convert_to_dict()
            plan_id = reporter.plan(plan["master_scenario"], timestamp=None)
            RUN_DATA.remember_plan(plan_id, RUN_DATA.dry_run_data)
        else:
            reporter.flush(reporter.settings.flush_timeout)
    finally:
        RUN_DATA.is_running = False
