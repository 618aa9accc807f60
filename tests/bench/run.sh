#!/usr/bin/env bash
# Sluice benchmark on the shared workload (../shared/bench), side by side with PostgreSQL's own
# tools on the same data in the same run: pg_recvlogical draining a slot and native logical
# replication (a subscription on a second cluster). What it measures: tests/bench/README.md.
#
# Usage: tests/bench/run.sh          (from the repository root; `make bench` runs it)
# Env:   WL_ROWS, WL_CDC, WL_TXN, WL_MOVES, WL_DRIVER   workload sizes (see workload.sh)
#        BENCH_FRESH_SECONDS  freshness run per target, seconds (default 15; 0 skips it)
#        BENCH_FRESH_RATE     generator rate, row changes per second (default 5000)
#        BENCH_FRESH_TXN      row changes per generator transaction (default 10)
#        BENCH_FRESH_FLUSH_MS flush_interval_ms of the freshness pipelines (default 200)
#        SLUICE_BIN     sluice binary            (default ${CARGO_TARGET_DIR:-target}/release/sluice)
#        SLUICE_COMMIT  the commit the binary was built from, for the report (default: the
#                       repository's HEAD, flagged when the tree has uncommitted changes)
#        WORKLOAD_DIR   workload.sh + .sql       (default ../shared/bench, else /work/shared/bench)
#        BENCH_DIR      scratch parent directory (default /tmp/sluice-bench)
#        BENCH_OUT      results file             (default tests/bench/results/latest.md; the chart
#                       and the raw figures go next to it as .png and .tsv)
#        BENCH_E2E      1 (default): also time a fresh `sync` (stage all) into DuckDB; 0 to skip
#        BENCH_KEEP     1: keep the scratch directory after a successful run
#        BENCH_LARGE_ROWS  rows of the one large source transaction (200-byte rows; default
#                          200000, bench-full 1000000; 0 skips it)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"

export WL_ROWS=${WL_ROWS:-200000}
export WL_CDC=${WL_CDC:-100000}
export WL_TXN=${WL_TXN:-1000}
PG_BIN=${WL_PG_BIN:-/usr/lib/postgresql/15/bin}
export WL_PG_BIN=$PG_BIN
HOST=${WL_HOST:-127.0.0.1}
DB=bench
SLUICE_BIN=${SLUICE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluice}
BENCH_OUT=${BENCH_OUT:-tests/bench/results/latest.md}
BENCH_E2E=${BENCH_E2E:-1}
FRESH_SECONDS=${BENCH_FRESH_SECONDS:-15}
FRESH_RATE=${BENCH_FRESH_RATE:-5000}
FRESH_TXN=${BENCH_FRESH_TXN:-10}
FRESH_FLUSH_MS=${BENCH_FRESH_FLUSH_MS:-200}
LARGE_ROWS=${BENCH_LARGE_ROWS:-200000}
if [ -z "${WORKLOAD_DIR:-}" ]; then
  for d in "$REPO/../shared/bench" /work/shared/bench; do
    [ -x "$d/workload.sh" ] && { WORKLOAD_DIR=$d; break; }
  done
fi
WL="${WORKLOAD_DIR:?set WORKLOAD_DIR to the directory holding workload.sh}/workload.sh"
PY=${PYTHON:-python3}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }

# --- prerequisites -----------------------------------------------------------------------
[ -x "$SLUICE_BIN" ] || die "no sluice binary at $SLUICE_BIN (cargo build --release -p sluice, or set SLUICE_BIN)"
[ -x "$WL" ] || die "no workload script at $WL"
for b in psql pg_recvlogical pgbench initdb pg_ctl; do
  [ -x "$PG_BIN/$b" ] || die "missing $PG_BIN/$b (PostgreSQL 15 binaries)"
done
[ "$((FRESH_RATE / FRESH_TXN))" -ge 1 ] || die "BENCH_FRESH_RATE must be at least BENCH_FRESH_TXN"
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time (peak RSS)"
  apt-get install -y -q time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
fi
if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  log "installing the duckdb Python package (result check)"
  "$PY" -m pip install -q duckdb==1.5.0 pytz
fi
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
  log "installing the matplotlib Python package (chart)"
  "$PY" -m pip install -q matplotlib
fi

