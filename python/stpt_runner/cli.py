"""``python -m stpt_runner``: run a master scenario, or upload a JUnit report."""

import argparse
import logging
import os
import sys

from . import __version__
from .client import Settings


def _run(arguments):
    from . import actions

    master = os.path.abspath(arguments.master)
    if not os.path.isfile(master):
        sys.stderr.write("stpt-runner: no master scenario at %s\n" % master)
        return 2
    # The master's folder is importable, as the seed's rigs expect (`from run import ...`).
    sys.path.insert(0, os.path.dirname(master))
    if not arguments.no_dry_run:
        actions.run_scenario_master(master, dry_run=True)
    actions.run_scenario_master(master, dry_run=False)
    reporter = actions.get_reporter()
    sent = reporter.close()
    return 0 if sent else 3


def _junit(arguments):
    from .junit import UploadError, upload_junit

    settings = Settings(machine=arguments.machine)
    try:
        answer = upload_junit(settings, arguments.report, arguments.machine)
    except (UploadError, IOError, OSError) as error:
        sys.stderr.write("stpt-runner: %s\n" % error)
        return 1
    statuses = ", ".join("%s %s" % (n, s) for s, n in sorted(answer["statuses"].items()))
    print("stored run %s of machine %s: %d tests in %d scenarios (%s)%s" % (
        answer["run_id"], settings.machine, answer["tests"], answer["scenarios"], statuses,
        "; already imported before" if answer.get("replayed") else ""))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m stpt_runner",
        description="Report test runs to an stpt server. Server from STPT_URL, runner token "
        "from STPT_TOKEN, machine from STPT_MACHINE (default: host name), spool file from "
        "STPT_SPOOL.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="dry-run a seed-style master scenario (the plan), "
                              "then run it, reporting every test")
    run.add_argument("master", help="the master scenario script, e.g. scenario_master.py")
    run.add_argument("--no-dry-run", action="store_true",
                     help="skip the dry run: tests are then matched by path and file name "
                     "against the machine's latest plan")
    junit = commands.add_parser("junit", help="upload a JUnit XML report as a finished run")
    junit.add_argument("report", help="the JUnit XML file")
    junit.add_argument("--machine", help="the machine the run belongs to (default: "
                       "STPT_MACHINE, else the host name)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if arguments.verbose else logging.INFO,
                        format="%(levelname)s %(message)s")
    if arguments.command == "run":
        return _run(arguments)
    if arguments.command == "junit":
        return _junit(arguments)
    parser.print_help()
    return 2
