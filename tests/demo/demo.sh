#!/usr/bin/env bash
# The demo behind `make demo`: a throwaway PostgreSQL with a small retail schema, synced into
# ./sluice-data/warehouse.duckdb, changed, synced again, and what landed printed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/demo
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=${SLUICE_BIN:-$TARGET_DIR/release/sluice}
SHOW=${SHOW_BIN:-$TARGET_DIR/release/examples/show}
DATA=${SLUICE_DATA:-$PWD/sluice-data}
PG_BIN=/usr/lib/postgresql/15/bin
PORT=${DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

for bin in "$SLUICE" "$SHOW" "$PG_BIN/initdb"; do
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
psql_ -d shop -f "$HERE/retail.sql"

echo "==> writing $DATA/sluice.toml"
"$SLUICE" init -c "$DATA/sluice.toml" --force \
  --source-url "postgres://postgres@127.0.0.1:$PORT/shop?sslmode=disable" \
  --tables 'public.*' --data-dir "$DATA" >/dev/null
"$SLUICE" check -c "$DATA/sluice.toml"

echo "==> first sync: snapshot of every table"
"$SLUICE" sync -c "$DATA/sluice.toml" --until-caught-up 2>"$DATA/sync-1.log"

echo "==> changing the source: new order, cancellation, refund, price changes, restock"
psql_ -d shop -f "$HERE/changes.sql"

echo "==> second sync: only the changes stream"
"$SLUICE" sync -c "$DATA/sluice.toml" --until-caught-up 2>"$DATA/sync-2.log"

echo "==> installing the KPI views"
"$SLUICE" views install -c "$DATA/sluice.toml"

echo "==> what landed in $DATA/warehouse.duckdb"
"$SHOW" "$DATA/warehouse.duckdb" \
  "SELECT table_name, estimated_size AS rows FROM duckdb_tables() WHERE schema_name = 'raw' ORDER BY 1" \
  "SELECT id, customer_id, status, total, _sluice_lsn, _sluice_deleted FROM raw.orders WHERE id IN (17, 18, 1001) ORDER BY id" \
  "SELECT id, name, price FROM raw.products WHERE id <= 3 ORDER BY id" \
  "SELECT id, email, _sluice_deleted FROM raw.customers WHERE id = 501" \
  "SELECT * FROM raw.stock_on_hand WHERE product_id <= 5 AND warehouse_id = 2 ORDER BY product_id" \
  "SELECT * FROM raw.orders_per_minute ORDER BY window_start DESC LIMIT 3" \
  "SELECT table_name, last_commit_ts, applied_lsn FROM raw.pipeline_freshness ORDER BY table_name" \
  "SELECT pipeline, applied_lsn_text AS applied_lsn, applied_commit_ts FROM raw._sluice_checkpoints"
echo "==> done: query it yourself with any DuckDB client, e.g. duckdb $DATA/warehouse.duckdb"