# --- scratch directory, clusters, cleanup ----------------------------------------------------
mkdir -p "${BENCH_DIR:-/tmp/sluice-bench}"
WORK=$(mktemp -d "${BENCH_DIR:-/tmp/sluice-bench}/run.XXXXXX")
# A copy of the binary: others may rebuild the original while the run goes on.
mkdir -p "$WORK/bin"
cp "$SLUICE_BIN" "$WORK/bin/sluice"
SLUICE_SRC=$(cd "$(dirname "$SLUICE_BIN")" && pwd)/$(basename "$SLUICE_BIN")
SLUICE=$WORK/bin/sluice
SRC_DIR=$WORK/pg_source
TGT_DIR=$WORK/pg_target
CLUSTERS=()
CHILD_PID=
cleanup() {
  local rc=$? d
  trap - EXIT INT TERM
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    stop_child "$CHILD_PID" || true
  fi
  if [ -n "${SF_PID:-}" ]; then kill "$SF_PID" 2>/dev/null || true; fi
  for d in "${CLUSTERS[@]}"; do "$WL" cluster-stop "$d" >/dev/null 2>&1 || true; done
  if [ "$rc" = 0 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    log "scratch directory kept: $WORK"
  fi
  exit "$rc"
}
# Stops a process started under GNU time: TERM to the command (time itself ignores it), then
# waits for time to write the peak RSS.
stop_child() { # TIME_PID
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill -TERM "$c" 2>/dev/null || true; done
  wait "$1" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
SRC_PORT=$(free_port)
TGT_PORT=$(free_port)
[ "$SRC_PORT" != "$TGT_PORT" ] || TGT_PORT=$(free_port)
pg_() { # PORT DB args...
  local port=$1 db=$2; shift 2
  PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$port" -U postgres -d "$db" "$@"
}
src() { pg_ "$SRC_PORT" "$DB" "$@"; }
tgt() { local db=$1; shift; pg_ "$TGT_PORT" "$db" "$@"; }
URL="postgres://postgres@$HOST:$SRC_PORT/$DB"
TGT_URL="postgres://postgres@$HOST:$TGT_PORT"

# Runs a command in the background under GNU time, so cleanup can stop it by PID.
# Sets ELAPSED (seconds) and RSS_MB (peak resident set size of the command).
timed() { # NAME cmd...
  local name=$1; shift
  local t0 t1 rc=0
  t0=$(now)
  /usr/bin/time -o "$WORK/$name.time" -f '%M' "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=
  t1=$(now)
  if [ "$rc" != 0 ]; then
    log "$name exited with $rc; last lines of its stderr:"
    tail -n 20 "$WORK/$name.err" >&2
    die "$name"
  fi
  ELAPSED=$(secs "$t0" "$t1")
  RSS_MB=$(awk 'END{printf "%.0f", $1/1024}' "$WORK/$name.time")
}

summary() { grep '^sync finished' "$WORK/$1.out" || die "$1 printed no summary line"; }
# Field from the summary line: snapshot | changes | rows.
summary_field() { # NAME FIELD
  summary "$1" | sed -E 's/^sync finished: snapshot ([0-9]+) rows; streamed ([0-9]+) transactions, ([0-9]+) changes; loaded ([0-9]+) batches, ([0-9]+) rows; .*/\1 \2 \3 \4 \5/' |
    awk -v f="$2" '{ if (f=="snapshot") print $1; else if (f=="txns") print $2; else if (f=="changes") print $3; else if (f=="batches") print $4; else print $5 }'
}

# Raw figures, one measurement a line of tab-separated key=value pairs; report.py turns them
# into the markdown tables and the chart.
RESULTS=$WORK/results.tsv
: >"$RESULTS"
rec() { # key=value...
  local IFS=$'\t'
  printf '%s\n' "$*" >>"$RESULTS"
}

# --- result checks ---------------------------------------------------------------------------
# Every check compares `workload.sh checksum` (per table: row count and an order-independent
# hash of the row text) of a target with the source's at the same point: SUM_PRELOAD after the
# snapshot, SUM_FINAL after the CDC phase. The source does not change in between, so each is
# read once. DuckDB warehouses are exported to CSV and copied into the database `bench_check`
# of the target cluster (never into the source, whose slots would have to decode the copy);
# PostgreSQL targets are read in place.
WL_COLS_orders="id, customer_id, product_id, qty, price, status, created_at, updated_at, note, payload"
WL_COLS_inventory_movements="id, product_id, warehouse_id, delta, reason, moved_at"

# Exports the non-deleted rows of raw.TABLE (the source's columns) from a DuckDB file to CSV.
export_duckdb() { # WAREHOUSE DIR TABLE:COLUMNS...
  "$PY" - "$@" <<'PYEOF'
import os, sys, duckdb
warehouse, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
con = duckdb.connect(warehouse, read_only=True)
con.execute("SET TimeZone = 'UTC'")
for spec in sys.argv[3:]:
    table, cols = spec.split(":", 1)
    con.execute(
        f"COPY (SELECT {cols} FROM raw.{table} WHERE NOT _sluice_deleted) "
        f"TO '{out}/{table}.csv' (FORMAT csv, HEADER false)"
    )
PYEOF
}

compare_sums() { # EXPECTED_FILE ACTUAL_FILE LABEL
  # One line a table, in whatever order the catalog listed them.
  if ! cmp -s <(sort "$1") <(sort "$2"); then
    printf 'source:\n%s\ntarget (%s):\n%s\n' "$(cat "$1")" "$3" "$(cat "$2")" >&2
    die "target differs from source after $3"
  fi
  log "check $3: target matches source ($(awk '{printf "%s%s=%s rows", (NR>1?", ":""), $1, $2}' "$1"))"
}

check_duckdb() { # WAREHOUSE SUMFILE LABEL
  local out=$WORK/check_csv
  rm -rf "$out"
  export_duckdb "$1" "$out" "orders:$WL_COLS_orders" "inventory_movements:$WL_COLS_inventory_movements"
  tgt bench_check <<SQL
TRUNCATE orders, inventory_movements;
\copy orders FROM '$out/orders.csv' WITH (FORMAT csv)
\copy inventory_movements FROM '$out/inventory_movements.csv' WITH (FORMAT csv)
SQL
  "$WL" checksum "$TGT_PORT" bench_check public >"$WORK/sum_actual"
  compare_sums "$2" "$WORK/sum_actual" "$3"
}

# A PostgreSQL target keeps deleted rows (soft deletes) and adds _sluice_* columns: the check
# reads it through views of the non-deleted rows and the source's columns.
check_pg() { # DB SUMFILE LABEL
  tgt "$1" <<SQL
DROP SCHEMA IF EXISTS bench_check CASCADE;
CREATE SCHEMA bench_check;
CREATE VIEW bench_check.orders AS SELECT $WL_COLS_orders FROM raw.orders WHERE NOT _sluice_deleted;
CREATE VIEW bench_check.inventory_movements AS
  SELECT $WL_COLS_inventory_movements FROM raw.inventory_movements WHERE NOT _sluice_deleted;
SQL
  "$WL" checksum "$TGT_PORT" "$1" bench_check >"$WORK/sum_actual"
  compare_sums "$2" "$WORK/sum_actual" "$3"
}

check_native() { # SUMFILE LABEL
  "$WL" checksum "$TGT_PORT" native public >"$WORK/sum_actual"
  compare_sums "$1" "$WORK/sum_actual" "$2"
}

# --- 1. clusters, schema, preload ---------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(now)
log "sizes: WL_ROWS=$WL_ROWS WL_CDC=$WL_CDC WL_TXN=$WL_TXN; freshness ${FRESH_SECONDS}s at ${FRESH_RATE}/s; sluice: $SLUICE_SRC; scratch: $WORK"
"$WL" expected >"$WORK/expected"
"$WL" cluster-init "$SRC_DIR" "$SRC_PORT" >&2
CLUSTERS+=("$SRC_DIR")
"$WL" cluster-init "$TGT_DIR" "$TGT_PORT" >&2
CLUSTERS+=("$TGT_DIR")
# The target records commit times, so a PostgreSQL target's latency is measured to its commit.
pg_ "$TGT_PORT" postgres -c "ALTER SYSTEM SET track_commit_timestamp = on"
"$WL" cluster-stop "$TGT_DIR" >/dev/null
if [ "$(id -u)" = 0 ]; then
  runuser -u "${WL_OS_USER:-postgres}" -- "$PG_BIN/pg_ctl" -D "$TGT_DIR" -l "$TGT_DIR.log" -w -t 60 start >/dev/null
else
  "$PG_BIN/pg_ctl" -D "$TGT_DIR" -l "$TGT_DIR.log" -w -t 60 start >/dev/null
fi
"$WL" schema "$SRC_PORT" "$DB" >&2
"$WL" preload "$SRC_PORT" "$DB" >&2
eval "$(tr ' ' '\n' <"$WORK/expected" | grep '=')"
: "${preload_total:?}" "${cdc_events:?}"
SUM_PRELOAD=$WORK/sum_preload
"$WL" checksum "$SRC_PORT" "$DB" public >"$SUM_PRELOAD"
# Target databases: `native` (the subscriber: the workload's tables, empty), `sluice_pg`
# (Sluice's PostgreSQL target, which creates its own tables), `bench_check` (DuckDB exports).
"$WL" schema "$TGT_PORT" native >/dev/null
"$WL" schema "$TGT_PORT" bench_check >/dev/null
# Only ever bulk-loaded and scanned once: no WAL, no index.
tgt bench_check -c "ALTER TABLE orders SET UNLOGGED" -c "ALTER TABLE inventory_movements SET UNLOGGED" \
  -c "ALTER TABLE orders DROP CONSTRAINT orders_pkey" \
  -c "ALTER TABLE inventory_movements DROP CONSTRAINT inventory_movements_pkey"
pg_ "$TGT_PORT" postgres -c "CREATE DATABASE sluice_pg"

# Writes a sluice configuration: `sluice init`'s, with the bench's slot and publication and,
# for a PostgreSQL target, [target] pointed at a database of the target cluster.
mkconfig() { # DIR SLOT TARGET(duckdb|postgres:DB) [TABLES] [PUBLICATION]
  local dir=$1 slot=$2 target=$3 tables=${4:-public.orders,public.inventory_movements} pub=${5:-sluice_bench}
  "$SLUICE" init --no-input --source-url "$URL" --tables "$tables" --data-dir "$dir" -c "$dir.toml" >/dev/null
  sed -i -E "s/^slot = .*/slot = \"$slot\"/; s/^publication = .*/publication = \"$pub\"/" "$dir.toml"
  if [ "$target" != duckdb ]; then
    sed -i -E "s|^kind = \"duckdb\"|kind = \"postgres\"|; s|^path = \".*warehouse.duckdb\"|url = \"$TGT_URL/${target#postgres:}\"|" "$dir.toml"
    grep -q "^url = \"$TGT_URL/" "$dir.toml" || die "could not point $dir.toml at the target cluster"
  fi
}

# --- 2. snapshots ----------------------------------------------------------------------------------
mkconfig "$WORK/sluice" sluice_bench duckdb
CONF=$WORK/sluice.toml
log "snapshot: sluice sync --until-caught-up into DuckDB ($preload_total rows)"
timed snapshot "$SLUICE" sync -c "$CONF" --until-caught-up
snap_rows=$(summary_field snapshot snapshot)
[ "$snap_rows" = "$preload_total" ] || die "snapshot copied $snap_rows rows, expected $preload_total"
log "snapshot into DuckDB: $ELAPSED s, peak RSS $RSS_MB MiB"
check_duckdb "$WORK/sluice/warehouse.duckdb" "$SUM_PRELOAD" "snapshot into DuckDB"
rec section=snapshot id=snap_duckdb system="sluice -> DuckDB" phase="sync --until-caught-up" \
  events="$preload_total" seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok

mkconfig "$WORK/sluice_pg" sluice_bench_pg postgres:sluice_pg
CONF_PG=$WORK/sluice_pg.toml
log "snapshot: sluice sync --until-caught-up into PostgreSQL"
timed snapshot_pg "$SLUICE" sync -c "$CONF_PG" --until-caught-up
snap_rows=$(summary_field snapshot_pg snapshot)
[ "$snap_rows" = "$preload_total" ] || die "snapshot into PostgreSQL copied $snap_rows rows, expected $preload_total"
log "snapshot into PostgreSQL: $ELAPSED s, peak RSS $RSS_MB MiB"
check_pg sluice_pg "$SUM_PRELOAD" "snapshot into PostgreSQL"
rec section=snapshot id=snap_pg system="sluice -> PostgreSQL" phase="sync --until-caught-up" \
  events="$preload_total" seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok

# Native initial sync: a subscription with copy_data = true on the target cluster, timed from
# CREATE SUBSCRIPTION (which creates its slot) until every table is 'r' (ready). Kept (disabled)
# for the CDC phase: its slot then holds the same changes as the others.
log "snapshot: native logical replication, CREATE SUBSCRIPTION ... copy_data = true"
t0=$(now)
tgt native -c "CREATE SUBSCRIPTION bench_native
  CONNECTION 'host=$HOST port=$SRC_PORT dbname=$DB user=postgres application_name=bench_native'
  PUBLICATION sluice_bench WITH (copy_data = true, slot_name = 'bench_native')"
tgt native <<'SQL'
DO $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
  LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
                       WHERE s.subname = 'bench_native')
          AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
                           WHERE s.subname = 'bench_native' AND r.srsubstate <> 'r');
    IF clock_timestamp() - started > interval '30 minutes' THEN
      RAISE EXCEPTION 'initial sync of subscription bench_native did not finish in 30 minutes';
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SQL
ELAPSED=$(secs "$t0" "$(now)")
log "native initial sync: $ELAPSED s"
tgt native -c "ALTER SUBSCRIPTION bench_native DISABLE"
check_native "$SUM_PRELOAD" "native initial sync"
rec section=snapshot id=snap_native system="native logical replication" phase="initial sync (copy_data = true)" \
  events="$preload_total" seconds="$ELAPSED" rss_mb=- check=ok
