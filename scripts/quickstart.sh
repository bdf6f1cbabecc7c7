#!/usr/bin/env bash
# The main job, end to end on one machine:
#   1. installs what is missing and builds in release mode;
#   2. starts a local source MariaDB (binlog ROW, FULL image) and a ZooKeeper (target/*/cdc-sandbox);
#   3. starts two canal-servers from config/canal-server-ha.toml: one runs destination `example`,
#      the other stands by;
#   4. follows the destination with `canal-client tail` (through ZooKeeper) while a workload writes;
#   5. kills the active server with SIGKILL, writes more, and shows the stream continuing from the
#      standby, then checks that every row written arrived;
#   6. two-way sync: a second site (MariaDB), two otter-nodes, writes on both sides including one
#      conflicting key, the conflict printed, both databases checked equal (and by otter-manager check).
# It leaves nothing running when it ends or is interrupted. QUICKSTART_PROFILE=debug uses the debug
# build instead (the test suite does that, after its own build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

profile=${QUICKSTART_PROFILE:-release}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

scripts/setup.sh
if [ "$profile" = release ]; then
  say "building (release): canal-server, canal-client, otter-node, otter-manager, cdc-sandbox"
  cargo build --release --locked -p canal-server -p canal-client -p otter-node -p otter-manager \
    -p cdc-tests --bin canal-server --bin canal-client --bin otter-node --bin otter-manager \
    --bin cdc-sandbox
  bin=$root/target/release
else
  say "building (debug): canal-server, canal-client, otter-node, otter-manager, cdc-sandbox"
  # --workspace: the same feature set as the test build, so nothing is compiled a second time.
  cargo build --locked --workspace --bin canal-server --bin canal-client --bin otter-node \
    --bin otter-manager --bin cdc-sandbox
  bin=$root/target/debug
fi

work=$(mktemp -d /tmp/cdc-quickstart-XXXXXX)
pids=()
cleanup() {
  status=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # Closing the sandbox's stdin makes it kill MariaDB and ZooKeeper and exit.
  exec 3>&- || true
  for p in "${pids[@]}" ${sandbox_pid:-}; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    echo "quickstart failed (exit $status); logs:" >&2
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_get() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1" 2>/dev/null; }
health() { http_get "http://127.0.0.1:$1/health"; }
health_has() { health "$1" | grep -q -i "$2"; }   # health_has <admin port> <text>
wait_for() { # wait_for <what> <seconds> <command…>
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; return 1
}

say "starting two MariaDB sites and ZooKeeper ($bin/cdc-sandbox --second-site)"
mkfifo "$work/stdin"
"$bin/cdc-sandbox" --second-site <"$work/stdin" >"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
exec 3>"$work/stdin"
wait_for "the sandbox" 120 grep -q '^ready' "$work/sandbox.out"
db=$(awk '/^mariadb /{print $2}' "$work/sandbox.out")
db_user=$(awk '/^mariadb /{sub("user=","",$3); print $3}' "$work/sandbox.out")
db_password=$(awk '/^mariadb /{sub("password=","",$4); print $4}' "$work/sandbox.out")
zk=$(awk '/^zookeeper /{print $2}' "$work/sandbox.out")
echo "   MariaDB $db (replication user $db_user), ZooKeeper $zk"
sql() { mariadb --protocol=TCP -h127.0.0.1 -P"${db##*:}" -uroot "$@"; }
sql -e "CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer VARCHAR(40),
  amount DECIMAL(10,2), status ENUM('new','paid','shipped'), created DATETIME(3))"

# Two servers from the one example file: the sandbox's source and ZooKeeper, own ports and data dirs.
sed -e "s|^address = .*|address = \"$db\"|" \
    -e "s|^username = .*|username = \"$db_user\"|" \
    -e "s|^password = .*|password = \"$db_password\"|" \
    -e "s|^servers = .*|servers = \"$zk\"|" \
    config/canal-server-ha.toml >"$work/canal-server.toml"
start_server() { # start_server <name> -> sets <name>_pid, <name>_port, <name>_admin
  local name=$1 port admin
  port=$(free_port); admin=$(free_port)
  RUST_LOG=info "$bin/canal-server" --config "$work/canal-server.toml" --port "$port" \
    --admin-port "$admin" --data-dir "$work/data-$name" >"$work/server-$name.log" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!; ${name}_port=$port; ${name}_admin=$admin"
  echo "   canal-server $name: 127.0.0.1:$port (admin http://127.0.0.1:$admin/health), log $work/server-$name.log"
}

say "starting canal-server A, then B (same config, same destination)"
start_server a
# A is alone, so it becomes active; wait until it streams from the current end of the binlog.
wait_for "server A to run destination example" 60 health_has "$a_admin" '"status":"running"'
start_server b
wait_for "server B to stand by" 60 health_has "$b_admin" '"role":"standby"'
echo "   A is active, B stands by:"
echo "   A: $(health "$a_admin" | cut -c1-300)"
echo "   B: $(health "$b_admin" | cut -c1-300)"

