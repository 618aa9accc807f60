//! Prints the result of SQL queries against a DuckDB warehouse as aligned tables.
//!
//! `show WAREHOUSE.duckdb "SELECT ..." ["SELECT ..." ...]`

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((path, queries)) = args.split_first() else {
        eprintln!("usage: show WAREHOUSE.duckdb \"SELECT ...\" [...]");
        return ExitCode::from(2);
    };
    let config = match duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let conn = match duckdb::Connection::open_with_flags(path, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot open {path}: {e}");
            return ExitCode::from(1);
        }
    };
    for sql in queries {
        if let Err(e) = print_query(&conn, sql) {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn print_query(conn: &duckdb::Connection, sql: &str) -> duckdb::Result<()> {
    // Every column as text, so any type prints.
    let wrapped = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
    let mut stmt = conn.prepare(&wrapped)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut result = stmt.query([])?;
    let names: Vec<String> = result
        .as_ref()
        .map(|s| s.column_names())
        .unwrap_or_default();
    while let Some(row) = result.next()? {
        let mut values = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            values.push(
                row.get::<_, Option<String>>(i)?
                    .unwrap_or_else(|| "NULL".to_owned()),
            );
        }
        rows.push(values);
    }
    let widths: Vec<usize> = (0..names.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([names[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&names));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for r in &rows {
        println!("{}", line(r));
    }
    println!("({} rows)\n", rows.len());
    Ok(())
}