# The apply worker must be gone before the CDC phase, or it would consume it unmeasured.
src <<'SQL'
DO $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
  WHILE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'bench_native' AND active) LOOP
    IF clock_timestamp() - started > interval '60 s' THEN
      RAISE EXCEPTION 'slot bench_native still active 60 s after DISABLE';
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SQL

# --- 3. slots, CDC phase ----------------------------------------------------------------------
for s in sluice_bench sluice_bench_pg bench_native; do
  src -Atc "SELECT 1 FROM pg_replication_slots WHERE slot_name = '$s'" | grep -q 1 \
    || die "slot $s does not exist after the snapshots"
done
"$PG_BIN/pg_recvlogical" -h "$HOST" -p "$SRC_PORT" -U postgres -d "$DB" --slot=bench_recvlogical \
  --create-slot --plugin=pgoutput
if [ "$BENCH_E2E" = 1 ]; then
  # A second DuckDB pipeline in the same state: the slot copied (same confirmed position),
  # the change log and the warehouse copied while no sluice process runs.
  src -Atc "SELECT slot_name FROM pg_copy_logical_replication_slot('sluice_bench', 'sluice_bench_e2e')" >/dev/null
  mkconfig "$WORK/e2e" sluice_bench_e2e duckdb
  rm -rf "$WORK/e2e" && cp -a "$WORK/sluice" "$WORK/e2e"
