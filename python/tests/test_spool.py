"""The spool on its own: order, durability across a torn write, the size bound."""

import json
import os

import pytest

from stpt_runner.spool import Spool, SpoolError, SpoolFull


def entry(number, **extra):
    value = {"id": "e%d" % number, "kind": "test_start", "timestamp": "t%d" % number}
    value.update(extra)
    return value


def ids(spool):
    return [e["id"] for e in spool.entries()]


def test_entries_come_back_in_order_after_reopening(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path)
    for number in range(5):
        spool.append(entry(number))
    spool.done("e1")
    spool.done("e3")
    spool.close()
    reopened = Spool(path)
    assert ids(reopened) == ["e0", "e2", "e4"]
    reopened.close()


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path)
    spool.append(entry(0))
    spool.append(entry(1))
    spool.close()
    # The runner was killed in the middle of writing the third record.
    whole = json.dumps({"add": entry(2)}).encode()
    with open(path, "ab") as journal:
        journal.write(whole[: len(whole) // 2])
    reopened = Spool(path)
    assert ids(reopened) == ["e0", "e1"]
    # The torn bytes are gone, so the next record starts on a line of its own.
    reopened.append(entry(3))
    reopened.close()
    again = Spool(path)
    assert ids(again) == ["e0", "e1", "e3"]
    again.close()


def test_an_unreadable_line_in_the_middle_is_skipped(tmp_path):
    path = str(tmp_path / "spool.journal")
    with open(path, "wb") as journal:
        journal.write((json.dumps({"add": entry(0)}) + "\n").encode())
        journal.write(b"\x00\x00garbage\n")
        journal.write((json.dumps({"add": entry(1)}) + "\n").encode())
    spool = Spool(path)
    assert ids(spool) == ["e0", "e1"]
    spool.close()


def test_the_size_bound_refuses_with_a_clear_message_and_frees_on_acknowledgement(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path, max_bytes=400)
    appended = 0
    with pytest.raises(SpoolFull) as full:
        while True:
            spool.append(entry(appended, padding="x" * 40))
            appended += 1
    message = str(full.value)
    assert "full" in message and "STPT_SPOOL_MAX_BYTES" in message and path in message
    assert 0 < appended < 10
    assert spool.pending_bytes <= 400
    spool.done("e0")
    spool.append(entry(100, padding="x" * 40))
    assert ids(spool)[-1] == "e100"
    spool.close()


def test_compaction_keeps_pending_entries_and_needed_plan_ids(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path)
    spool.append({"id": "p1", "kind": "plan", "body": {}})
    spool.done("p1", test_ids=[[10, 11], [12]])
    for number in range(2000):
        spool.append(entry(number, plan="p1", scenario=0, test=0, padding="y" * 50))
    for number in range(1990):
        spool.done("e%d" % number)
    size = os.path.getsize(path)
    assert size < 64 * 1024 + 4096, "the journal is compacted as acknowledgements come in"
    spool.close()
    reopened = Spool(path)
    assert ids(reopened) == ["e%d" % n for n in range(1990, 2000)]
    assert reopened.plan_test_ids("p1") == (True, [[10, 11], [12]])
    reopened.close()


def test_a_rejected_plan_is_remembered(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path)
    spool.append({"id": "p1", "kind": "plan", "body": {}})
    spool.done("p1", rejected=True)
    spool.close()
    reopened = Spool(path)
    assert reopened.plan_test_ids("p1") == (True, None)
    assert reopened.plan_test_ids("p2") == (False, None)
    reopened.close()


def test_a_second_runner_on_the_same_spool_is_refused(tmp_path):
    path = str(tmp_path / "spool.journal")
    first = Spool(path)
    with pytest.raises(SpoolError) as refused:
        Spool(path)
    assert "in use by another runner" in str(refused.value)
    first.close()
    Spool(path).close()


def test_a_drained_spool_is_small_once_closed(tmp_path):
    path = str(tmp_path / "spool.journal")
    spool = Spool(path)
    spool.append({"id": "p1", "kind": "plan", "body": {}})
    spool.done("p1", test_ids=[[1]])
    for number in range(50):
        spool.append(entry(number))
        spool.done("e%d" % number)
    spool.close()
    with open(path) as journal:
        assert journal.read().splitlines() == ['{"done":"p1","test_ids":[[1]]}']
