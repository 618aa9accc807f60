"""Checks the Snowflake KPI views (sql/snowflake/) on fakesnow with the fixture of tests/e2e/views.rs.

Creates the fixture's tables as the Snowflake target stores them (canonical upper-case names,
the dialect's type mapping in crates/sql/src/snowflake.rs, the _sluice_* metadata columns),
installs the ten views in catalog order with {schema} = "RAW", selects every view with the
Snowflake render rules below and compares the rows with the expectations parsed from
tests/e2e/views.rs. Exit code 0 when every view matches.

Until tests/e2e/views.rs has a Snowflake engine this is the only check of sql/snowflake/.
It needs a Python with fakesnow 0.12.1 and snowflake-connector-python<5 (see RIG.md):

    ~/.cache/sluice/venv-fakesnow/bin/python tests/scripts/snowflake_views.py [--port PORT]

Without --port it starts fakesnow on a free port of 127.0.0.1 and stops it at the end.
fakesnow runs in UTC whatever the session asks for (it does not implement ALTER SESSION SET
TIMEZONE), so the session-time-zone part of the e2e test cannot be repeated here.
"""
import argparse
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import snowflake.connector

REPO = Path(__file__).resolve().parents[2]
SCHEMA = '"RAW"'
# The install order: the catalog's `include_str!` lines for sql/snowflake/ in views.rs.
ORDER = re.findall(r'"\.\./\.\./\.\./sql/snowflake/(\w+)\.sql"',
                   (REPO / "crates/sluice/src/views.rs").read_text())

src = (REPO / "tests/e2e/views.rs").read_text()
fixture = re.search(r'const FIXTURE: &str = r#"(.*?)"#;', src, re.S).group(1)

# --- the fixture, as the Snowflake target stores it ---------------------------------------
TYPES = [  # PostgreSQL type in the fixture -> Snowflake type (connectors' type mapping)
    (r"numeric\((\d+),(\d+)\)", r"NUMBER(\1,\2)"),
    (r"text\[\]", "VARCHAR"),
    (r"bigint|int", "NUMBER(38,0)"),
    (r"text|uuid|\{char2\}", "VARCHAR"),
    (r"timestamptz", "TIMESTAMP_TZ"),
    (r"boolean", "BOOLEAN"),
    (r"\{json\}", "VARIANT"),
    (r"\{blob\}", "BINARY"),
]


