#!/usr/bin/env bash
# quickstart.sh — README command A: set up, build, and run the main job.
#
# For now the main job is the daemon's life cycle: install what a fresh Debian 12
# machine lacks, build the release preset, start `qcoder serve` in the background on a
# private socket (its own runtime and state directories under a temp dir, so a daemon
# you already run is not touched), show `qcoder status`, stop it with `qcoder stop`.
# Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "1/5 installing missing Debian packages (scripts/setup-deps.sh)"
scripts/setup-deps.sh

step "2/5 building the release preset (cmake --preset release; cmake --build --preset release)"
cmake --preset release >/dev/null
cmake --build --preset release
QCODER="$PWD/build/release/daemon/qcoder"

work="$(mktemp -d "${TMPDIR:-/tmp}/qcoder-quickstart.XXXXXX")"
export QCODER_RUNTIME_DIR="$work/run" QCODER_STATE_DIR="$work/state"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step "3/5 starting the daemon in the background: qcoder serve (socket $QCODER_RUNTIME_DIR/qcoder.sock)"
"$QCODER" serve &
daemon_pid=$!
for _ in $(seq 1 100); do
  if "$QCODER" status >/dev/null 2>&1; then break; fi
  kill -0 "$daemon_pid" 2>/dev/null || { echo "quickstart: the daemon exited during start-up" >&2; exit 1; }
  sleep 0.1
done

step "4/5 asking it how it is: qcoder status"
"$QCODER" status

step "5/5 stopping it: qcoder stop"
"$QCODER" stop
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
if [ "$status" -ne 0 ]; then echo "quickstart: the daemon exited with status $status" >&2; exit 1; fi
if [ -e "$QCODER_RUNTIME_DIR/qcoder.sock" ]; then echo "quickstart: the socket was left behind" >&2; exit 1; fi

echo
echo "The daemon's log ($QCODER_STATE_DIR/daemon.log; normally ~/.local/state/qcoder/daemon.log):"
sed 's/^/  /' "$QCODER_STATE_DIR/daemon.log"
printf '\nquickstart: done — the daemon started, answered and shut down cleanly.\n'
echo "The binary is $QCODER; try '$QCODER help'."