fi
log "cdc phase: $cdc_events events"
"$WL" cdc "$SRC_PORT" "$DB" >&2
END=$(src -Atc "SELECT pg_current_wal_lsn()")
SUM_FINAL=$WORK/sum_final
"$WL" checksum "$SRC_PORT" "$DB" public >"$SUM_FINAL"
log "cdc phase done, END=$END"

# --- 4. the same slot contents, one system after the other ----------------------------------------
log "pg_recvlogical --start --endpos=$END"
timed recvlogical "$PG_BIN/pg_recvlogical" -h "$HOST" -p "$SRC_PORT" -U postgres -d "$DB" \
  --slot=bench_recvlogical --start --endpos="$END" --no-loop -f /dev/null \
  -o proto_version=1 -o publication_names=sluice_bench
log "pg_recvlogical: $ELAPSED s"
rec section=cdc id=cdc_recvlogical system="pg_recvlogical" phase="decode (pgoutput to /dev/null)" \
  events="$cdc_events" seconds="$ELAPSED" rss_mb="$RSS_MB" rss_note=client check="n/a (discards)"

log "sluice sync --stage capture --until-caught-up"
timed capture "$SLUICE" sync -c "$CONF" --stage capture --until-caught-up
changes=$(summary_field capture changes)
[ "$changes" = "$cdc_events" ] || die "capture streamed $changes changes, expected $cdc_events"
CAP_S=$ELAPSED CAP_RSS=$RSS_MB
log "capture: $ELAPSED s, peak RSS $RSS_MB MiB"
rec section=cdc id=cdc_capture system="sluice capture" phase="decode + durable append to the change log" \
  events="$cdc_events" seconds="$ELAPSED" rss_mb="$RSS_MB" check="changes counted"

log "sluice sync --stage load --until-caught-up"
timed load "$SLUICE" sync -c "$CONF" --stage load --until-caught-up
LOAD_S=$ELAPSED
log "load: $ELAPSED s, peak RSS $RSS_MB MiB ($(summary_field load batches) batches, $(summary_field load rows) rows)"
check_duckdb "$WORK/sluice/warehouse.duckdb" "$SUM_FINAL" "capture + load into DuckDB"
rec section=cdc id=cdc_load system="sluice load" phase="change log to DuckDB" \
  events="$cdc_events" seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok
rec section=cdc id=cdc_seq system="sluice -> DuckDB" phase="capture + load, sequential" \
  events="$cdc_events" seconds="$(awk -v a="$CAP_S" -v b="$LOAD_S" 'BEGIN{printf "%.2f", a+b}')" \
  rss_mb="$(( CAP_RSS > RSS_MB ? CAP_RSS : RSS_MB ))" check=ok

if [ "$BENCH_E2E" = 1 ]; then
  log "sluice sync --until-caught-up into DuckDB (stage all) on the copy"
  timed e2e "$SLUICE" sync -c "$WORK/e2e.toml" --until-caught-up
  changes=$(summary_field e2e changes)
  [ "$changes" = "$cdc_events" ] || die "stage all streamed $changes changes, expected $cdc_events"
  log "stage all into DuckDB: $ELAPSED s, peak RSS $RSS_MB MiB"
  check_duckdb "$WORK/e2e/warehouse.duckdb" "$SUM_FINAL" "sync into DuckDB"
  rec section=cdc id=cdc_duckdb system="sluice -> DuckDB" phase="sync (capture and load concurrent)" \
    events="$cdc_events" seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok
fi

