#!/usr/bin/env python3
"""The disk's own single-writer flush rate, as SQLite sees it: the ceiling for the SQLite
store at one runner (issue 15 asks for 80 % of it).

One connection, WAL, `synchronous = FULL` (as the store), `BEGIN IMMEDIATE; UPDATE one row;
COMMIT` in a loop for a few seconds; then a bare `write` + `fdatasync` of 4 KiB in a loop.
Run it on the file system the store's file lives on:

    python3 benches/sqlite-flush-probe.py [DIRECTORY] [SECONDS]
"""

import os
import sqlite3
import sys
import tempfile
import time


def sqlite_commits_per_second(directory: str, seconds: float) -> float:
    path = os.path.join(directory, "probe.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute("INSERT INTO t VALUES (1, 0)")
    commits = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE t SET n = n + 1 WHERE id = 1")
        conn.execute("COMMIT")
        commits += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return commits / elapsed


def fdatasyncs_per_second(directory: str, seconds: float) -> float:
    path = os.path.join(directory, "probe.bin")
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    syncs = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            syncs += 1
    finally:
        os.close(fd)
    return syncs / (time.perf_counter() - started)


def main() -> None:
    parent = sys.argv[1] if len(sys.argv) > 1 else None
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    with tempfile.TemporaryDirectory(dir=parent) as directory:
        commits = sqlite_commits_per_second(directory, seconds)
        syncs = fdatasyncs_per_second(directory, seconds)
    print(f"SQLite WAL, synchronous=FULL, one-row commits: {commits:,.0f}/s")
    print(f"4 KiB write + fdatasync: {syncs:,.0f}/s")


if __name__ == "__main__":
    main()
