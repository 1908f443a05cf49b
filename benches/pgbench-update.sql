-- One single-row UPDATE per transaction (autocommit): PostgreSQL's single-row update rate.
-- pgbench -h 127.0.0.1 -U postgres -n -c 16 -j 2 -T 20 -f benches/pgbench-update.sql stpt_bench_pgbench
\set aid random(1, 100000 * :scale)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
