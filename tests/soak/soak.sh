#!/usr/bin/env bash
# Soak test behind `make soak`: a throwaway PostgreSQL 15 with a mixed workload (inserts,
# updates, deletes, TOAST-sized values changed and left unchanged, a composite key, an
# occasional large transaction; five tables) for SOAK_SECONDS, while `sluice sync` into DuckDB
# is SIGKILLed every 20-40 s (random) and started again, and the source is restarted every few
# minutes, alternating `pg_ctl restart -m fast` and `-m immediate` (a crash and recovery).
# Then the workload stops, `sluice sync --until-caught-up` and `sluice verify` must exit 0.
# Prints how many SIGKILLs and source restarts the pipeline survived.
#
# Env: SOAK_SECONDS         length of the chaos phase (default 600)
#      SOAK_KILL_MIN/MAX    seconds between SIGKILLs of sluice sync (default 20 and 40)
#      SOAK_RESTART_EVERY   seconds between source restarts (default 120)
#      SLUICE_BIN           the sluice binary (default ${CARGO_TARGET_DIR:-target}/release/sluice)
#      SOAK_DIR             scratch parent directory (default /tmp/sluice-soak)
#      SOAK_KEEP            1: keep the scratch directory after a successful run
# Only processes this script started are stopped, by PID; the scratch directory (cluster,
# change log, warehouse, logs) is kept when the run fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_TOTAL=${SOAK_SECONDS:-600}
KILL_MIN=${SOAK_KILL_MIN:-20}
KILL_MAX=${SOAK_KILL_MAX:-40}
RESTART_EVERY=${SOAK_RESTART_EVERY:-120}
SLUICE=${SLUICE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice}
PG_BIN=/usr/lib/postgresql/15/bin

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ -x "$SLUICE" ] || die "no sluice binary at $SLUICE (make release, or set SLUICE_BIN)"
for b in initdb pg_ctl psql; do
  [ -x "$PG_BIN/$b" ] || die "missing $PG_BIN/$b (PostgreSQL 15 binaries)"
done
[ "$KILL_MAX" -ge "$KILL_MIN" ] || die "SOAK_KILL_MAX must be at least SOAK_KILL_MIN"

mkdir -p "${SOAK_DIR:-/tmp/sluice-soak}"
WORK=$(mktemp -d "${SOAK_DIR:-/tmp/sluice-soak}/run.XXXXXX")
PGDATA=$WORK/pg
SYNC_PID=
WORKLOAD_PID=
PG_STARTED=0

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_ctl_() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "$SYNC_PID" "$WORKLOAD_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  [ "$PG_STARTED" = 1 ] && pg_ctl_ -m immediate -w stop >/dev/null 2>&1 || true
  if [ "$rc" = 0 ] && [ "${SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    log "scratch directory kept: $WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the source --------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
log "starting PostgreSQL 15 on 127.0.0.1:$PORT in $WORK"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log"
as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
wal_sender_timeout = '10s'
log_min_messages = warning
CONF
pg_ctl_ -l "$WORK/postgres.log" -w start >/dev/null
PG_STARTED=1
psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE soak"

psql_ -d soak <<'SQL'
CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(14,2) NOT NULL,
                       updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, account_id int NOT NULL, status text NOT NULL,
                     total numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_lines (order_id bigint, line_no int, sku text NOT NULL, qty int NOT NULL,
                          PRIMARY KEY (order_id, line_no));
-- body is stored out of line, uncompressed: every value is a TOAST value, and an update that
-- leaves it alone sends the "unchanged TOAST" marker.
CREATE TABLE documents (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL,
                        meta jsonb, revision int NOT NULL DEFAULT 1);
ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, payload jsonb,
                     at timestamptz NOT NULL DEFAULT clock_timestamp());

INSERT INTO accounts SELECT g, 'owner ' || g, g * 10, now() FROM generate_series(1, 2000) g;
INSERT INTO documents SELECT g, 'doc ' || g, repeat(md5(g::text), 300), jsonb_build_object('v', g)
  FROM generate_series(1, 200) g;
INSERT INTO orders (account_id, status, total) SELECT g % 2000 + 1, 'new', g FROM generate_series(1, 5000) g;
INSERT INTO order_lines SELECT o, l, 'sku-' || (o * l % 97), l FROM generate_series(1, 5000) o, generate_series(1, 3) l;

