"""The seed-shaped rig, changed by one import, against a real stpt-server."""

import os
import textwrap

from conftest import run_python

RUN_PY = '''\
#!/usr/bin/env python3
from stpt_runner.actions import *  # the seed's rigs: from test_runner.actions import *
from test_runner.settings import *


if __name__ == '__main__':
    run_scenario_master(SCENARIO_MASTER, dry_run=True)
    run_scenario_master(SCENARIO_MASTER, dry_run=False)
'''

SETTINGS_PY = '''\
import os

RANDOM_MODE = False
BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_CASES_DIR = os.path.join(BASE_DIR, "test_cases")
SCENARIOS_DIR = os.path.join(TEST_CASES_DIR, "scenarios")
SCENARIO_MASTER = os.path.join(SCENARIOS_DIR, "scenario_master.py")
'''

MASTER_PY = '''\
import os
from run import SCENARIOS_DIR, run_test_scenario

run_test_scenario(os.path.join(SCENARIOS_DIR, "scenario_01_lamp.py"))
run_test_scenario(os.path.join(SCENARIOS_DIR, "scenario_02_door.py"))
'''

LAMP_PY = '''\
import os
from run import TEST_CASES_DIR, run_test_case

FEATURE_DIR = os.path.join(TEST_CASES_DIR, "01_lamp")

run_test_case(os.path.join(FEATURE_DIR, "01_01_test_lamp.py"))
run_test_case(os.path.join(FEATURE_DIR, "01_02_test_lamp.py"))
run_test_case(os.path.join(FEATURE_DIR, "01_01_test_lamp.py"))
'''

DOOR_PY = '''\
import os
from run import TEST_CASES_DIR, run_test_case

FEATURE_DIR = os.path.join(TEST_CASES_DIR, "02_door")

run_test_case(os.path.join(FEATURE_DIR, "02_01_test_door.py"))
run_test_case(os.path.join(FEATURE_DIR, "02_02_test_door.py"))
run_test_case(os.path.join(FEATURE_DIR, "02_03_test_door.py"))
'''

# Each test case sets RUN_DATA.last_status, as the seed's do; the runs counter makes the
# repeated lamp test pass the first time and warn the second.
TESTS = {
    "01_lamp/01_01_test_lamp.py": '''\
from run import RANDOM_MODE
import builtins
builtins.lamp_runs = getattr(builtins, "lamp_runs", 0) + 1
print("Turn on lamp")
RUN_DATA.last_status = "passed" if builtins.lamp_runs == 1 else "warning"
''',
    "01_lamp/01_02_test_lamp.py": 'RUN_DATA.last_status = "failed"\n',
    "02_door/02_01_test_door.py": 'raise RuntimeError("the door is stuck")\n',
    "02_door/02_02_test_door.py": 'print("forgot to set a status")\n',
    "02_door/02_03_test_door.py": 'RUN_DATA.last_status = RUN_DATA.get_random_finished_status()\n',
}


def make_rig(root):
    files = {
        "run.py": RUN_PY,
        "test_runner/__init__.py": "",
        "test_runner/settings.py": SETTINGS_PY,
        "test_cases/scenarios/scenario_master.py": MASTER_PY,
        "test_cases/scenarios/scenario_01_lamp.py": LAMP_PY,
        "test_cases/scenarios/scenario_02_door.py": DOOR_PY,
    }
    for name, text in TESTS.items():
        files["test_cases/" + name] = text
    for name, text in files.items():
        path = os.path.join(str(root), name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "w") as out:
            out.write(textwrap.dedent(text))
    return root


def test_a_seed_rig_with_one_changed_import_reports_its_run(server, tmp_path):
    rig = make_rig(tmp_path / "rig")
    token = server.create_token("bench", "bench-7")
    code, output = run_python(["run.py"], {
        "STPT_URL": server.url,
        "STPT_TOKEN": token,
        "STPT_MACHINE": "bench-7",
        "STPT_SPOOL": str(tmp_path / "spool.journal"),
    }, cwd=rig)
    assert code == 0, output
    assert "START  - scenario_master.py" in output
    assert "the door is stuck" in output  # the raising test is logged...
    run = server.latest_run("bench-7")
    statuses = [(name, status) for _, _, name, status in server.tests(run)]
    assert statuses[:5] == [
        ("01_01_test_lamp.py", "passed"),
        ("01_02_test_lamp.py", "failed"),
        ("01_01_test_lamp.py", "warning"),  # a file listed twice runs in plan order
        ("02_01_test_door.py", "error"),  # ... and reported as error; the run went on
        ("02_02_test_door.py", "unknown"),  # no status set
    ]
    assert statuses[5][1] in ("passed", "warning", "failed", "error")
    assert run["master"]["file_name"] == "scenario_master.py"
    assert [s["file"]["file_name"] for s in run["scenarios"]] == [
        "scenario_01_lamp.py", "scenario_02_door.py"]
    assert run["summary"]["status"] == "unknown"  # the SPEC ranks unknown above failed
    assert run["summary"]["timestamp_stop"] is not None
    assert len(server.runs("bench-7")) == 1


def test_a_token_bound_to_another_machine_is_refused_and_logged(server, tmp_path):
    rig = make_rig(tmp_path / "rig")
    token = server.create_token("other", "bench-8")
    code, output = run_python(["run.py"], {
        "STPT_URL": server.url,
        "STPT_TOKEN": token,
        "STPT_MACHINE": "bench-7",
        "STPT_SPOOL": str(tmp_path / "spool.journal"),
        "STPT_FLUSH_TIMEOUT": "10",
    }, cwd=rig)
    # The rig runs to its end; each refusal is said clearly, and nothing is stored.
    assert code == 0, output
    assert "refused plan" in output and "forbidden" in output, output
    assert server.machine("bench-7") is None


def test_the_command_line_runs_a_master_scenario(server, tmp_path):
    rig = make_rig(tmp_path / "rig")
    code, output = run_python(
        ["-m", "stpt_runner", "run", "test_cases/scenarios/scenario_master.py"],
        {"STPT_URL": server.url, "STPT_MACHINE": "bench-9",
         "STPT_SPOOL": str(tmp_path / "spool.journal")},
        cwd=rig)
    assert code == 0, output
    run = server.latest_run("bench-9")
    assert run["summary"]["statistics"]["tests"] == 6
    assert all(status not in ("waiting", "running") for *_, status in server.tests(run))