# Native catch-up: enable the subscription, time until the walsender reports the subscriber's
# apply position at END.
log "native logical replication: ALTER SUBSCRIPTION ... ENABLE, wait for replay_lsn >= $END"
t0=$(now)
tgt native -c "ALTER SUBSCRIPTION bench_native ENABLE"
src <<SQL
DO \$\$
DECLARE started timestamptz := clock_timestamp();
BEGIN
  LOOP
    EXIT WHEN coalesce((SELECT max(replay_lsn) FROM pg_stat_replication
                         WHERE application_name = 'bench_native') >= '$END'::pg_lsn, false);
    IF clock_timestamp() - started > interval '30 minutes' THEN
      RAISE EXCEPTION 'subscription bench_native did not catch up in 30 minutes';
    END IF;
    PERFORM pg_sleep(0.01);
  END LOOP;
END \$\$;
SQL
ELAPSED=$(secs "$t0" "$(now)")
log "native catch-up: $ELAPSED s"
tgt native -c "ALTER SUBSCRIPTION bench_native DISABLE"
check_native "$SUM_FINAL" "native catch-up"
rec section=cdc id=cdc_native system="native logical replication" phase="subscription catch-up (apply)" \
  events="$cdc_events" seconds="$ELAPSED" rss_mb=- rss_note=server check=ok

log "sluice sync --until-caught-up into PostgreSQL"
timed cdc_pg "$SLUICE" sync -c "$CONF_PG" --until-caught-up
changes=$(summary_field cdc_pg changes)
[ "$changes" = "$cdc_events" ] || die "sync into PostgreSQL streamed $changes changes, expected $cdc_events"
log "sync into PostgreSQL: $ELAPSED s, peak RSS $RSS_MB MiB"
check_pg sluice_pg "$SUM_FINAL" "sync into PostgreSQL"
rec section=cdc id=cdc_pg system="sluice -> PostgreSQL" phase="sync (capture and load concurrent)" \
  events="$cdc_events" seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok

# --- 5. freshness under a steady load ----------------------------------------------------------------
# A dedicated insert-only table, so every row is one change with its own source commit time.
# The generator commits asynchronously (a 2-core machine cannot fsync 5,000 commits a second);
# a logical walsender only sends flushed WAL, so the source's WAL writer runs every 10 ms
# instead of 200 ms to keep that wait out of the figures.
FRESH_COLS="id, customer_id, qty, price, status, note, created_at"
FRESH_DDL="CREATE TABLE bench_fresh (
  id bigserial PRIMARY KEY, customer_id bigint NOT NULL, qty int NOT NULL,
  price numeric(12,2) NOT NULL, status text NOT NULL, note text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp())"
fresh_sum() { # PORT DB SCHEMA.TABLE
  pg_ "$1" "$2" -tA -F ' ' -c "SET TimeZone = 'UTC'" -c "SELECT 'bench_fresh', count(*),
    coalesce(sum(hashtext(concat_ws('|', id, customer_id, qty, price, status, note,
      extract(epoch FROM created_at)))::bigint), 0) FROM $3"
}
metric_sum() { # FILE METRIC [LABEL_FILTER]
  awk -v m="$2" -v f="${3:-}" '$1 == m || index($1, m "{") == 1 { if (f == "" || index($1, f) > 0) s += $NF } END { printf "%.6f", s }' "$1"
}
# Upper bound (ms) of the histogram bucket that holds quantile Q: the /metrics view of latency.
hist_quantile() { # FILE HISTOGRAM Q
  awk -v m="$2_bucket{" -v q="$3" 'index($0, m) == 1 {
      le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le); n++; bound[n] = le; cum[n] = $NF }
    END { for (i = 1; i <= n; i++) if (cum[i] >= q * cum[n]) {
            if (bound[i] == "+Inf") print "inf"; else printf "%g", bound[i] * 1000; exit } }' "$1"
}