-- One transaction of the workload: a random mix of row changes.
CREATE FUNCTION soak_step() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n int := 1 + (random() * 8)::int;
  o bigint;
  r float8;
BEGIN
  FOR i IN 1..n LOOP
    r := random();
    IF r < 0.30 THEN
      INSERT INTO orders (account_id, status, total)
        VALUES (1 + (random() * 1999)::int, 'new', round((random() * 500)::numeric, 2))
        RETURNING id INTO o;
      INSERT INTO order_lines SELECT o, l, 'sku-' || (random() * 1000)::int, 1 + (random() * 5)::int
        FROM generate_series(1, 1 + (random() * 4)::int) l;
    ELSIF r < 0.50 THEN
      UPDATE accounts SET balance = balance + round((random() * 20 - 10)::numeric, 2), updated_at = now()
        WHERE id = 1 + (random() * 1999)::int;
    ELSIF r < 0.62 THEN
      UPDATE orders SET status = (ARRAY['paid', 'shipped', 'cancelled'])[1 + (random() * 2)::int]
        WHERE id = (SELECT max(id) FROM orders) - (random() * 3000)::int;
    ELSIF r < 0.70 THEN
      o := (SELECT max(id) FROM orders) - (random() * 6000)::int;
      DELETE FROM order_lines WHERE order_id = o;
      DELETE FROM orders WHERE id = o;
    ELSIF r < 0.78 THEN
      -- A TOAST value left unchanged.
      UPDATE documents SET revision = revision + 1, meta = jsonb_build_object('touched', now()::text)
        WHERE id = 1 + (random() * 199)::int;
    ELSIF r < 0.84 THEN
      -- A TOAST value replaced.
      UPDATE documents SET body = repeat(md5(random()::text), 200 + (random() * 400)::int), revision = revision + 1
        WHERE id = 1 + (random() * 199)::int;
    ELSIF r < 0.87 THEN
      -- A document deleted and written again under the same key.
      o := 1 + (random() * 199)::int;
      DELETE FROM documents WHERE id = o;
      INSERT INTO documents VALUES (o, 'doc ' || o || ' again', repeat(md5(random()::text), 250), NULL, 1);
    ELSIF r < 0.90 THEN
      -- An order line's key changes.
      UPDATE order_lines SET line_no = line_no + 10
        WHERE (order_id, line_no) = (SELECT order_id, line_no FROM order_lines
                                     WHERE order_id > (SELECT max(id) FROM orders) - 100 AND line_no < 10 LIMIT 1);
    ELSE
      INSERT INTO events (kind, payload) VALUES ('tick', jsonb_build_object('r', r));
    END IF;
  END LOOP;
END $$;
SQL

# --- the pipeline ------------------------------------------------------------------------
CFG=$WORK/sluice.toml
"$SLUICE" init -c "$CFG" --no-input --force \
  --source-url "postgres://postgres@127.0.0.1:$PORT/soak?sslmode=disable" \
  --tables 'public.*' --data-dir "$WORK/data" >/dev/null
export SLUICE__LOAD__FLUSH_INTERVAL_MS=250
"$SLUICE" check -c "$CFG" >"$WORK/check.out" || { cat "$WORK/check.out" >&2; die "sluice check"; }

