#!/usr/bin/env bash
# Sluice throughput benchmark on the shared workload (../shared/bench), compared with
# pg_recvlogical decoding the same slot contents. What it measures: tests/bench/README.md.
#
# Usage: tests/bench/run.sh          (from the repository root; `make bench` runs it)
# Env:   WL_ROWS, WL_CDC, WL_TXN, WL_MOVES, WL_DRIVER   workload sizes (see workload.sh)
#        SLUICE_BIN     sluice binary            (default ${CARGO_TARGET_DIR:-target}/release/sluice)
#        WORKLOAD_DIR   workload.sh + .sql       (default ../shared/bench, else /work/shared/bench)
#        BENCH_DIR      scratch parent directory (default /tmp/sluice-bench)
#        BENCH_OUT      results file             (default tests/bench/results/latest.md)
#        BENCH_E2E      1 (default): also time a fresh `sync` (stage all) on a copy; 0 to skip
#        BENCH_KEEP     1: keep the scratch directory after a successful run
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
rate() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s > 0) printf "%.0f", n/s; else print "n/a" }'; }

# --- prerequisites -----------------------------------------------------------------------
[ -x "$SLUICE_BIN" ] || die "no sluice binary at $SLUICE_BIN (cargo build --release -p sluice, or set SLUICE_BIN)"
SLUICE_BIN=$(cd "$(dirname "$SLUICE_BIN")" && pwd)/$(basename "$SLUICE_BIN")
[ -x "$WL" ] || die "no workload script at $WL"
for b in psql pg_recvlogical initdb pg_ctl; do
  [ -x "$PG_BIN/$b" ] || die "missing $PG_BIN/$b (PostgreSQL 15 binaries)"
done
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time (peak RSS)"
  apt-get install -y -q time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
fi
if ! "$PY" -c 'import duckdb' 2>/dev/null; then
  log "installing the duckdb Python package (result check)"
  "$PY" -m pip install -q duckdb==1.5.0 pytz
fi

