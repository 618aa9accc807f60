#!/usr/bin/env bash
# The demo behind `make demo`: a throwaway PostgreSQL with the retail schema and its opening
# stock, `sluice check`, then the live dashboard (`sluice-demo dashboard`): the pipeline runs
# in-process into ./sluice-data/warehouse.duckdb while a generator drives shop traffic at the
# source. On a terminal it runs until `q`; without one (CI) it runs for DEMO_SECONDS (default
# 20), waits for the warehouse to catch up, compares it with the source and prints a summary
# and a captured frame. The warehouse stays, with the KPI views, for querying afterwards.
#
# DEMO_RATE (default 100) sets the source transactions per second; DEMO_SECONDS a fixed length
# on a terminal too.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/demo
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=${SLUICE_BIN:-$TARGET_DIR/release/sluice}
DEMO=${SLUICE_DEMO_BIN:-$TARGET_DIR/release/sluice-demo}
SHOW=${SHOW_BIN:-$TARGET_DIR/release/examples/show}
DATA=${SLUICE_DATA:-$PWD/sluice-data}
RATE=${DEMO_RATE:-100}
PG_BIN=/usr/lib/postgresql/15/bin
PORT=${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

for bin in "$SLUICE" "$DEMO" "$SHOW" "$PG_BIN/initdb"; do
  [ -x "$bin" ] || { echo "demo: $bin is missing (run: make demo)" >&2; exit 1; }
done

# A fresh run each time: the previous demo's cluster, log and warehouse go.
PGDIR=$(mktemp -d /tmp/sluice-demo-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
stop_pg() {
  if [ -f "$PGDIR/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGDIR"
}
trap stop_pg EXIT
rm -rf "$DATA"
mkdir -p "$DATA"

echo "==> starting a throwaway PostgreSQL 15 on 127.0.0.1:$PORT"
as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log"
as_pg tee -a "$PGDIR/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDIR'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
fsync = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w start >/dev/null
psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE shop"
echo "==> creating the retail schema with its opening stock"
psql_ -d shop -f "$HERE/retail.sql"

echo "==> writing $DATA/sluice.toml"
"$SLUICE" init -c "$DATA/sluice.toml" --force \
  --source-url "postgres://postgres@127.0.0.1:$PORT/shop?sslmode=disable" \
  --tables 'public.*' --data-dir "$DATA" >/dev/null
"$SLUICE" check -c "$DATA/sluice.toml"

# Batches close every 250 ms rather than the default second: the screen moves more smoothly.
export SLUICE__LOAD__FLUSH_INTERVAL_MS=${SLUICE__LOAD__FLUSH_INTERVAL_MS:-250}
args=(dashboard -c "$DATA/sluice.toml" --rate "$RATE")
[ -n "${DEMO_SECONDS:-}" ] && args+=(--seconds "$DEMO_SECONDS")
[ -t 1 ] || args+=(--frame 120x36)
echo "==> the live dashboard: sluice sync into DuckDB with $RATE source transactions a second"
"$DEMO" "${args[@]}"

WH=$DATA/warehouse.duckdb
echo "==> three questions to the warehouse"
"$SHOW" "$WH" \
  "SELECT warehouse_id, sku, name, on_hand, reorder_at FROM raw.low_stock ORDER BY on_hand, warehouse_id LIMIT 5" \
  "SELECT window_start, orders, revenue FROM raw.orders_per_minute ORDER BY window_start DESC LIMIT 5" \
  "SELECT 'card testing' AS signal, upper(left(hex(card_fingerprint), 8)) AS card, max(window_end) AS last_seen
   FROM raw.fraud_card_velocity GROUP BY card
   UNION ALL
   SELECT 'two countries', upper(left(hex(card_fingerprint), 8)), max(second_at)
   FROM raw.fraud_card_countries GROUP BY 2
   ORDER BY last_seen DESC LIMIT 5"
echo "==> done: the warehouse is $WH; query it with any DuckDB client, or"
echo "    $SHOW $WH \"SELECT * FROM raw.stock_on_hand LIMIT 5\""
