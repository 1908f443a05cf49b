#!/usr/bin/env bash
# Runs stpt-loadgen against a release stpt-server for every store (memory, SQLite,
# PostgreSQL) and bus (in-process, Redis) at M = 1, 16, 64, plus the bare-handler ceiling.
# Prints one markdown row per run (see BENCHMARKS.md).
#
#   cargo build --release -p stpt-server -p stpt-benches
#   benches/loadgen-matrix.sh          # TARGET=<dir> for another CARGO_TARGET_DIR
#
# Needs PostgreSQL at $PG (trust auth) and Redis at $REDIS; scratch databases and files are
# created and removed. Extra loadgen flags (e.g. --ws) come from $LOADGEN_FLAGS.
set -euo pipefail
TARGET=${TARGET:-target}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379}
PORT=${PORT:-18080}
STORES=${STORES:-"memory sqlite postgres"}
BUSES=${BUSES:-"inprocess redis"}
MACHINES=${MACHINES:-"1 16 64"}
FLAGS=${LOADGEN_FLAGS-"--ws"}
SERVER="$TARGET/release/stpt-server"
LOADGEN="$TARGET/release/stpt-loadgen"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# Tests per machine (S x T) by M, so each run posts 10,000 to 26,000 events.
shape() {
  case $1 in
    1) echo "-s 10 -t 500" ;;
    16) echo "-s 10 -t 60" ;;
    *) echo "-s 5 -t 40" ;;
  esac
}

for store in $STORES; do
  for bus in $BUSES; do
    case $store in
      memory) url=memory ;;
      sqlite) url="sqlite://$SCRATCH/bench-$bus.sqlite3" ;;
      postgres)
        db="stpt_bench_loadgen_$bus"
        psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
        url="$PG/$db" ;;
    esac
    extra=()
    if [ "$bus" = redis ]; then extra=(--redis-url "$REDIS" --redis-prefix "stpt-bench-$$"); fi
    "$SERVER" --bind "127.0.0.1:$PORT" --database-url "$url" --log warn "${extra[@]}" &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    for m in $MACHINES; do
      # shellcheck disable=SC2046,SC2086
      "$LOADGEN" --url "http://127.0.0.1:$PORT" -m "$m" $(shape "$m") --max-seconds 30 \
        --label "$store, $bus" $FLAGS || true
      echo
    done
    kill "$server"; wait "$server" || true
    if [ "$store" = postgres ]; then psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; fi
  done
done