# --- scratch directory, cluster, cleanup ---------------------------------------------------
mkdir -p "${BENCH_DIR:-/tmp/sluice-bench}"
WORK=$(mktemp -d "${BENCH_DIR:-/tmp/sluice-bench}/run.XXXXXX")
PGDATA_DIR=$WORK/pg
CLUSTER_STARTED=0
CHILD_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  [ "$CLUSTER_STARTED" = 1 ] && "$WL" cluster-stop "$PGDATA_DIR" >/dev/null 2>&1 || true
  if [ "$rc" = 0 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    log "scratch directory kept: $WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PORT=$(free_port)
psql_() { PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U postgres -d "$DB" "$@"; }
URL="postgres://postgres@$HOST:$PORT/$DB"

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

# Result check. Nothing may write to the source between the snapshot and the last measured
# run (every slot must hold the same changes, and a slot would have to decode the check's own
# writes): each check exports the warehouse (non-deleted rows, the source's columns) to CSV
# and saves the source's checksum (read only); verify_targets copies the CSVs into a scratch
# schema of the source at the end and compares `workload.sh checksum` outputs exactly.
CHECKS=()
export_target() { # WAREHOUSE NAME LABEL
  local warehouse=$1 name=$2 label=$3
  "$PY" - "$warehouse" "$WORK/check_$name" <<'PYEOF'
import os, sys, duckdb
warehouse, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
con = duckdb.connect(warehouse, read_only=True)
con.execute("SET TimeZone = 'UTC'")
cols = {
    "orders": "id, customer_id, product_id, qty, price, status, created_at, updated_at, note, payload",
    "inventory_movements": "id, product_id, warehouse_id, delta, reason, moved_at",
}
for table, c in cols.items():
    con.execute(
        f"COPY (SELECT {c} FROM raw.{table} WHERE NOT _sluice_deleted) "
        f"TO '{out}/{table}.csv' (FORMAT csv, HEADER false)"
    )
PYEOF
  "$WL" checksum "$PORT" "$DB" public >"$WORK/check_$name/source.sum"
  CHECKS+=("$name:$label")
}

verify_targets() {
  local c name label src dst
  for c in "${CHECKS[@]}"; do
    name=${c%%:*} label=${c#*:}
    psql_ <<SQL
DROP SCHEMA IF EXISTS bench_check CASCADE;
CREATE SCHEMA bench_check;
CREATE TABLE bench_check.orders (LIKE public.orders);
CREATE TABLE bench_check.inventory_movements (LIKE public.inventory_movements);
\copy bench_check.orders FROM '$WORK/check_$name/orders.csv' WITH (FORMAT csv)
\copy bench_check.inventory_movements FROM '$WORK/check_$name/inventory_movements.csv' WITH (FORMAT csv)
SQL
    src=$(cat "$WORK/check_$name/source.sum")
    dst=$("$WL" checksum "$PORT" "$DB" bench_check)
    if [ "$src" != "$dst" ]; then
      log "checksum mismatch after $label"
      printf 'source (public):\n%s\ntarget (%s):\n%s\n' "$src" "$label" "$dst" >&2
      die "target differs from source after $label"
    fi
    log "check after $label: target matches source ($(echo "$src" | awk '{printf "%s%s=%s rows", (NR>1?", ":""), $1, $2}'))"
  done
  psql_ -c "DROP SCHEMA bench_check CASCADE"
}

ROWS_MD=()
row() { # SYSTEM PHASE EVENTS SECONDS RATE RATIO RSS
  ROWS_MD+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |")
}

# --- 1. source cluster -------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "sizes: WL_ROWS=$WL_ROWS WL_CDC=$WL_CDC WL_TXN=$WL_TXN; sluice: $SLUICE_BIN; scratch: $WORK"
"$WL" expected >"$WORK/expected"
"$WL" cluster-init "$PGDATA_DIR" "$PORT" >&2
CLUSTER_STARTED=1
"$WL" schema "$PORT" "$DB" >&2
"$WL" preload "$PORT" "$DB" >&2
eval "$(tr ' ' '\n' <"$WORK/expected" | grep '=')"
: "${preload_total:?}" "${cdc_events:?}"

# --- 2. snapshot ---------------------------------------------------------------------------
mkconfig() { # DIR SLOT
  "$SLUICE_BIN" init --source-url "$URL" --tables public.orders,public.inventory_movements \
    --data-dir "$1" -c "$1.toml" >/dev/null
  sed -i -E "s/^slot = .*/slot = \"$2\"/; s/^publication = .*/publication = \"sluice_bench\"/" "$1.toml"
}
mkconfig "$WORK/sluice" sluice_bench
CONF=$WORK/sluice.toml
log "snapshot: sluice sync --until-caught-up ($preload_total rows)"
timed snapshot "$SLUICE_BIN" sync -c "$CONF" --until-caught-up
snap_rows=$(summary_field snapshot snapshot)
[ "$snap_rows" = "$preload_total" ] || die "snapshot copied $snap_rows rows, expected $preload_total"
row sluice "snapshot (sync --until-caught-up)" "$preload_total" "$ELAPSED" "$(rate "$preload_total" "$ELAPSED")" "-" "$RSS_MB MiB"
log "snapshot: $ELAPSED s, peak RSS $RSS_MB MiB"
export_target "$WORK/sluice/warehouse.duckdb" snapshot "snapshot"

# --- 3. slots, CDC phase ----------------------------------------------------------------------
psql_ -Atc "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'sluice_bench'" | grep -q 1 \
  || die "sluice's slot sluice_bench does not exist after the snapshot"
"$PG_BIN/pg_recvlogical" -h "$HOST" -p "$PORT" -U postgres -d "$DB" --slot=bench_recvlogical \
  --create-slot --plugin=pgoutput
if [ "$BENCH_E2E" = 1 ]; then
  # A second sluice pipeline in the same state: the slot copied (same confirmed position),
  # the change log and the warehouse copied while no sluice process runs.
  psql_ -Atc "SELECT slot_name FROM pg_copy_logical_replication_slot('sluice_bench', 'sluice_bench_e2e')" >/dev/null
  mkconfig "$WORK/e2e" sluice_bench_e2e
  rm -rf "$WORK/e2e" && cp -a "$WORK/sluice" "$WORK/e2e"
fi
log "cdc phase: $cdc_events events"
"$WL" cdc "$PORT" "$DB" >&2
END=$(psql_ -Atc "SELECT pg_current_wal_lsn()")
log "cdc phase done, END=$END"

# --- 4. decode the same slot contents, one system after the other ----------------------------
log "pg_recvlogical --start --endpos=$END"
timed recvlogical "$PG_BIN/pg_recvlogical" -h "$HOST" -p "$PORT" -U postgres -d "$DB" \
  --slot=bench_recvlogical --start --endpos="$END" --no-loop -f /dev/null \
  -o proto_version=1 -o publication_names=sluice_bench
RECV_S=$ELAPSED RECV_RATE=$(rate "$cdc_events" "$ELAPSED")
row pg_recvlogical "decode (pgoutput to /dev/null)" "$cdc_events" "$ELAPSED" "$RECV_RATE" "1.00" "$RSS_MB MiB (client)"
log "pg_recvlogical: $ELAPSED s"

ratio() { awk -v r="$1" -v b="$RECV_RATE" 'BEGIN{ if (b > 0) printf "%.2f", r/b; else print "n/a" }'; }

log "sluice sync --stage capture --until-caught-up"
timed capture "$SLUICE_BIN" sync -c "$CONF" --stage capture --until-caught-up
changes=$(summary_field capture changes)
[ "$changes" = "$cdc_events" ] || die "capture streamed $changes changes, expected $cdc_events"
CAP_S=$ELAPSED CAP_RSS=$RSS_MB
r=$(rate "$cdc_events" "$ELAPSED")
row sluice "capture (decode + durable append)" "$cdc_events" "$ELAPSED" "$r" "$(ratio "$r")" "$RSS_MB MiB"
log "capture: $ELAPSED s, peak RSS $RSS_MB MiB"

log "sluice sync --stage load --until-caught-up"
timed load "$SLUICE_BIN" sync -c "$CONF" --stage load --until-caught-up
LOAD_S=$ELAPSED
r=$(rate "$cdc_events" "$ELAPSED")
row sluice "load (change log to DuckDB)" "$cdc_events" "$ELAPSED" "$r" "$(ratio "$r")" "$RSS_MB MiB"
log "load: $ELAPSED s, peak RSS $RSS_MB MiB ($(summary_field load batches) batches, $(summary_field load rows) rows)"

sum_s=$(awk -v a="$CAP_S" -v b="$LOAD_S" 'BEGIN{printf "%.2f", a+b}')
r=$(rate "$cdc_events" "$sum_s")
max_rss=$(( CAP_RSS > RSS_MB ? CAP_RSS : RSS_MB ))
row sluice "end to end (capture + load, sequential)" "$cdc_events" "$sum_s" "$r" "$(ratio "$r")" "$max_rss MiB"
export_target "$WORK/sluice/warehouse.duckdb" load "capture + load"

if [ "$BENCH_E2E" = 1 ]; then
  log "sluice sync --until-caught-up (stage all) on the copy"
  timed e2e "$SLUICE_BIN" sync -c "$WORK/e2e.toml" --until-caught-up
  changes=$(summary_field e2e changes)
  [ "$changes" = "$cdc_events" ] || die "stage all streamed $changes changes, expected $cdc_events"
  r=$(rate "$cdc_events" "$ELAPSED")
  row sluice "end to end (sync, capture and load concurrent)" "$cdc_events" "$ELAPSED" "$r" "$(ratio "$r")" "$RSS_MB MiB"
  log "stage all: $ELAPSED s, peak RSS $RSS_MB MiB"
  export_target "$WORK/e2e/warehouse.duckdb" e2e "stage all"
fi

verify_targets

# --- 7. report ------------------------------------------------------------------------------
sluice_version=$("$SLUICE_BIN" --version 2>/dev/null || echo sluice)
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "# Sluice benchmark"
  echo
  echo "Workload: WL_ROWS=$WL_ROWS WL_MOVES=${WL_MOVES:-$((WL_ROWS / 2))} WL_CDC=$WL_CDC WL_TXN=$WL_TXN WL_DRIVER=${WL_DRIVER:-sql}" \
       "($(tr '\n' ' ' <"$WORK/expected" | sed 's/ *$//'))."
  echo "Binary: $sluice_version ($SLUICE_BIN), commit $commit; $(date -u +%Y-%m-%dT%H:%MZ);" \
       "$(nproc) CPUs, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')."
  echo "Load average before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)."
  echo "Every CDC phase decodes the same slot contents (the CDC phase, $cdc_events events), one after the other."
  echo "Target checked against the source with workload.sh checksum after the snapshot and after each load."
  echo
  echo "| system | phase | events | seconds | events/s | ratio vs pg_recvlogical | peak RSS |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS_MD[@]}"
} >"$WORK/result.md"
mkdir -p "$(dirname "$BENCH_OUT")"
cp "$WORK/result.md" "$BENCH_OUT"
echo
cat "$WORK/result.md"
log "written to $BENCH_OUT"
