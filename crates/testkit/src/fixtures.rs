//! Fixtures shared by tests of several crates.

/// A table `zoo` holding every built-in type class PostgreSQL has, with edge values (NULLs,
/// NaN and infinities, BC dates, extreme timestamps and intervals, unicode, 2-D arrays with
/// NULLs, an enum), for round-trip tests of targets.
pub const TYPE_ZOO: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy', 'ünï');
CREATE TABLE zoo (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n38 numeric(38,10), n numeric, t text, vc varchar(5), c char(4), by bytea, u uuid,
    j json, jb jsonb, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
    iv interval, ia int[], ta text[], ip inet, m mood
);
INSERT INTO zoo VALUES
 (1, true, -32768, 2147483647, -9223372036854775808, 'NaN', '-Infinity',
  '1234567890123456789012345678.0123456789', 'NaN', E'ünïcödé ☃ "q" \\ '' \t end', 'abcde', 'ab',
  '\x00ff00'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50],  "b":null}',
  '{"z": 1, "a": "x"}', 'infinity', '23:59:59.999999', '12:00:00+05:30',
  '0044-03-15 12:00:00.5 BC', '-infinity', '1 year 2 mons -3 days 04:05:06.789',
  '{{1,NULL},{3,4}}', '{"a b",NULL,"c\"d","",NULL}', '192.168.0.1/24', 'ünï'),
 (2, false, 0, 0, 0, 'Infinity', '-0', '-0.0000000001', '-12345678901234567890.123456789012345678901',
  '', 'x', 'abcd', '\x', '00000000-0000-0000-0000-000000000000', '[]', '{}',
  '0044-03-15 BC', '00:00', '00:00:00-12', '2024-02-29 23:59:59.123456', 'infinity',
  '-178000000 years', '{}', '{}', '::1', 'sad'),
 (3, NULL, NULL, NULL, NULL, '3.4028235e+38', '1.7976931348623157e+308', NULL, '0', NULL, NULL,
  NULL, NULL, NULL, 'null', 'null', '-infinity', NULL, NULL, NULL,
  '2024-03-10 02:30:00.000001+00', NULL, '{NULL}', '{NULL}', NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// `SELECT` of every column of the zoo as `col::text` from `table`, rows matching `filter`,
/// in key order: the source and a PostgreSQL target must print the same.
pub fn type_zoo_as_text(table: &str, filter: &str) -> String {
    let columns = "id b i2 i4 i8 f4 f8 n38 n t vc c by u j jb d tm ttz ts tstz iv ia ta ip m"
        .split(' ')
        .map(|c| format!("{c}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {columns} FROM {table} WHERE {filter} ORDER BY id")
}