fresh_run() { # TARGET(duckdb|postgres)
  local target=$1 name=fresh_$1 mport t0 ready=0 n_src n_captured n_applied lag i c
  mport=$(free_port)
  if [ "$target" = duckdb ]; then
    mkconfig "$WORK/$name" "sluice_$name" duckdb public.bench_fresh sluice_fresh
  else
    pg_ "$TGT_PORT" postgres -c "CREATE DATABASE fresh_pg"
    mkconfig "$WORK/$name" "sluice_$name" postgres:fresh_pg public.bench_fresh sluice_fresh
  fi
  sed -i -E "s/^flush_interval_ms = .*/flush_interval_ms = $FRESH_FLUSH_MS/" "$WORK/$name.toml"
  src -c "TRUNCATE bench_fresh RESTART IDENTITY"
  log "freshness into $target: sluice sync (flush_interval_ms = $FRESH_FLUSH_MS), ${FRESH_RATE} changes/s for ${FRESH_SECONDS} s"
  /usr/bin/time -o "$WORK/$name.time" -f '%M' "$SLUICE" sync -c "$WORK/$name.toml" \
    --metrics-listen "127.0.0.1:$mport" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  CHILD_PID=$!
  # Ready: capture connected, target answering, the (empty) snapshot done.
  for i in $(seq 1 600); do
    kill -0 "$CHILD_PID" 2>/dev/null || { tail -n 20 "$WORK/$name.err" >&2; die "sync for $name exited early"; }
    if curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 \
      && curl -sf "http://127.0.0.1:$mport/metrics" >"$WORK/$name.prom" 2>/dev/null \
      && [ "$(metric_sum "$WORK/$name.prom" sluice_snapshot_tables_remaining)" = 0.000000 ]; then
      ready=1; break
    fi
    sleep 0.1
  done
  [ "$ready" = 1 ] || die "sync for $name not ready after 60 s"
  sleep 1
  PGOPTIONS='-c synchronous_commit=off' "$PG_BIN/pgbench" -n -h "$HOST" -p "$SRC_PORT" -U postgres \
    -c 4 -j 1 -R "$((FRESH_RATE / FRESH_TXN))" -T "$FRESH_SECONDS" -f "$WORK/fresh.sql" "$DB" \
    >"$WORK/$name.pgbench" 2>&1 || { cat "$WORK/$name.pgbench" >&2; die "pgbench for $name"; }
  n_src=$(src -Atc "SELECT count(*) FROM bench_fresh")
  # Drained: every generated row captured, and everything captured committed to the target
  # (apply lag 0). Not sluice_changes_applied_total: it was seen to stay one source
  # transaction short of the rows in the target.
  t0=$(now)
  while :; do
    curl -sf "http://127.0.0.1:$mport/metrics" >"$WORK/$name.prom" || die "no /metrics from $name"
    n_captured=$(metric_sum "$WORK/$name.prom" sluice_changes_captured_total 'table="public.bench_fresh"')
    lag=$(metric_sum "$WORK/$name.prom" sluice_apply_lag_bytes)
    awk -v a="$n_captured" -v b="$n_src" -v l="$lag" 'BEGIN{exit !(a >= b && l == 0)}' && break
    [ "$(secs "$t0" "$(now)" | cut -d. -f1)" -lt 300 ] \
      || die "$name: $n_captured of $n_src rows captured, apply lag $lag bytes after 300 s"
    sleep 0.2
  done
  n_applied=$(metric_sum "$WORK/$name.prom" sluice_changes_applied_total 'table="public.bench_fresh"')
  stop_child "$CHILD_PID" || { tail -n 20 "$WORK/$name.err" >&2; die "sync for $name did not stop cleanly"; }
  CHILD_PID=
  RSS_MB=$(awk 'END{printf "%.0f", $1/1024}' "$WORK/$name.time")

  # Check, then latency per row from the target's own columns.
  fresh_sum "$SRC_PORT" "$DB" public.bench_fresh >"$WORK/sum_fresh_src"
  if [ "$target" = duckdb ]; then
    rm -rf "$WORK/check_csv"
    export_duckdb "$WORK/$name/warehouse.duckdb" "$WORK/check_csv" "bench_fresh:$FRESH_COLS"
    tgt bench_check -c "TRUNCATE bench_fresh" -c "\\copy bench_fresh FROM '$WORK/check_csv/bench_fresh.csv' WITH (FORMAT csv)"
    fresh_sum "$TGT_PORT" bench_check public.bench_fresh >"$WORK/sum_actual"
    # synced_at is the loader transaction's start (DuckDB's current_timestamp).
    "$PY" - "$WORK/$name/warehouse.duckdb" >"$WORK/$name.lat" <<'PYEOF'
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
r = con.execute("""
  SELECT count(*), quantile_cont(ms, 0.5), quantile_cont(ms, 0.95), quantile_cont(ms, 0.99),
         max(ms), avg(ms)
    FROM (SELECT (epoch_us(_sluice_synced_at) - epoch_us(_sluice_commit_ts)) / 1000.0 AS ms
            FROM raw.bench_fresh)""").fetchone()
print(" ".join(f"{x:.1f}" if isinstance(x, float) else str(x) for x in r))
PYEOF
  else
    fresh_sum "$TGT_PORT" fresh_pg "raw.bench_fresh WHERE NOT _sluice_deleted" >"$WORK/sum_actual"
    # To the target's commit (track_commit_timestamp), and to synced_at (transaction start).
    for c in "pg_xact_commit_timestamp(xmin)" "_sluice_synced_at"; do
      tgt fresh_pg -tA -F ' ' -c "SELECT count(*),
        round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
        round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1),
        round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
        round(max(ms)::numeric, 1), round(avg(ms)::numeric, 1)
        FROM (SELECT extract(epoch FROM ($c - _sluice_commit_ts)) * 1000 AS ms FROM raw.bench_fresh) x"
    done >"$WORK/$name.lat"
  fi
  compare_sums "$WORK/sum_fresh_src" "$WORK/sum_actual" "freshness into $target"
  local lat sync_lat pgb_tps pgb_lag lat_sum lat_n bd_sum bd_n batches
  lat=$(head -1 "$WORK/$name.lat")
  sync_lat=$(sed -n 2p "$WORK/$name.lat")
  set -- $lat
  [ "$1" = "$n_src" ] || die "$name: latency over $1 rows, the source has $n_src"
  pgb_tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/$name.pgbench")
  pgb_lag=$(sed -nE 's/^rate limit schedule lag: avg ([0-9.]+) .*/\1/p' "$WORK/$name.pgbench")
  lat_sum=$(metric_sum "$WORK/$name.prom" sluice_end_to_end_latency_seconds_sum)
  lat_n=$(metric_sum "$WORK/$name.prom" sluice_end_to_end_latency_seconds_count)
  bd_sum=$(metric_sum "$WORK/$name.prom" sluice_batch_duration_seconds_sum)
  bd_n=$(metric_sum "$WORK/$name.prom" sluice_batch_duration_seconds_count)
  batches=$(metric_sum "$WORK/$name.prom" sluice_batches_applied_total)
  rec section=fresh id="fresh_$target" system="sluice -> $([ "$target" = duckdb ] && echo DuckDB || echo PostgreSQL)" \
    rows="$n_src" seconds="$FRESH_SECONDS" txn="$FRESH_TXN" gen_tps="${pgb_tps:-}" gen_lag_ms="${pgb_lag:-}" \
    basis="$([ "$target" = duckdb ] && echo synced_at || echo target_commit)" \
    p50="$2" p95="$3" p99="$4" max="$5" mean="$6" \
    sync_p50="$(echo "$sync_lat" | awk '{print $2}')" sync_p99="$(echo "$sync_lat" | awk '{print $4}')" \
    sync_mean="$(echo "$sync_lat" | awk '{print $6}')" \
    metrics_mean_ms="$(awk -v s="$lat_sum" -v n="$lat_n" 'BEGIN{ if (n > 0) printf "%.1f", 1000*s/n }')" \
    batch_mean_ms="$(awk -v s="$bd_sum" -v n="$bd_n" 'BEGIN{ if (n > 0) printf "%.1f", 1000*s/n }')" \
    hist_p50_ms="$(hist_quantile "$WORK/$name.prom" sluice_end_to_end_latency_seconds 0.5)" \
    hist_p99_ms="$(hist_quantile "$WORK/$name.prom" sluice_end_to_end_latency_seconds 0.99)" \
    batches="${batches%.*}" applied_metric="${n_applied%.*}" rss_mb="$RSS_MB" check=ok
  log "freshness into $target: $n_src rows; ms p50 $2 p95 $3 p99 $4 max $5; peak RSS $RSS_MB MiB"
}