say "canal-client tail --zk $zk --destination example (JSON lines in Canal's flat-message shape)"
"$bin/canal-client" tail --zk "$zk" --destination example --client-id 1001 --progress never \
  >"$work/tail.out" 2>"$work/tail.log" &
pids+=($!)
tail_pid=$!
# Distinct order ids seen by the client (each flat message's data rows carry "id":"N").
rows_seen() { grep -o '"id":"[0-9]*"' "$work/tail.out" 2>/dev/null | sort -u | wc -l; }
rows_at_least() { [ "$(rows_seen)" -ge "$1" ]; }

write_rows() { # write_rows <from> <to>: one transaction per order, then an update and a delete
  local i
  for i in $(seq "$1" "$2"); do
    sql -e "INSERT INTO shop.orders VALUES ($i, 'customer-$i', $i.50, 'new', NOW(3))"
  done
  sql -e "UPDATE shop.orders SET status='paid' WHERE id=$1; DELETE FROM shop.orders WHERE id=$2"
}

say "writing orders 1..20 on the source"
write_rows 1 20
wait_for "20 orders at the client" 60 rows_at_least 20
head -n 3 "$work/tail.out" | sed 's/^/   /'
echo "   … $(wc -l <"$work/tail.out") messages so far; the UPDATE and the DELETE:"
grep -E '"type":"(UPDATE|DELETE)"' "$work/tail.out" | sed 's/^/   /'

echo "   (cursors reach ZooKeeper every second: flush_period_ms = 1000)"
sleep 2
say "kill -9 of the active server A (pid $a_pid)"
{ kill -KILL "$a_pid"; wait "$a_pid"; } 2>/dev/null || true
echo "   B takes over once A's ZooKeeper session expires (10 s) and the grace delay passes (5 s)."
say "writing orders 21..40 meanwhile"
write_rows 21 40
wait_for "server B to run destination example" 60 health_has "$b_admin" '"status":"running"'
echo "   B: $(health "$b_admin" | cut -c1-300)"
wait_for "orders 21..40 at the client" 90 rows_at_least 40
grep -E '"id":"(2[1-9]|3[0-9]|40)"' "$work/tail.out" | awk "NR<=3" | sed 's/^/   /'
echo "   …"

say "checking"
missing=0
for i in $(seq 1 40); do
  grep -q "\"id\":\"$i\"" "$work/tail.out" || { echo "   order $i never arrived" >&2; missing=1; }
done
[ "$missing" -eq 0 ] || exit 1
total=$(wc -l <"$work/tail.out")
echo "   all 40 orders arrived at canal-client tail, before and after the failover: $total messages for"
echo "   44 changes (40 inserts, 2 updates, 2 deletes). Delivery is at-least-once: what was delivered"
echo "   after the last cursor flush before the kill comes again from B."

say "two-way sync: site a ($db) and site b, one otter-node each"
db2=$(awk '/^mariadb2 /{print $2}' "$work/sandbox.out")
db2_password=$(awk '/^mariadb2 /{sub("password=","",$4); print $4}' "$work/sandbox.out")
sql2() { mariadb --protocol=TCP -h127.0.0.1 -P"${db2##*:}" -uroot "$@"; }
# Site b starts as a copy of site a's shop schema and rows.
mariadb-dump --protocol=TCP -h127.0.0.1 -P"${db##*:}" -uroot --skip-comments --databases shop | sql2
for site in "$db" "$db2"; do "$bin/otter-manager" prepare-site --address "$site" | sed 's/^/   /'; done
sql -e "GRANT INSERT, UPDATE ON retl.xdual TO '$db_user'@'%'"
sql2 -e "GRANT INSERT, UPDATE ON retl.xdual TO '$db_user'@'%'"
# The example channel pointed at the two sites; passwords stay out of ZooKeeper: the channel names
# environment variables that each node resolves.
sed -e "s|127.0.0.1:3306|$db|g" -e "s|127.0.0.1:3307|$db2|g" -e 's|^username = "otter".*|username = "root"|' \
  config/channel-two-way.toml >"$work/channel.toml"
export OTTER_HZ_REPL_PASSWORD=$db_password OTTER_SG_REPL_PASSWORD=$db2_password OTTER_HZ_PASSWORD='' OTTER_SG_PASSWORD=''
otter() { "$bin/otter-manager" --zk "$zk" "$@" 2> >(grep -v 'no --zk-digest' >&2); }
otter apply -f "$work/channel.toml" | sed 's/^/   /'
otter start 2 | sed 's/^/   /'
for id in 1 2; do
  RUST_LOG=info "$bin/otter-node" --id "$id" --zk "$zk" --http "127.0.0.1:$(free_port)" \
    --data-dir "$work/otter-$id" >"$work/otter-node-$id.log" 2>&1 &
  pids+=($!)