# --- the workload: five transactions per psql call; retried while the source restarts ------
STEPS=(-c "SELECT soak_step()" -c "SELECT soak_step()" -c "SELECT soak_step()" -c "SELECT soak_step()" -c "SELECT soak_step()")
workload() {
  local calls=0 n=0 failed=0
  while [ ! -f "$WORK/stop-workload" ]; do
    calls=$((calls + 1))
    if [ $((calls % 100)) = 0 ]; then
      # A large transaction now and then: every account in one commit.
      args=(-c "UPDATE accounts SET balance = balance + 1, updated_at = now()")
    else
      args=("${STEPS[@]}")
    fi
    if psql_ -d soak "${args[@]}" >/dev/null 2>>"$WORK/workload.err"; then
      n=$((n + ${#args[@]} / 2))
      echo "$n" >"$WORK/workload.count"
    else
      failed=$((failed + 1))
      echo "$failed" >"$WORK/workload.failed"
      sleep 0.5
    fi
  done
}
workload &
WORKLOAD_PID=$!

start_sync() {
  "$SLUICE" sync -c "$CFG" >>"$WORK/sync.out" 2>>"$WORK/sync.log" &
  SYNC_PID=$!
}

KILLS=0
FAST=0
IMMEDIATE=0
START=$(date +%s)
END=$((START + SECONDS_TOTAL))
next_kill() { echo $(($(date +%s) + KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN + 1))); }
start_sync
KILL_AT=$(next_kill)
RESTART_AT=$((START + RESTART_EVERY))
log "chaos for ${SECONDS_TOTAL}s: sync SIGKILLed every ${KILL_MIN}-${KILL_MAX}s, source restarted every ${RESTART_EVERY}s"
while [ "$(date +%s)" -lt "$END" ]; do
  sleep 1
  now=$(date +%s)
  if ! kill -0 "$SYNC_PID" 2>/dev/null; then
    rc=0
    wait "$SYNC_PID" || rc=$?
    tail -n 30 "$WORK/sync.log" >&2
    die "sluice sync (pid $SYNC_PID) stopped by itself with exit code $rc"
  fi
  if ! kill -0 "$WORKLOAD_PID" 2>/dev/null; then
    die "the workload generator stopped"
  fi
  if [ "$now" -ge "$KILL_AT" ]; then
    kill -KILL "$SYNC_PID"
    wait "$SYNC_PID" 2>/dev/null || true
    KILLS=$((KILLS + 1))
    echo "--- SIGKILL $KILLS at $(date +%H:%M:%S) ---" >>"$WORK/sync.log"
    start_sync
    KILL_AT=$(next_kill)
  fi
  if [ "$now" -ge "$RESTART_AT" ]; then
    if [ $(((FAST + IMMEDIATE) % 2)) = 0 ]; then mode=fast; else mode=immediate; fi
    log "restarting the source (-m $mode); sync SIGKILLs so far: $KILLS"
    pg_ctl_ -m "$mode" -l "$WORK/postgres.log" -w -t 120 restart >/dev/null ||
      die "pg_ctl restart -m $mode"
    if [ "$mode" = fast ]; then FAST=$((FAST + 1)); else IMMEDIATE=$((IMMEDIATE + 1)); fi
    RESTART_AT=$(($(date +%s) + RESTART_EVERY))
  fi
done

# --- catch up and compare -----------------------------------------------------------------
touch "$WORK/stop-workload"
wait "$WORKLOAD_PID" || die "the workload generator failed"
WORKLOAD_PID=
kill -KILL "$SYNC_PID"
wait "$SYNC_PID" 2>/dev/null || true
KILLS=$((KILLS + 1))
SYNC_PID=
TXNS=$(cat "$WORK/workload.count" 2>/dev/null || echo 0)
RETRIED=$(cat "$WORK/workload.failed" 2>/dev/null || echo 0)
log "workload stopped after at least $TXNS transactions ($RETRIED calls refused while the source restarted)"
[ "$TXNS" -gt 0 ] || die "the workload committed nothing"

log "sluice sync --until-caught-up"
"$SLUICE" sync -c "$CFG" --until-caught-up >"$WORK/final-sync.out" 2>"$WORK/final-sync.log" &
SYNC_PID=$!
rc=0
wait "$SYNC_PID" || rc=$?
SYNC_PID=
[ "$rc" = 0 ] || { tail -n 30 "$WORK/final-sync.log" >&2; die "the final sync exited with $rc"; }
cat "$WORK/final-sync.out" >&2

log "sluice verify"
rc=0
"$SLUICE" verify -c "$CFG" >"$WORK/verify.out" 2>"$WORK/verify.log" || rc=$?
cat "$WORK/verify.out" >&2
[ "$rc" = 0 ] || die "sluice verify exited with $rc"

ROWS=$(psql_ -d soak -At -c "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_lines) + (SELECT count(*) FROM documents) + (SELECT count(*) FROM events)")
echo "soak: $KILLS SIGKILLs and $((FAST + IMMEDIATE)) source restarts ($FAST fast, $IMMEDIATE immediate) survived over ${SECONDS_TOTAL}s; at least $TXNS source transactions, $ROWS rows in 5 tables; verify equal"
