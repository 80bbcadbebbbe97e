#!/usr/bin/env bash
# Side-by-side: Suanpan (3-node durable cluster on this machine) and a PostgreSQL double-entry ledger
# (fsync=on, synchronous_commit=on) on the same workload — 10 000 wallets, random pairs, optionally 10%
# of transfers paying one hot merchant — one after the other, then the ratio of their best throughput.
#
#   bash benches/compare-postgres.sh [SECONDS]     (default 30 s per run)
#
# Installs PostgreSQL from Debian's packages when missing. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
PGDATA_DIR=${PGDATA_DIR:-/tmp/suanpan-pg}
PGPORT=${PGPORT:-5433}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/postgres" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else bash -c "$*"; fi; }
if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
  mkdir -p "$PGDATA_DIR"; [ "$(id -u)" = 0 ] && chown postgres "$PGDATA_DIR"
  as_pg "$PGBIN/initdb -D $PGDATA_DIR -A trust >/dev/null"
fi
as_pg "$PGBIN/pg_ctl -D $PGDATA_DIR -o '-p $PGPORT -c fsync=on -c synchronous_commit=on -c max_connections=200 -c listen_addresses=127.0.0.1' -l $PGDATA_DIR/log -w start" >/dev/null 2>&1 || true
trap 'as_pg "$PGBIN/pg_ctl -D $PGDATA_DIR -m fast stop" >/dev/null 2>&1 || true' EXIT
export PGOPTIONS='-c client_min_messages=warning'
PSQL="$PGBIN/psql -h 127.0.0.1 -p $PGPORT -U postgres -q -v ON_ERROR_STOP=1"

pg_run() { # script clients -> "tps p99_ms"
  as_pg "$PSQL -d postgres -f benches/postgres/schema.sql" >/dev/null
  out=$(as_pg "$PGBIN/pgbench -h 127.0.0.1 -p $PGPORT -U postgres -n -c $2 -j 2 -T $SECS -r -f benches/postgres/$1.sql postgres" 2>&1)
  tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
  lat=$(echo "$out" | awk '/latency average/ {print $4; exit}')
  sum=$(as_pg "$PSQL -d postgres -At -c 'SELECT sum(balance) FROM accounts'")
  [ "$sum" = "0" ] || { echo "PostgreSQL: money not conserved ($sum)" >&2; exit 1; }
  echo "$tps $lat"
}

cargo build --release --workspace --all-targets --locked >/dev/null
declare -A PG SP
for w in uniform hot; do
  best=0
  for c in 8 32; do
    read -r tps lat < <(pg_run $w $c)
    echo "postgres  $w clients=$c: $tps transfers/s (avg latency $lat ms)"
    best=$(python3 -c "print(max($best, $tps))")
  done
  PG[$w]=$best
  hot=0; [ $w = hot ] && hot=0.1
  json=$(./target/release/suanpan bench --spawn 3 --duration-s "$SECS" --hot-share $hot --concurrency 64 --batch-size 100 --json)
  tps=$(echo "$json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["transfers_per_second"]))')
  p99=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p99"])')
  echo "suanpan   $w 3 nodes: $tps transfers/s (p99 $p99 ms per 100-transfer call)"
  SP[$w]=$tps
done
for w in uniform hot; do
  python3 -c "print('ratio     $w: suanpan / postgres best = %.1fx' % (${SP[$w]} / ${PG[$w]}))"
done