done
# Each pipeline starts at its source's binlog end once it runs; its first measured delay (the
# heartbeat went around) says it does.
both_running() { [ "$(otter show 2 2>&1 >/dev/null | grep -c ': delay ')" -ge 2 ]; }
wait_for "both pipelines to run" 120 both_running
otter show 2 2>&1 >/dev/null | sed 's/^/   /'
q="SELECT id, customer, amount, status, created FROM shop.orders ORDER BY id"
same() { [ "$(sql -N -e "$q")" = "$(sql2 -N -e "$q")" ]; }
has_row() { [ -n "$("$1" -N -e "SELECT id FROM shop.orders WHERE id = $2 AND customer = '$3'")" ]; }
echo "   orders 1001..1005 written at site a, 2001..2005 at site b"
for i in 1 2 3 4 5; do
  sql -e "INSERT INTO shop.orders VALUES (100$i, 'written at a', $i.25, 'new', NOW(3))"
  sql2 -e "INSERT INTO shop.orders VALUES (200$i, 'written at b', $i.75, 'new', NOW(3))"
done
wait_for "both sites to hold both sites' orders" 120 has_row sql2 1005 'written at a'
wait_for "both sites to hold both sites' orders" 120 has_row sql 2005 'written at b'
wait_for "the sites to be equal" 60 same
echo "   both sites hold all 10 orders"

say "a conflict: both sites change order 1001 while the channel is paused"
otter pause 2 | sed 's/^/   /'
sleep 2
sql -e "UPDATE shop.orders SET customer = 'changed at a', status = 'paid' WHERE id = 1001"
sql2 -e "UPDATE shop.orders SET customer = 'changed at b', status = 'shipped' WHERE id = 1001"
otter start 2 | sed 's/^/   /'
wait_for "site b to take site a's change (a is the priority site)" 120 has_row sql2 1001 'changed at a'
wait_for "the sites to be equal" 60 same
otter conflicts 2 | sed 's/^/   /'
say "checking"
same || { echo "   the sites differ" >&2; exit 1; }
echo "   otter-manager check 2: every mapped table compared row by row, in chunks of its primary key"
otter check 2 --recheck-wait-ms 200 | sed 's/^/   /' || { echo "   the checker found differences" >&2; exit 1; }
n=$(sql -N -e "SELECT COUNT(*) FROM shop.orders")
echo "   both sites hold the same $n orders; order 1001 is site a's (customer 'changed at a'),"
echo "   the conflict is recorded at both sites (kept at a, taken from a at b)."
otter show 2 2>&1 >/dev/null | sed 's/^/   /'

# The web console over this demo: user "demo" with a fresh password, up while the demo runs.
console_password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
console_hash=$(printf '%s\n' "$console_password" | "$bin/otter-manager" hash-password)
console_port=$(free_port)
printf '[console]\nhttp = "127.0.0.1:%s"\n\n[[console.users]]\nname = "demo"\npassword_hash = "%s"\nrole = "operator"\n' \
  "$console_port" "$console_hash" >"$work/manager.toml"
chmod 600 "$work/manager.toml"
"$bin/otter-manager" --zk "$zk" serve --config "$work/manager.toml" >"$work/console.log" 2>&1 &
pids+=($!)
console_up() { (exec 9<>"/dev/tcp/127.0.0.1/$console_port") 2>/dev/null; }
wait_for "the web console" 30 console_up

cat <<EOF

== done. By hand:
  $bin/cdc-sandbox                                   # MariaDB + ZooKeeper, prints their addresses
  $bin/canal-server --config config/canal-server-ha.toml --port 11111 --admin-port 11112
  $bin/canal-server --config config/canal-server-ha.toml --port 11121 --admin-port 11122 --data-dir data-b
  $bin/canal-client tail --zk 127.0.0.1:2181 --destination example --format table
  $bin/canal-client webhook --zk 127.0.0.1:2181 --url http://127.0.0.1:8080/changes
  $bin/canal-client redis-invalidate --zk 127.0.0.1:2181 --key 'shop.orders=order:{id}'
  $bin/otter-manager --zk 127.0.0.1:2181 apply -f config/channel-two-way.toml && $bin/otter-manager start 2
  $bin/otter-node --id 1 --zk 127.0.0.1:2181 --http 127.0.0.1:2088    # and --id 2 near site b
  $bin/otter-manager --zk 127.0.0.1:2181 conflicts 2
  $bin/otter-manager --zk 127.0.0.1:2181 check 2 [--repair]
(edit address/username/password/servers in config/canal-server-ha.toml for your source and ZooKeeper,
 and the sites of config/channel-two-way.toml)
EOF
echo "== web console: http://127.0.0.1:$console_port/  (user demo, password $console_password)"
if [ -t 0 ]; then
  read -r -p "   the demo and its console keep running; press Enter to stop them " _ || true
fi
