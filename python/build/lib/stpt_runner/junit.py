"""Uploads a JUnit XML report to ``POST /api/v1/imports/junit?machine=NAME``."""

import logging
import time
import uuid

try:
    from urllib.parse import urlencode
except ImportError:  # pragma: no cover
    raise

from .client import Backoff, Http, Transient

log = logging.getLogger("stpt_runner")


class UploadError(Exception):
    """The server refused the report, or could not be reached in time."""


def upload_junit(settings, report_path, machine=None, attempts=6, backoff=None):
    """Sends the report at ``report_path`` as a finished run of ``machine`` (default: the
    settings' machine). Retries while the server is unreachable or busy, with one
    ``Idempotency-Key`` so a retried upload is stored once. Returns the server's answer."""
    with open(report_path, "rb") as report:
        data = report.read()
    machine = machine or settings.machine
    http = Http(settings.url, settings.token, timeout=60.0)
    path = "/api/v1/imports/junit?" + urlencode({"machine": machine})
    key = "junit-" + uuid.uuid4().hex
    backoff = backoff or Backoff(base=1.0, cap=30.0)
    last = None
    for _ in range(max(1, attempts)):
        try:
            answer = http.post(path, data=data, content_type="application/xml",
                               headers={"Idempotency-Key": key})
        except Transient as problem:
            last = problem
            log.warning("stpt: %s; retrying", problem)
            time.sleep(backoff.next_delay(problem.retry_after))
            continue
        if answer.status in (200, 201):
            return answer.body
        raise UploadError("the server refused %s: %s" % (report_path, answer.error_message()))
    raise UploadError("could not upload %s: %s" % (report_path, last))
