"""A client of stpt's ``/api/v1`` that never loses an event and never blocks testing.

:class:`Reporter` appends every event to the :class:`~stpt_runner.spool.Spool` first, then a
background thread sends the spool in order: a plan by ``POST /api/v1/plans``, test events in
``POST /api/v1/events`` batches. Each event carries a client event id (the plan's as its
``Idempotency-Key``, each test event's as its ``event_id``), so a resend after a lost answer
is applied once. While the server is unreachable or answers ``429``/``5xx`` the thread backs
off (exponentially, with jitter) and the runner goes on testing.

Events address tests by plan-local index (``plan``, ``scenario``, ``test``): the plan's
answer holds every test's id, and the index is resolved to that id when the event is sent,
so events can be spooled before their plan is acknowledged. Events of a plan that was never
made here (a seed runner's test without a dry run) address the test by machine, path and
file name instead, as the seed protocol does.
"""

import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

try:
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen
except ImportError:  # pragma: no cover - Python 2 is not supported
    raise

from .spool import DEFAULT_MAX_BYTES, Spool, SpoolFull

log = logging.getLogger("stpt_runner")

#: The statuses a test may finish with.
FINISHED_STATUSES = ("passed", "warning", "failed", "error", "unknown", "cancelled")

#: Events per ``/api/v1/events`` batch (the server takes at most 1000).
BATCH_SIZE = 200

#: The server's bounds on what a stop says about how a test ended (``stpt_core``'s
#: ``MAX_FAILURE_MESSAGE_CHARS`` and ``MAX_FAILURE_DETAILS_BYTES``); it refuses longer texts.
MAX_MESSAGE_CHARS = 1000
MAX_DETAILS_BYTES = 64 * 1024

USER_AGENT = "stpt-runner/0.1"

#: Sent while replaying the spool: how many events are still queued after the request.
BACKLOG_HEADER = "Stpt-Backlog"


def now():
    """The current time as RFC 3339 in UTC, as the runner's timestamp of an event."""
    return datetime.now(timezone.utc).isoformat()


def new_event_id():
    return uuid.uuid4().hex


def fit_message(message):
    """A failure message within the server's bound: NULs shown as U+FFFD, a longer one cut
    with a trailing ``…``."""
    if message is None:
        return None
    message = message.replace("\0", "\ufffd")
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "\u2026"


