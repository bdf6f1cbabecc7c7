#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and lints, runs every unit and
# integration test of the workspace against real MariaDB and ZooKeeper processes, then checks that no
# test left a server running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# A one-off build gains nothing from incremental artifacts, and they cost gigabytes of disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free here (a clean test build needs about 2 GB)"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

leftovers() {
  # Servers started by the harness live in directories named cdc-harness-*.
  pgrep -af 'cdc-harness-' | grep -E 'mariadbd|java' || true
}

before=$(leftovers)
if [ -n "$before" ]; then
  echo "warning: harness processes already running before the suite (not ours to judge):"
  echo "$before"
fi

echo "== tests"
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --profile ci || status=$?
else
  cargo test --workspace --locked --no-fail-fast || status=$?
fi

echo "== quickstart (scripts/quickstart.sh with the debug build the tests used)"
if ! QUICKSTART_PROFILE=debug scripts/quickstart.sh >target/quickstart.log 2>&1; then
  echo "FAIL: scripts/quickstart.sh; its output:" >&2
  tail -80 target/quickstart.log >&2
  [ $status -ne 0 ] || status=1
else
  grep -A3 '== checking' target/quickstart.log || true
fi

after=$(leftovers)
if [ -n "$after" ] && [ "$after" != "$before" ]; then
  echo "FAIL: tests left harness processes behind:" >&2
  echo "$after" >&2
  pkill -9 -f 'cdc-harness-' || true
  [ $status -ne 0 ] || status=1
fi
exit $status