def split_top(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def create_table(m):
    table, body = m.group(1), m.group(2)
    cols = []
    for col in split_top(body):
        if col.upper().startswith("PRIMARY KEY"):
            continue  # Snowflake enforces no key; the target declares none
        name, rest = col.split(" ", 1)
        rest = rest.replace(" PRIMARY KEY", "")
        for pat, rep in TYPES:
            new, n = re.subn(rf"^(?:{pat})", rep, rest)
            if n:
                rest = new
                break
        else:
            raise SystemExit(f"unmapped type in {table}.{name}: {rest}")
        cols.append(f'"{name.upper()}" {rest}')
    return f'CREATE TABLE {SCHEMA}."{table.upper()}" ({", ".join(cols)})'


statements = []
for stmt in [s.strip() for s in fixture.split(";\n") if s.strip()]:
    stmt = "\n".join(l for l in stmt.splitlines() if not l.startswith("--")).strip()
    if not stmt or stmt.startswith("CREATE SCHEMA"):
        continue
    if stmt.startswith("CREATE TABLE"):
        stmt = re.sub(r"CREATE TABLE \{s\}\.(\w+) \((.*)\)$", create_table, stmt, flags=re.S)
    else:
        stmt = re.sub(r"INSERT INTO \{s\}\.(\w+)",
                      lambda m: f'INSERT INTO {SCHEMA}."{m.group(1).upper()}"', stmt)
        stmt = re.sub(r"\{card_(\w)\}", lambda m: {"a": "TO_BINARY('aa01', 'HEX')",
                                                    "b": "TO_BINARY('bb02', 'HEX')",
                                                    "c": "TO_BINARY('cc03', 'HEX')",
                                                    "d": "TO_BINARY('dd04', 'HEX')"}[m.group(1)], stmt)
        # '...+00' -> '...+00:00': an offset Snowflake's and DuckDB's parsers both read
        stmt = re.sub(r"(\d\d:\d\d:\d\d(?:\.\d+)?)\+00'", r"\1+00:00'", stmt)
    statements.append(stmt)

# --- the expectations ----------------------------------------------------------------------
STR = r'"((?:[^"\\]|\\.)*)"'
expected = []
body = src[src.index("const EXPECTED"):src.index("/// Runs `sluice views install")]
body = re.sub(r"//[^\n]*", "", body)
for block in body.split("Expectation {")[1:]:
    view = re.search(r"view: " + STR, block).group(1)
    cols = re.findall(r"\(" + STR + r", Col::(\w+)\)", block)
    order_by = re.search(r"order_by: " + STR, block).group(1)
    rows_part = block[block.index("rows:") + len("rows:"):].strip()[2:]  # drop the outer "&["
    rows = [re.findall(STR, r) for r in re.findall(r"&\[(.*?)\]", rows_part, re.S)]
    expected.append((view, cols, order_by, rows))
assert sorted(e[0] for e in expected) == sorted(ORDER), (ORDER, [e[0] for e in expected])


# --- the Snowflake render rules ------------------------------------------------------------
def render(column, col):
    expr = {
        "Text": column,
        "Ts": f"TO_VARCHAR(CONVERT_TIMEZONE('UTC', {column}), 'YYYY-MM-DD HH24:MI:SS.FF6')",
        "Money": f"CAST({column} AS NUMBER(18,2))",
        "Ratio": f"CAST(ROUND({column}, 4) AS NUMBER(18,4))",
        "Hex": f"HEX_ENCODE({column}, 0)",
        "OverAYear": f"{column} > 700 * 86400",
    }[col]
    return f"CAST({expr} AS VARCHAR)"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fakesnow():
    """fakesnow on a free port of 127.0.0.1: (process, port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakesnow", "-s", "-p", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"fakesnow exited with {proc.returncode}")
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("fakesnow did not listen within 30 s")


def check(port, phase="all"):
    # Short timeouts: fakesnow answers a statement it cannot run with HTTP 500, which the
    # connector otherwise retries for minutes.
    conn = snowflake.connector.connect(
        user="u", password="p", account="acc", host="127.0.0.1", port=port, protocol="http",
        database="ANALYTICS", schema="RAW", network_timeout=20, login_timeout=20)
    cur = conn.cursor()
    if phase == "check":
        return compare(cur, set())
    cur.execute("DROP SCHEMA IF EXISTS ANALYTICS.RAW CASCADE")
    cur.execute("CREATE SCHEMA ANALYTICS.RAW")
    for s in statements:
        cur.execute(s)
    # The views must find the canonical upper-case names through unquoted lower-case SQL.
    cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'RAW'")
    names = cur.fetchall()
    assert names and all(t.isupper() and c.isupper() for t, c in names), names

    if phase == "fixture":
        return 0
    failed = set()
    for name in ORDER:
        sql = (REPO / "sql/snowflake" / f"{name}.sql").read_text().replace("{schema}", SCHEMA)
        try:
            cur.execute(sql)
        except snowflake.connector.errors.Error as e:  # keep going: report every view
            failed.add(name)
            print(f"FAIL installing {name}: {str(e)[:400]}")
    return compare(cur, failed)


def compare(cur, failed):
    """Compares every view with the expected rows; returns the exit code."""
    cur.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'RAW' "
                "ORDER BY table_name")
    print("views in RAW:", ", ".join(r[0] for r in cur.fetchall()))

    for view, cols, order_by, rows in expected:
        sql = (f"SELECT {', '.join(render(c, k) for c, k in cols)} FROM {SCHEMA}.{view} "
               f"ORDER BY {order_by}")
        try:
            cur.execute(sql)
            got = [["NULL" if v is None else v for v in r] for r in cur.fetchall()]
        except snowflake.connector.errors.Error as e:
            got = f"ERROR {str(e)[:400]}"
        if got == rows:
            print(f"PASS {view}: {len(rows)} rows")
        else:
            failed.add(view)
            print(f"FAIL {view}\n  sql:  {sql}\n  want: {rows}\n  got:  {got}")
    print(f"{len(expected) - len(failed)} of {len(expected)} views match")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="a running fakesnow on 127.0.0.1 (else one is started)")
    parser.add_argument("--phase", choices=["all", "fixture", "check"], default="all",
                        help="fixture: only create the tables; check: only compare views installed "
                             "by `sluice views install`")
    args = parser.parse_args()
    if args.port:
        return check(args.port, args.phase)
    proc, port = start_fakesnow()
    try:
        return check(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
