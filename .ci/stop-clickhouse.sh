#!/usr/bin/env bash
# Stop the server .ci/setup-clickhouse.sh started (its own process group only) and wait for it.
set -uo pipefail
: "${CI_TMP:?CI_TMP must be set (run through .ci/run)}"
CH_DIR="$CI_TMP/clickhouse"
[ -f "$CH_DIR/launcher.pid" ] || exit 0
PID=$(cat "$CH_DIR/launcher.pid")
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null
  for _ in $(seq 1 60); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$PID" 2>/dev/null; then
    echo "clickhouse-server did not stop in 30 s; killing it" >&2
    kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null
  fi
fi
rm -f "$CH_DIR/launcher.pid"