if [ "$FRESH_SECONDS" -gt 0 ]; then
  # The measured slots are done: drop them so the source keeps no WAL for them.
  for s in sluice_bench sluice_bench_pg sluice_bench_e2e bench_recvlogical; do
    src -Atc "SELECT pg_drop_replication_slot('$s') FROM pg_replication_slots WHERE slot_name = '$s'" >/dev/null
  done
  src -c "$FRESH_DDL"
  tgt bench_check -c "${FRESH_DDL/CREATE TABLE/CREATE UNLOGGED TABLE}"
  src -c "ALTER SYSTEM SET wal_writer_delay = '10ms'" -c "SELECT pg_reload_conf()" >/dev/null
  {
    echo "INSERT INTO bench_fresh (customer_id, qty, price, status, note)"
    echo "  SELECT (random() * 100000)::bigint, g, (random() * 1000)::numeric(12,2), 'new', 'freshness probe ' || g"
    echo "    FROM generate_series(1, $FRESH_TXN) g;"
  } >"$WORK/fresh.sql"
  fresh_run duckdb
  fresh_run postgres
fi

# --- 6. one large source transaction ----------------------------------------------------------------
# LARGE_ROWS inserts of 200-byte rows, then updates of rows inserted at its start and deletes in
# its middle, all in one transaction; synced into DuckDB and into PostgreSQL. What counts is the
# peak RSS: it must not grow with the transaction.
large_sum() { # psql-or-duckdb SQL over "large"
  echo "SELECT count(*)::text || ' ' || md5(string_agg(id::text || ':' || payload, ',' ORDER BY id)) FROM $1"
}
large_check() { # ID SYSTEM
  local got
  if [ "$1" = large_duckdb ]; then
    got=$("$PY" - "$WORK/large_duck/warehouse.duckdb" "$(large_sum "raw.bench_large WHERE NOT _sluice_deleted")" <<'PYEOF'
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute(sys.argv[2]).fetchone()[0])
PYEOF
)
  else
    got=$(tgt sluice_large -Atc "$(large_sum "raw.bench_large WHERE NOT _sluice_deleted")")
  fi
  [ "$got" = "$LARGE_SUM" ] || die "$2: target holds $got, the source $LARGE_SUM"
  log "check large transaction into $2: target matches source (${got%% *} rows)"
}
if [ "$LARGE_ROWS" -gt 0 ]; then
  src -c "CREATE TABLE bench_large (id bigint PRIMARY KEY, payload text NOT NULL)"
  pg_ "$TGT_PORT" postgres -c "CREATE DATABASE sluice_large"
  mkconfig "$WORK/large_duck" sluice_large duckdb public.bench_large sluice_large
  mkconfig "$WORK/large_pg" sluice_large_pg postgres:sluice_large public.bench_large sluice_large_pg
  for c in large_duck large_pg; do
    "$SLUICE" sync -c "$WORK/$c.toml" --until-caught-up >/dev/null 2>"$WORK/$c.setup.err" || die "$c setup"
  done
  log "one transaction of $LARGE_ROWS rows"
  src <<SQL
