#!/usr/bin/env bash
# The main job, as far as it exists today: installs what is missing, builds in release mode, starts a
# local source MariaDB (binlog ROW, FULL image) and a ZooKeeper, runs a small write workload and shows
# the binlog it produces. canal-server, which turns that binlog into Canal entries, is being built
# (see README "Status"); this script will start it as soon as it exists. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== building (release)"
cargo build --release --locked -p cdc-tests --bin cdc-sandbox

work=$(mktemp -d /tmp/cdc-quickstart-XXXXXX)
fifo="$work/stdin"
mkfifo "$fifo"
cleanup() {
  # Closing the sandbox's stdin makes it kill MariaDB and ZooKeeper and exit.
  exec 3>&- 2>/dev/null || true
  if [ -n "${sandbox_pid:-}" ]; then
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting MariaDB and ZooKeeper (target/release/cdc-sandbox)"
target/release/cdc-sandbox <"$fifo" >"$work/sandbox.out" 2>"$work/sandbox.err" &
sandbox_pid=$!
exec 3>"$fifo"
for _ in $(seq 1 600); do
  grep -q '^ready' "$work/sandbox.out" 2>/dev/null && break
  if ! kill -0 "$sandbox_pid" 2>/dev/null; then
    echo "cdc-sandbox failed:" >&2; cat "$work/sandbox.err" >&2; exit 1
  fi
  sleep 0.2
done
grep -q '^ready' "$work/sandbox.out" || { echo "cdc-sandbox did not become ready" >&2; exit 1; }
cat "$work/sandbox.out"
addr=$(awk '/^mariadb /{print $2}' "$work/sandbox.out")
port=${addr##*:}
zk=$(awk '/^zookeeper /{print $2}' "$work/sandbox.out")
sql() { mariadb --protocol=TCP -h127.0.0.1 -P"$port" -uroot "$@"; }

echo "== write workload on MariaDB $addr"
sql -e "SHOW MASTER STATUS\G" | sed 's/^/   /'
sql <<'SQL'
CREATE DATABASE shop;
CREATE TABLE shop.orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(40),
  amount DECIMAL(10,2), status ENUM('new','paid','shipped'), created DATETIME(3));
INSERT INTO shop.orders (customer, amount, status, created) VALUES
  ('alice', 12.50, 'new', NOW(3)), ('bob', 7.00, 'new', NOW(3)), ('carol', 99.99, 'new', NOW(3));
UPDATE shop.orders SET status='paid' WHERE customer='alice';
DELETE FROM shop.orders WHERE customer='bob';
SQL
sql -e "SHOW MASTER STATUS\G" | sed 's/^/   /'
echo "== the row events in the binlog (mariadb-binlog --verbose)"
file=$(sql -N -e "SHOW MASTER STATUS" | awk '{print $1}')
mariadb-binlog --read-from-remote-server --protocol=TCP -h127.0.0.1 -P"$port" -uroot \
  --base64-output=decode-rows --verbose "$file" | grep -E '^### ' | sed 's/^/   /'

cat <<EOF2

== done
ZooKeeper was serving at $zk. Coming next (see README "Status"): canal-server reading this binlog as
a replica and serving Canal entries, two servers in active/standby through ZooKeeper, and
canal-client tail printing each row change as a flat-message JSON line.
By hand: target/release/cdc-sandbox starts the same MariaDB + ZooKeeper and prints their addresses;
close its standard input (Ctrl-D) or press Ctrl-C to stop both.
EOF2
