"""Starts the real ``stpt-server`` binary for the tests that need one.

The binary is ``$STPT_SERVER_BIN``, else the workspace's ``target/debug/stpt-server``
(``cargo build -p stpt-server``). Without it these tests skip, unless
``STPT_TEST_INTEGRATION=1`` (CI), where a missing binary is a failure.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

try:
    from urllib.request import Request, urlopen
    from urllib.error import HTTPError, URLError
except ImportError:  # pragma: no cover
    raise

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def server_binary():
    path = os.environ.get("STPT_SERVER_BIN") or os.path.join(REPO, "target", "debug", "stpt-server")
    if not os.path.isfile(path):
        message = "skipped: no stpt-server binary at %s (cargo build -p stpt-server)" % path
        if os.environ.get("STPT_TEST_INTEGRATION") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env():
    """The environment without stpt's settings, so a developer's shell cannot leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STPT_")}


class Server(object):
    """An ``stpt-server`` on loopback; ``start()`` again after ``kill()`` reuses the port."""

    def __init__(self, database_url, port=None):
        self.binary = server_binary()
        self.database_url = database_url
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1:%d" % self.port, "--database-url",
             self.database_url, "--log", "warn"],
            env=clean_env(), stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("stpt-server exited with %s" % self.process.returncode)
            try:
                with urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("stpt-server did not become ready")

    def kill(self):
        """SIGKILL: no graceful shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def cli(self, *args):
        """Runs an administration command (`token create ...`) on this server's database."""
        output = subprocess.check_output(
            [self.binary, "--database-url", self.database_url] + list(args), env=clean_env())
        return output.decode("utf-8")

    def create_token(self, name="rig", *machines):
        args = ["token", "create", name]
        for machine in machines:
            args += ["--machine", machine]
        return self.cli(*args).strip().splitlines()[-1]

    # -- the read API ----------------------------------------------------------------------

    def get(self, path):
        try:
            with urlopen(self.url + path, timeout=10) as answer:
                return json.loads(answer.read().decode("utf-8"))
        except HTTPError as error:
            raise AssertionError("GET %s: %s %s" % (path, error.code, error.read()))

    def machine(self, name):
        for machine in self.get("/api/v1/machines?page_size=100")["items"]:
            if machine["name"].lower() == name.lower():
                return machine
        return None

    def runs(self, name):
        machine = self.machine(name)
        if machine is None:
            return []
        return self.get("/api/v1/machines/%d/runs?page_size=100" % machine["id"])["items"]

    def latest_run(self, name):
        runs = self.runs(name)
        assert runs, "machine %s has no run" % name
        return self.get("/api/v1/runs/%d" % runs[0]["id"])

    def tests(self, run):
        """``[(scenario file, test path, test name, status)]`` in plan order."""
        return [
            (scenario["file"]["file_name"], test["file"]["file_path"], test["file"]["file_name"],
             test["status"])
            for scenario in run["scenarios"] for test in scenario["tests"]
        ]


@pytest.fixture
def server(tmp_path):
    started = Server("sqlite://%s" % (tmp_path / "stpt.sqlite3")).start()
    yield started
    started.stop()


def run_python(args, env, cwd, timeout=120):
    """Runs ``python ARGS`` with ``env`` added to a clean environment; returns (code, output)."""
    full_env = clean_env()
    full_env.update(env)
    process = subprocess.Popen([sys.executable] + list(args), cwd=str(cwd), env=full_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output.decode("utf-8", "replace")