BEGIN;
INSERT INTO bench_large SELECT g, rpad(md5(g::text), 190, md5((g + 1)::text)) FROM generate_series(1, $LARGE_ROWS) g;
UPDATE bench_large SET payload = 'updated at the end' WHERE id <= $((LARGE_ROWS / 1000));
DELETE FROM bench_large WHERE id BETWEEN $((LARGE_ROWS / 2 + 1)) AND $((LARGE_ROWS / 2 + LARGE_ROWS / 1000));
COMMIT;
SQL
  LARGE_SUM=$(src -Atc "$(large_sum bench_large)")
  large_wal=$(src -Atc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint / 1048576 FROM pg_replication_slots WHERE slot_name = 'sluice_large'")
  for target in duckdb postgres; do
    if [ "$target" = duckdb ]; then id=large_duckdb conf=large_duck system="sluice -> DuckDB"; else id=large_pg conf=large_pg system="sluice -> PostgreSQL"; fi
    timed "$id" "$SLUICE" sync -c "$WORK/$conf.toml" --until-caught-up
    log "large transaction into $target: $ELAPSED s, peak RSS $RSS_MB MiB"
    large_check "$id" "$system"
    rec section=large id="$id" system="$system" rows="$LARGE_ROWS" wal_mb="$large_wal" \
      seconds="$ELAPSED" rss_mb="$RSS_MB" check=ok
  done
  for s in sluice_large sluice_large_pg; do
    src -Atc "SELECT pg_drop_replication_slot('$s') FROM pg_replication_slots WHERE slot_name = '$s'" >/dev/null
  done
fi

# --- 6b. Snowflake, on its stand-in -----------------------------------------------------------------
# fakesnow (installed by `make bench`) through the same REST protocol and Parquet staging as the
# real service: SF_ROWS snapshot rows, then SF_CDC inserts plus a fifth updates and a tenth
# deletes in transactions of 100, each synced with `--until-caught-up`. The stand-in runs
# DuckDB in one Python process on the same 2 cores, so these figures are the stand-in's, not
# Snowflake's.
SF_ROWS=${BENCH_SF_ROWS:-20000}
SF_CDC=${BENCH_SF_CDC:-10000}
SF_VENV=${SLUICE_FAKESNOW_VENV:-$HOME/.cache/sluice/venv-fakesnow}
if [ "$SF_ROWS" -gt 0 ] && [ -x "$SF_VENV/bin/python" ]; then
  SF_PORT=$(free_port)
  "$SF_VENV/bin/python" -m fakesnow -s -p "$SF_PORT" --host 127.0.0.1 >"$WORK/fakesnow.log" 2>&1 &
  SF_PID=$!
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$SF_PORT") 2>/dev/null && break; sleep 0.1; done
  src -c "CREATE TABLE bench_sf (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), at timestamptz NOT NULL)" \
    -c "INSERT INTO bench_sf SELECT g, 'customer ' || g, g % 1000 + 0.25, now() FROM generate_series(1, $SF_ROWS) g"
  mkconfig "$WORK/sf" sluice_sf duckdb public.bench_sf sluice_sf
  python3 - "$WORK/sf.toml" "$SF_PORT" <<'PYEOF'
import re, sys
path, port = sys.argv[1], sys.argv[2]
text = open(path).read()
target = ('[target]\nkind = "snowflake"\naccount = "bench"\nuser = "LOADER"\n'
          'password = "not-checked-by-the-stand-in"\ndatabase = "analytics"\nschema = "raw"\n'
          f'endpoint = "http://127.0.0.1:{port}"\n\n')
text = re.sub(r"\[target\]\n.*?\n\n(?=\[)", lambda _: target, text, flags=re.S)
open(path, "w").write(text)
PYEOF
  log "snowflake stand-in: snapshot of $SF_ROWS rows"
  timed sf_snapshot "$SLUICE" sync -c "$WORK/sf.toml" --until-caught-up
  rec section=standin id=sf_snapshot system="sluice -> Snowflake stand-in (fakesnow)" phase="snapshot" \
    events="$SF_ROWS" seconds="$ELAPSED" batches="$(summary_field sf_snapshot batches)" rss_mb="$RSS_MB"
  log "snowflake stand-in snapshot: $ELAPSED s, $(summary_field sf_snapshot batches) batches"
  src <<SQL
DO \$\$ BEGIN
  FOR r IN 0 .. $((SF_CDC / 100 - 1)) LOOP
    INSERT INTO bench_sf SELECT g, 'new ' || g, 1.5, now() FROM generate_series($SF_ROWS + 1 + r * 100, $SF_ROWS + (r + 1) * 100) g;
    UPDATE bench_sf SET amount = amount + 1 WHERE id BETWEEN 1 + r * 20 AND (r + 1) * 20;
    DELETE FROM bench_sf WHERE id BETWEEN $SF_ROWS / 2 + 1 + r * 10 AND $SF_ROWS / 2 + (r + 1) * 10;
    COMMIT;
  END LOOP;
END \$\$;
SQL
  sf_events=$((SF_CDC + SF_CDC / 5 + SF_CDC / 10))
  log "snowflake stand-in: $sf_events changes"
  timed sf_cdc "$SLUICE" sync -c "$WORK/sf.toml" --until-caught-up
  "$SLUICE" verify -c "$WORK/sf.toml" >"$WORK/sf.verify" 2>&1 ||
    die "Snowflake stand-in: sluice verify found a difference (see $WORK/sf.verify)"
  log "check Snowflake stand-in: sluice verify finds the target equal to the source"
  rec section=standin id=sf_cdc system="sluice -> Snowflake stand-in (fakesnow)" phase="changes" \
    events="$sf_events" seconds="$ELAPSED" batches="$(summary_field sf_cdc batches)" rss_mb="$RSS_MB"
  log "snowflake stand-in changes: $ELAPSED s, $(summary_field sf_cdc batches) batches"
  kill "$SF_PID" 2>/dev/null || true
  wait "$SF_PID" 2>/dev/null || true
  src -Atc "SELECT pg_drop_replication_slot('sluice_sf')" >/dev/null
else
  log "snowflake stand-in: skipped (BENCH_SF_ROWS=0, or no fakesnow in $SF_VENV: make bench installs it)"
fi

# --- 7. report -------------------------------------------------------------------------------------
if [ -n "${SLUICE_COMMIT:-}" ]; then
  commit=$SLUICE_COMMIT dirty=
else
  commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -qv '^?? ' && echo ", with uncommitted changes in the tree" || true)
fi
{
  echo "workload=WL_ROWS=$WL_ROWS WL_MOVES=${WL_MOVES:-$((WL_ROWS / 2))} WL_CDC=$WL_CDC WL_TXN=$WL_TXN WL_DRIVER=${WL_DRIVER:-sql}"
  echo "expected=$(tr '\n' ' ' <"$WORK/expected" | sed 's/ *$//')"
  echo "binary=$("$SLUICE" --version 2>/dev/null || echo sluice) ($SLUICE_SRC), commit $commit$dirty"
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine=$(nproc) CPUs, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')"
  echo "load=before the run $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "duration=$(secs "$T_START" "$(now)")"
  echo "fresh=${FRESH_SECONDS} s per target at ${FRESH_RATE} changes/s in transactions of ${FRESH_TXN}, flush_interval_ms = ${FRESH_FLUSH_MS}"
} >"$WORK/meta.txt"
mkdir -p "$(dirname "$BENCH_OUT")"
"$PY" "$REPO/tests/bench/report.py" "$RESULTS" "$WORK/meta.txt" "$BENCH_OUT"
echo
cat "$BENCH_OUT"
log "written to $BENCH_OUT, ${BENCH_OUT%.md}.png and ${BENCH_OUT%.md}.tsv"
