#!/usr/bin/env bash
# The snapshot row of the performance issue (docs/performance.md): a ledger of 10 M transfers on a
# 3-node `suanpan dev` cluster, then a fourth node started empty (at nice 19) joins through a
# streamed snapshot while 10 s open-loop windows (5 000 transfers/s, 10 per call) measure the
# leader's p50/p99 before, during and after the join. Prints the ingest, each window, the
# newcomer's fetch and install log lines and the cluster's status (every digest must be equal).
#
#   bash benches/snapshot-join.sh            (~6 min on the project's machine; ~10 GB of disk)
#
# Environment: SUANPAN_BIN (default target/release/suanpan), TRANSFERS (10000000), ACCOUNTS
# (100000), BASE_PORT (7800: the dev cluster takes BASE_PORT..+2, the newcomer BASE_PORT+3),
# DIR (/tmp/suanpan-snapshot-join, removed before and after unless KEEP=1).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${SUANPAN_BIN:-$ROOT/target/release/suanpan}
TRANSFERS=${TRANSFERS:-10000000}
ACCOUNTS=${ACCOUNTS:-100000}
P=${BASE_PORT:-7800}
D=${DIR:-/tmp/suanpan-snapshot-join}
rm -rf "$D"; mkdir -p "$D"
cleanup() {
  pkill -f -- "--data-dir $D/" 2>/dev/null
  sleep 1
  [ "${KEEP:-0}" = 1 ] || rm -rf "$D"
}
trap cleanup EXIT
setsid "$B" dev --nodes 3 --data-dir "$D/dev" --base-port "$P" > "$D/dev.log" 2>&1 < /dev/null &
for _ in $(seq 1 150); do [ -f "$D/dev/admin.key" ] && break; sleep 0.2; done
sleep 4
EP=127.0.0.1:$P,127.0.0.1:$((P + 1)),127.0.0.1:$((P + 2))
K=$D/dev/admin.key
T0=$(date +%s)
"$B" bench --endpoint "$EP" --key "$K" --accounts "$ACCOUNTS" --transfers "$TRANSFERS" \
  --batch-size 1000 --concurrency 32 --warmup-s 0 --json > "$D/ingest.json" 2> "$D/ingest.err"
echo "ingest: $(python3 -c "import json; d=json.load(open('$D/ingest.json')); print(round(d['transfers_per_second']), '/s', d.get('verification'))") in $(( $(date +%s) - T0 )) s"
du -sh "$D/dev/node-1/db" 2>/dev/null
win() {
  "$B" bench --endpoint "$EP" --key "$K" --rate 5000 --batch-size 10 --concurrency 32 \
    --duration-s 10 --warmup-s 0 --json 2>/dev/null \
    | python3 -c "import json,sys; d=json.load(sys.stdin); l=d['latency_ms']; print('$1', '$(date +%H:%M:%S)', 'p50', l['p50'], 'p99', l['p99'], 'max', l['max'])"
}
for _ in 1 2 3; do win before; done
nice -n 19 "$B" node --id 4 --data-dir "$D/n4" --listen "127.0.0.1:$((P + 3))" --join \
  --peer "1=127.0.0.1:$P" --peer "2=127.0.0.1:$((P + 1))" --peer "3=127.0.0.1:$((P + 2))" \
  --admin-key-file "$K" --insecure > "$D/n4.log" 2>&1 &
sleep 2
TJ=$(date +%s)
"$B" cluster add-node --endpoint "$EP" --key "$K" --id 4 --address "127.0.0.1:$((P + 3))" \
  --wait-s 2400 --json > "$D/add.json" 2>&1 &
ADD=$!
echo "add-node at $(date +%H:%M:%S)"
while kill -0 "$ADD" 2>/dev/null; do win join; done
echo "add-node done at $(date +%H:%M:%S) after $(( $(date +%s) - TJ )) s: $(tr -d '\n' < "$D/add.json" | cut -c1-300)"
for _ in 1 2 3; do win after; done
sed 's/\x1b\[[0-9;]*m//g' "$D/n4.log" | grep -i "snapshot file fetched\|snapshot installed" | cut -c1-220
"$B" cluster status --endpoint "$EP" --key "$K" 2>&1 | head -12
