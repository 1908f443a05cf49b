"""The on-disk spool: a journal of events not yet acknowledged by the server.

Every event is appended (and fsynced) before it is sent, and forgotten only once the server
acknowledged it. The journal is JSON lines, one record a line:

* ``{"add": ENTRY}``: an event to send; ``ENTRY["id"]`` is its client event id.
* ``{"done": ID}``: the event ``ID`` was acknowledged (or permanently rejected).
* ``{"done": ID, "test_ids": [[...], ...]}``: the plan ``ID`` was stored; its tests' ids,
  per scenario, for the events that address its tests by plan-local index.
* ``{"done": ID, "rejected": true}``: the plan ``ID`` was refused; its events are dropped.

A runner killed mid-write leaves a torn last line: it is ignored and cut off on reopening.
Acknowledgements are not fsynced: losing one only resends an event, and the server applies
each client event id once.
"""

import json
import logging
import os

try:  # Not on Windows: there a second runner on one spool is not detected.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger("stpt_runner")

#: Default bound of the unsent events, in bytes of journal.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

#: Plans whose test ids are kept after compaction even when no pending event needs them:
#: the runner may still be sending events for the latest ones.
KEEP_RECENT_PLANS = 4


class SpoolError(Exception):
    """The spool cannot be used (locked by another runner, unwritable)."""


class SpoolFull(SpoolError):
    """Appending would exceed the spool's size bound."""


class Spool(object):
    """An append-only journal of pending events, compacted as they are acknowledged.

    ``entries()`` gives the pending events in the order they were appended.
    """

    def __init__(self, path, max_bytes=DEFAULT_MAX_BYTES):
        self.path = os.path.abspath(path)
        self.max_bytes = int(max_bytes)
        if self.max_bytes <= 0:
            raise ValueError("the spool's size bound must be positive, got %r" % max_bytes)
        self._pending = []  # entries, in order
        self._index = {}  # id -> (entry, size of its line)
        self._plan_ids = {}  # plan id -> test ids per scenario, or None if rejected
        self._plan_order = []  # plan ids, oldest first
        self._pending_bytes = 0
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory)
        self._file = open(self.path, "a+b")
        self._lock()
        self._load()

    # -- opening ---------------------------------------------------------------------------

    def _lock(self):
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            self._file.close()
            raise SpoolError(
                "the spool %s is in use by another runner; give each runner its own "
                "(STPT_SPOOL)" % self.path
            )

    def _load(self):
        self._file.seek(0)
        data = self._file.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "stpt spool %s: ignoring a torn last record (%d bytes; the runner was "
                "stopped while writing it)", self.path, len(data) - end
            )
            self._file.truncate(end)
            self._sync()
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
                self._replay(record, len(line) + 1)
            except (ValueError, KeyError, TypeError) as error:
                log.warning("stpt spool %s: skipping unreadable line %d: %s", self.path, number, error)
        self._file.seek(0, os.SEEK_END)

    def _replay(self, record, size):
        if "add" in record:
            entry = record["add"]
            if entry["id"] not in self._index:
                self._remember(entry, size)
        elif "done" in record:
            self._forget(record["done"])
            if "test_ids" in record or record.get("rejected"):
                self._note_plan(record["done"], record.get("test_ids"))
        else:
            raise ValueError("not a spool record")

    # -- reading ---------------------------------------------------------------------------

    def entries(self):
        """The pending entries, oldest first (a copy)."""
        return list(self._pending)

    def __len__(self):
        return len(self._pending)

    @property
    def pending_bytes(self):
        """Bytes of journal the pending entries take: what the size bound counts."""
        return self._pending_bytes

    def plan_test_ids(self, plan_id):
        """``(known, test_ids)``: the stored plan's test ids per scenario, ``None`` when the
        plan was rejected; ``known`` is False when the spool knows nothing of the plan."""
        if plan_id in self._plan_ids:
            return True, self._plan_ids[plan_id]
        return False, None

    def is_pending(self, entry_id):
        return entry_id in self._index

    # -- writing ---------------------------------------------------------------------------

    def append(self, entry):
        """Writes ``entry`` (a dict with a unique ``"id"``) to disk and fsyncs; then it is
        pending. Raises :class:`SpoolFull` past the size bound."""
        line = self._line({"add": entry})
        if self._pending_bytes + len(line) > self.max_bytes:
            raise SpoolFull(
                "the stpt spool %s is full: %d bytes of unsent events, and the bound is %d "
                "(STPT_SPOOL_MAX_BYTES). The server has not acknowledged events for a while: "
                "bring it back, or raise the bound; this event is not recorded"
                % (self.path, self._pending_bytes, self.max_bytes)
            )
        self._write(line, sync=True)
        self._remember(entry, len(line))

    def done(self, entry_id, test_ids=None, rejected=False):
        """Forgets ``entry_id``: acknowledged, or permanently rejected. For a plan, give the
        stored ``test_ids`` (or ``rejected=True``) so its events can be resolved."""
        record = {"done": entry_id}
        if test_ids is not None:
            record["test_ids"] = test_ids
        if rejected:
            record["rejected"] = True
        self._write(self._line(record), sync=False)
        self._forget(entry_id)
        if test_ids is not None or rejected:
            self._note_plan(entry_id, None if rejected else test_ids)
        self._maybe_compact()

    def close(self):
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _line(record):
        return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")

    def _write(self, line, sync):
        self._file.seek(0, os.SEEK_END)
        self._file.write(line)
        self._file.flush()
        if sync:
            self._sync()

    def _sync(self):
        self._file.flush()
        os.fsync(self._file.fileno())

    def _remember(self, entry, size):
        self._pending.append(entry)
        self._index[entry["id"]] = (entry, size)
        self._pending_bytes += size

    def _forget(self, entry_id):
        found = self._index.pop(entry_id, None)
        if found is None:
            return
        entry, size = found
        self._pending.remove(entry)
        self._pending_bytes -= size

    def _note_plan(self, plan_id, test_ids):
        if plan_id not in self._plan_ids:
            self._plan_order.append(plan_id)
        self._plan_ids[plan_id] = test_ids

    def _needed_plans(self):
        needed = set(self._plan_order[-KEEP_RECENT_PLANS:])
        needed.update(entry.get("plan") for entry in self._pending if entry.get("plan"))
        return needed

    def _maybe_compact(self):
        size = self._file.tell()
        if size > max(64 * 1024, 2 * self._pending_bytes + 16 * 1024):
            self.compact()

    def compact(self):
        """Rewrites the journal with only what is still needed, atomically (a crash leaves
        the old journal or the new one, never a mix)."""
        needed = self._needed_plans()
        for plan_id in list(self._plan_order):
            if plan_id not in needed:
                self._plan_order.remove(plan_id)
                del self._plan_ids[plan_id]
        lines = []
        for plan_id in self._plan_order:
            test_ids = self._plan_ids[plan_id]
            if test_ids is None:
                lines.append(self._line({"done": plan_id, "rejected": True}))
            else:
                lines.append(self._line({"done": plan_id, "test_ids": test_ids}))
        lines.extend(self._line({"add": entry}) for entry in self._pending)
        temporary = self.path + ".compacting"
        with open(temporary, "wb") as out:
            out.write(b"".join(lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._sync_directory()
        old = self._file
        self._file = open(self.path, "a+b")
        self._lock()
        old.close()
        self._file.seek(0, os.SEEK_END)

    def _sync_directory(self):
        try:
            descriptor = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        except OSError:  # pragma: no cover - not possible on every platform
            return
        try:
            os.fsync(descriptor)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(descriptor)