def fit_details(details, keep_head=True):
    """Failure details within the server's bound (in bytes of UTF-8): NULs shown as U+FFFD;
    a longer text keeps its beginning (a quarter, unless ``keep_head`` is false) and its end
    around a line saying how much was cut, as the Rust client does."""
    if details is None:
        return None
    details = details.replace("\0", "\ufffd")
    data = details.encode("utf-8")
    if len(data) <= MAX_DETAILS_BYTES:
        return details
    keep = MAX_DETAILS_BYTES - 80  # room for the marker line
    head = data[: keep // 4 if keep_head else 0].decode("utf-8", "ignore")
    tail = data[len(data) - (keep - len(head.encode("utf-8"))):].decode("utf-8", "ignore")
    cut = len(data) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    marker = "[\u2026 cut by stpt: %d bytes \u2026]" % cut
    return (head + "\n" if head else "") + marker + "\n" + tail


class Settings(object):
    """Where to report: from the arguments, else the environment.

    ``STPT_URL`` (the server, default ``http://127.0.0.1:8000``), ``STPT_TOKEN`` (a runner
    token), ``STPT_MACHINE`` (default: this host's name), ``STPT_SPOOL`` (the journal file,
    default under ``$XDG_STATE_HOME/stpt-runner/``), ``STPT_SPOOL_MAX_BYTES`` (default 64 MiB),
    ``STPT_FLUSH_TIMEOUT`` (seconds to wait for the server at the end of a run, default 30).
    """

    def __init__(self, url=None, token=None, machine=None, spool=None, max_bytes=None,
                 flush_timeout=None, environ=None):
        env = os.environ if environ is None else environ
        self.url = (url or env.get("STPT_URL") or "http://127.0.0.1:8000").rstrip("/")
        self.token = token or env.get("STPT_TOKEN") or None
        self.machine = machine or env.get("STPT_MACHINE") or socket.gethostname()
        self.spool = spool or env.get("STPT_SPOOL") or default_spool_path(self.machine, env)
        self.max_bytes = int(max_bytes or env.get("STPT_SPOOL_MAX_BYTES") or DEFAULT_MAX_BYTES)
        self.flush_timeout = float(
            flush_timeout if flush_timeout is not None else env.get("STPT_FLUSH_TIMEOUT", 30)
        )


def default_spool_path(machine, env):
    state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", machine) or "machine"
    return os.path.join(state, "stpt-runner", safe + ".journal")


class Transient(Exception):
    """The server is unreachable or busy: try again later."""

    def __init__(self, message, retry_after=None):
        Exception.__init__(self, message)
        self.retry_after = retry_after


class Answer(object):
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def error_message(self):
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return "%s: %s" % (error.get("code"), error.get("message"))
        return "HTTP %d" % self.status


class Http(object):
    """JSON over ``urllib``; a network failure, ``429`` or ``5xx`` raises :class:`Transient`."""

    def __init__(self, base_url, token=None, timeout=10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def post(self, path, payload=None, headers=None, data=None, content_type="application/json"):
        if data is None:
            data = json.dumps(payload).encode("utf-8")
        request = Request(self.base_url + path, data=data, method="POST")
        request.add_header("Content-Type", content_type)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        return self._send(request)

    def get(self, path):
        request = Request(self.base_url + path, method="GET")
        request.add_header("Accept", "application/json")
        return self._send(request)

    def _send(self, request):
        try:
            response = urlopen(request, timeout=self.timeout)
            status, raw, headers = response.status, response.read(), response.headers
        except HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        except (URLError, OSError, ValueError) as error:
            # ValueError: http.client's answer to a connection cut mid-response.
            raise Transient("cannot reach %s: %s" % (self.base_url, error))
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        if status == 429 or status >= 500:
            answer = Answer(status, body)
            raise Transient(
                "the server answered %d (%s)" % (status, answer.error_message()),
                retry_after=_retry_after(headers),
            )
        return Answer(status, body)


def _retry_after(headers):
    try:
        return float(headers.get("Retry-After")) if headers is not None else None
    except (TypeError, ValueError):
        return None


class Backoff(object):
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... up to ``cap``."""

    def __init__(self, base=0.5, cap=30.0):
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self, at_least=None):
        delay = min(self.cap, self.base * (2 ** self.failures))
        self.failures = min(self.failures + 1, 20)
        delay = random.uniform(delay / 2.0, delay)
        if at_least is not None:
            delay = max(delay, min(at_least, self.cap))
        return delay

    def reset(self):
        self.failures = 0


class Reporter(object):
    """Records a run's events in the spool and sends them in the background.

    ``plan()`` returns a plan id; ``start()`` and ``stop()`` take that id with the test's
    scenario and test index in the plan. Call ``close()`` at the end: it waits up to the
    flush timeout for the server, and whatever is left stays in the spool for the next run.
    """

    def __init__(self, settings=None, spool=None, http=None, backoff=None):
        self.settings = settings or Settings()
        self.spool = spool or Spool(self.settings.spool, self.settings.max_bytes)
        self.http = http or Http(self.settings.url, self.settings.token)
        self.backoff = backoff or Backoff()
        self.rejected = []  # (entry, reason) of permanently refused events, for the caller
        self._condition = threading.Condition()
        self._closing = False
        self._sending = False
        self._last_problem = None
        # Set while sending what the spool kept during an outage (or from an earlier run),
        # until it is empty: those requests carry ``Stpt-Backlog`` so the server shows it.
        self._replaying = len(self.spool) > 0
        if len(self.spool):
            log.info("stpt: %d unsent events from an earlier run are in %s; sending them first",
                     len(self.spool), self.spool.path)
        self._thread = threading.Thread(target=self._run, name="stpt-sender")
        self._thread.daemon = True
        self._thread.start()

    # -- recording -------------------------------------------------------------------------

    def plan(self, master_scenario, timestamp=None):
        """Spools a plan for this machine; ``master_scenario`` is the plan's
        ``master_scenario`` object (file_path, file_name, script, scenarios with tests)."""
        plan_id = new_event_id()
        body = {
            "machine_name": self.settings.machine,
            "timestamp": timestamp or now(),
            "master_scenario": master_scenario,
        }
        self._record({"id": plan_id, "kind": "plan", "body": body})
        return plan_id

    def start(self, plan_id, scenario, test, timestamp=None, named=None):
        return self._record(self._event("test_start", plan_id, scenario, test, timestamp, named))

    def stop(self, plan_id, scenario, test, status, timestamp=None, named=None, message=None,
             details=None):
        """Spools a stop. ``message`` (one line, such as the failed assertion) and ``details``
        (a traceback, a log tail) say how the test ended; they are cut to the server's bounds
        (:func:`fit_message`, :func:`fit_details`) before they are spooled."""
        if status not in FINISHED_STATUSES:
            raise ValueError(
                "a test finishes with one of %s, not %r" % (", ".join(FINISHED_STATUSES), status)
            )
        event = self._event("test_stop", plan_id, scenario, test, timestamp, named)
        event["status"] = status
        if message is not None:
            event["message"] = fit_message(message)
        if details is not None:
            event["details"] = fit_details(details)
        return self._record(event)

    def start_named(self, file_path, file_name, timestamp=None):
        """A start addressed as the seed protocol does: by machine, path and file name."""
        return self.start(None, None, None, timestamp, named=(file_path, file_name))

    def stop_named(self, file_path, file_name, status, timestamp=None, message=None,
                   details=None):
        return self.stop(None, None, None, status, timestamp, named=(file_path, file_name),
                         message=message, details=details)

    def _event(self, kind, plan_id, scenario, test, timestamp, named):
        event = {"id": new_event_id(), "kind": kind, "timestamp": timestamp or now()}
        if plan_id is not None:
            event.update({"plan": plan_id, "scenario": scenario, "test": test})
        if named is not None:
            event["named"] = {
                "machine_name": self.settings.machine,
                "file_path": named[0],
                "file_name": named[1],
            }
        if plan_id is None and named is None:
            raise ValueError("an event needs a plan index or a named test")
        return event

    def _record(self, entry):
        """Spools ``entry``; a full spool is logged as an error and the event is lost, so a
        long test campaign goes on while the server is away."""
        with self._condition:
            try:
                self.spool.append(entry)
            except SpoolFull as error:
                log.error("%s", error)
                return None
            self._condition.notify_all()
        return entry["id"]

    # -- sending ---------------------------------------------------------------------------

    def pending(self):
        with self._condition:
            return len(self.spool)

    def flush(self, timeout=None):
        """Waits until the spool is empty (True) or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.time() + timeout
        with self._condition:
            self._condition.notify_all()
            while len(self.spool) or self._sending:
                remaining = None if deadline is None else deadline - time.time()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(0.2 if remaining is None else min(0.2, remaining))
            return True

    def close(self, timeout=None):
        """Flushes for up to ``timeout`` (default: the flush timeout), then stops sending.
        Returns True when everything was sent."""
        timeout = self.settings.flush_timeout if timeout is None else timeout
        sent = self.flush(timeout)
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join(15)
        with self._condition:
            left = len(self.spool)
            self.spool.close()
        if left:
            log.warning(
                "stpt: %d events could not be sent yet (%s); they stay in %s and are sent by "
                "the next run", left, self._last_problem or "the server did not answer in time",
                self.spool.path,
            )
        return sent and not left

    def _run(self):
        while True:
            with self._condition:
                while not self._closing and not len(self.spool):
                    self._condition.wait()
                if self._closing:
                    return
                self._sending = True
            delay = None
            try:
                self._send_next()
                self.backoff.reset()
                self._last_problem = None
            except Transient as problem:
                self._replaying = True
                if self._last_problem is None:
                    log.warning("stpt: %s; events are kept in %s and retried", problem, self.spool.path)
                self._last_problem = str(problem)
                delay = self.backoff.next_delay(problem.retry_after)
            except Exception:  # never let the sender die: the runner depends on it
                log.exception("stpt: unexpected error while sending; retrying")
                delay = self.backoff.next_delay()
            finally:
                with self._condition:
                    self._sending = False
                    self._condition.notify_all()
            if delay is not None:
                with self._condition:
                    if not self._closing:
                        self._condition.wait(delay)

    def _reject(self, entry, reason, **done):
        log.error("stpt: the server refused %s %s for good, dropping it: %s",
                  entry["kind"], _describe(entry), reason)
        self.rejected.append((entry, reason))
        with self._condition:
            self.spool.done(entry["id"], **done)

    def _send_next(self):
        with self._condition:
            entries = self.spool.entries()
        if not entries:
            return
        head = entries[0]
        if head["kind"] == "plan":
            self._send_plan(head)
            return
        batch = []
        for entry in entries:
            if entry["kind"] == "plan" or len(batch) >= BATCH_SIZE:
                break
            resolved = self._resolve(entry)
            if resolved is None:
                if batch:  # send what is before it first, in order
                    break
                continue
            batch.append((entry, resolved))
        if batch:
            self._send_batch(batch)

    def _backlog_headers(self, sending):
        """While replaying, the ``Stpt-Backlog`` header: events still queued once ``sending``
        more are sent. The replay ends with the request that leaves none."""
        if not self._replaying:
            return {}
        with self._condition:
            left = max(0, len(self.spool) - sending)
        if left == 0:
            self._replaying = False
        return {BACKLOG_HEADER: str(left)}

    def _send_plan(self, entry):
        headers = {"Idempotency-Key": entry["id"]}
        headers.update(self._backlog_headers(1))
        answer = self.http.post("/api/v1/plans", entry["body"], headers)
        if answer.status in (200, 201):
            test_ids = [scenario["test_ids"] for scenario in answer.body["scenarios"]]
            with self._condition:
                self.spool.done(entry["id"], test_ids=test_ids)
        else:
            self._reject(entry, answer.error_message(), rejected=True)

    def _resolve(self, entry):
        """The batch event of ``entry``, or None when it was dropped (its plan refused)."""
        event = {"event_id": entry["id"], "type": entry["kind"], "timestamp": entry["timestamp"]}
        for field in ("status", "message", "details"):
            if field in entry:
                event[field] = entry[field]
        plan_id = entry.get("plan")
        if plan_id is not None:
            known, test_ids = self.spool.plan_test_ids(plan_id)
            if known and test_ids is not None:
                try:
                    event["test_id"] = test_ids[entry["scenario"]][entry["test"]]
                    return event
                except (IndexError, TypeError):
                    self._reject(entry, "the plan has no test at scenario %s, test %s"
                                 % (entry["scenario"], entry["test"]))
                    return None
            if known:
                self._reject(entry, "its plan was refused")
                return None
            if entry.get("named") is None:
                self._reject(entry, "its plan is unknown to this spool")
                return None
        event.update(entry["named"])
        return event

    def _send_batch(self, batch):
        answer = self.http.post("/api/v1/events", {"events": [event for _, event in batch]},
                                self._backlog_headers(len(batch)))
        if answer.status == 200:
            for (entry, _), result in zip(batch, answer.body["results"]):
                if result.get("outcome") == "rejected":
                    error = result.get("error") or {}
                    # The event matched nothing: report it, never block the spool on it.
                    log.warning("stpt: %s %s matched nothing on the server: %s",
                                entry["kind"], _describe(entry), error.get("message"))
                    self.rejected.append((entry, error.get("message")))
                with self._condition:
                    self.spool.done(entry["id"])
            return
        bad = _bad_event_index(answer)
        if answer.status == 400 and bad is not None and bad < len(batch):
            self._reject(batch[bad][0], answer.error_message())
        elif answer.status in (400, 413) and len(batch) > 1:
            # Too large together, or refused without naming the event: one by one, so
            # only the bad one is dropped.
            self._send_batch(batch[:1])
        else:
            # A refusal of the batch as a whole (401, 403, ...): it would refuse them again.
            for entry, _ in batch:
                self._reject(entry, answer.error_message())


def _bad_event_index(answer):
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    field = error.get("field") if isinstance(error, dict) else None
    match = re.match(r"events\[(\d+)\]", field or "")
    return int(match.group(1)) if match else None


def _describe(entry):
    if entry["kind"] == "plan":
        master = entry["body"].get("master_scenario") or {}
        return "of %s" % master.get("file_name")
    if entry.get("named"):
        return "of %s/%s" % (entry["named"]["file_path"], entry["named"]["file_name"])
    return "of test %s.%s" % (entry.get("scenario"), entry.get("test"))
