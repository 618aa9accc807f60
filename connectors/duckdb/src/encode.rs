//! Rows into the staging table.
//!
//! Each value is PostgreSQL's text output. Most of it DuckDB casts as is; the encoder rewrites
//! the forms DuckDB reads differently or not at all, so that the MERGE's casts see text they
//! parse exactly:
//!
//! - `bytea` `\x0a1b` becomes the bare hex `0a1b` (converted with `from_hex`);
//! - BC dates and timestamps (`0044-03-15 BC`) get DuckDB's astronomical year (`-0043-03-15`),
//!   which DuckDB would otherwise read as AD, silently;
//! - intervals in PostgreSQL's default style (`-1 years +2 mons -3 days +04:05:06.5`) become
//!   `<months> months <days> days <microseconds> microseconds`;
//! - arrays (`{1,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`) become DuckDB list literals of
//!   double-quoted, backslash-escaped elements (`["1", NULL]`), each element rewritten by the
//!   same rules, with as many levels as the column has.
//!
//! Anything the encoder cannot rewrite is an [`EncodeError`], which the destination reports
//! with the table and column; values the casts themselves refuse are found by a check query
//! over the staging table before the MERGE (see `sluice_sql::DuckDb::check_stage`).

use std::borrow::Cow;

use sluice_sql::DuckType;

/// Why a value cannot be staged. Never holds the value itself (values stay out of logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodeError(pub String);

type Result<T> = std::result::Result<T, EncodeError>;

fn err<T>(reason: impl Into<String>) -> Result<T> {
    Err(EncodeError(reason.into()))
}

/// [`encode`] as the staging layout takes it ([`sluice_warehouse::staging::Encode`]).
pub(crate) fn stage_value<'a>(
    text: &'a str,
    ty: &DuckType,
) -> std::result::Result<Cow<'a, str>, String> {
    encode(text, ty).map_err(|e| e.0)
}

/// Rewrites PostgreSQL's text of a value into text DuckDB casts to `ty` exactly.
pub(crate) fn encode<'a>(text: &'a str, ty: &DuckType) -> Result<Cow<'a, str>> {
    match ty {
        DuckType::Blob => bytea(text).map(Cow::Borrowed),
        DuckType::Date | DuckType::Timestamp | DuckType::TimestampTz => bc(text),
        DuckType::Interval => interval(text).map(Cow::Owned),
        DuckType::List(_) => {
            let array = parse_array(text)?;
            let depth = ty.depth();
            if let Some(d) = array.dims()
                && d != depth
            {
                return err(format!(
                    "array has {d} dimensions but the target column holds {depth}"
                ));
            }
            let mut out = String::with_capacity(text.len() + 8);
            write_list(&array, ty.element(), &mut out)?;
            Ok(Cow::Owned(out))
        }
        _ => Ok(Cow::Borrowed(text)),
    }
}

fn bytea(text: &str) -> Result<&str> {
    let Some(hex) = text.strip_prefix("\\x") else {
        return err("bytea value is not in hex format; set bytea_output = 'hex' at the source");
    };
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return err("bytea value is not valid hex");
    }
    Ok(hex)
}

/// `YYYY-MM-DD[ time] BC` to DuckDB's astronomical years: 1 BC is year 0, 44 BC is -43.
fn bc(text: &str) -> Result<Cow<'_, str>> {
    let Some(rest) = text.strip_suffix(" BC") else {
        return Ok(Cow::Borrowed(text));
    };
    let (year, tail) = rest.split_at(rest.find('-').unwrap_or(rest.len()));
    let year: i64 = match year.parse() {
        Ok(y) if y >= 1 && !tail.is_empty() => y,
        _ => return err("date is not in ISO format; set DateStyle = 'ISO' at the source"),
    };
    let astronomical = 1 - year;
    Ok(Cow::Owned(if astronomical == 0 {
        format!("0000{tail}")
    } else {
        format!("-{:04}{tail}", -astronomical)
    }))
}

/// An interval in PostgreSQL's `postgres` output style to an unambiguous DuckDB form.
fn interval(text: &str) -> Result<String> {
    const STYLE: &str = "interval is not in PostgreSQL's default output style; set \
                         IntervalStyle = 'postgres' at the source";
    let overflow = || EncodeError("interval does not fit DuckDB's INTERVAL".into());
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    let mut tokens = text.split_ascii_whitespace();
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            micros = micros
                .checked_add(time_of_day(token).ok_or_else(|| EncodeError(STYLE.into()))?)
                .ok_or_else(overflow)?;
            continue;
        }
        let n: i64 = token.parse().map_err(|_| EncodeError(STYLE.into()))?;
        let (target, factor) = match tokens.next() {
            Some("year" | "years") => (&mut months, 12),
            Some("mon" | "mons") => (&mut months, 1),
            Some("day" | "days") => (&mut days, 1),
            _ => return err(STYLE),
        };
        *target = n
            .checked_mul(factor)
            .and_then(|v| target.checked_add(v))
            .ok_or_else(overflow)?;
    }
    if i32::try_from(months).is_err() || i32::try_from(days).is_err() {
        return Err(overflow());
    }
    Ok(format!("{months} months {days} days {micros} microseconds"))
}

/// `[+-]H:MM:SS[.ffffff]` in microseconds.
fn time_of_day(token: &str) -> Option<i64> {
    let (negative, t) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let mut parts = t.split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let (whole, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: i64 = whole.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let total = hours
        .checked_mul(3_600_000_000)?
        .checked_add(minutes.checked_mul(60_000_000)?)?
        .checked_add(whole.checked_mul(1_000_000)?)?
        .checked_add(frac)?;
    Some(if negative { -total } else { total })
}

/// A parsed PostgreSQL array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Array {
    Null,
    Element(String),
    List(Vec<Array>),
}

impl Array {
    /// Number of dimensions, `None` for an empty array.
    fn dims(&self) -> Option<usize> {
        match self {
            Array::List(items) => match items.first() {
                None => None,
                Some(Array::List(_)) => items[0].dims().map(|d| d + 1),
                Some(_) => Some(1),
            },
            _ => Some(0),
        }
    }
}

/// Parses `array_out` text: `{a,"b c",NULL,{...}}`.
pub(crate) fn parse_array(text: &str) -> Result<Array> {
    if text.starts_with('[') {
        return err(
            "array has non-default lower bounds ([lower:upper]={...}), which a DuckDB list \
             cannot keep",
        );
    }
    let mut parser = ArrayParser {
        text: text.as_bytes(),
        at: 0,
    };
    let array = parser.list()?;
    if parser.at != text.len() {
        return err("malformed array text: trailing characters");
    }
    Ok(array)
}

struct ArrayParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl ArrayParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn list(&mut self) -> Result<Array> {
        if self.peek() != Some(b'{') {
            return err("malformed array text: expected '{'");
        }
        self.at += 1;
        let mut items = Vec::new();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Array::List(items));
        }
        loop {
            let item = match self.peek() {
                Some(b'{') => self.list()?,
                Some(b'"') => Array::Element(self.quoted()?),
                Some(_) => self.unquoted()?,
                None => return err("malformed array text: unexpected end"),
            };
            let nested = matches!(item, Array::List(_));
            if let Some(first) = items.first()
                && matches!(first, Array::List(_)) != nested
            {
                return err("malformed array text: mixed nesting");
            }
            items.push(item);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Array::List(items));
                }
                _ => return err("malformed array text: expected ',' or '}'"),
            }
        }
    }

    fn quoted(&mut self) -> Result<String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(out)
                        .or_else(|_| err("malformed array text: invalid UTF-8"));
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b) => out.push(b),
                        None => return err("malformed array text: unexpected end"),
                    }
                    self.at += 1;
                }
                Some(b) => {
                    out.push(b);
                    self.at += 1;
                }
                None => return err("malformed array text: unterminated quote"),
            }
        }
    }

    fn unquoted(&mut self) -> Result<Array> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b'}' | b'{' | b'"' | b'\\') {
                break;
            }
            self.at += 1;
        }
        let raw = std::str::from_utf8(&self.text[start..self.at])
            .or_else(|_| err("malformed array text: invalid UTF-8"))?;
        let raw = raw.trim();
        if raw.is_empty() {
            return err("malformed array text: empty element");
        }
        Ok(if raw.eq_ignore_ascii_case("NULL") {
            Array::Null
        } else {
            Array::Element(raw.to_owned())
        })
    }
}

/// Writes `array` as a DuckDB list literal, encoding each element for `element`.
fn write_list(array: &Array, element: &DuckType, out: &mut String) -> Result<()> {
    match array {
        Array::Null => out.push_str("NULL"),
        Array::Element(text) => {
            let encoded = encode(text, element)?;
            out.push('"');
            for c in encoded.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Array::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_list(item, element, out)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(depth: usize, element: DuckType) -> DuckType {
        (0..depth).fold(element, |t, _| DuckType::List(Box::new(t)))
    }

    #[test]
    fn bytea_hex() {
        assert_eq!(encode("\\x00ff41", &DuckType::Blob), Ok("00ff41".into()));
        assert_eq!(encode("\\x", &DuckType::Blob), Ok("".into()));
        assert!(encode("\\x0", &DuckType::Blob).is_err());
        assert!(encode("\\xzz", &DuckType::Blob).is_err());
        assert!(encode("abc", &DuckType::Blob).is_err());
    }

    #[test]
    fn bc_years() {
        assert_eq!(
            encode("0001-01-01 BC", &DuckType::Date),
            Ok("0000-01-01".into())
        );
        assert_eq!(
            encode("0044-03-15 BC", &DuckType::Date),
            Ok("-0043-03-15".into())
        );
        assert_eq!(
            encode("4713-11-24 00:00:00+00 BC", &DuckType::TimestampTz),
            Ok("-4712-11-24 00:00:00+00".into())
        );
        assert_eq!(
            encode("2024-01-01", &DuckType::Date),
            Ok("2024-01-01".into())
        );
        assert_eq!(encode("infinity", &DuckType::Date), Ok("infinity".into()));
        assert!(encode("x BC", &DuckType::Date).is_err());
    }

    #[test]
    fn intervals() {
        let cases = [
            ("00:00:00", "0 months 0 days 0 microseconds"),
            (
                "1 year 2 mons 3 days 04:05:06.789",
                "14 months 3 days 14706789000 microseconds",
            ),
            (
                "-1 years -2 mons +3 days -04:05:06.5",
                "-14 months 3 days -14706500000 microseconds",
            ),
            (
                "-1 days +02:03:00",
                "0 months -1 days 7380000000 microseconds",
            ),
            (
                "1000000:00:00.000001",
                "0 months 0 days 3600000000000001 microseconds",
            ),
            ("-00:00:00.000001", "0 months 0 days -1 microseconds"),
        ];
        for (pg, duck) in cases {
            assert_eq!(encode(pg, &DuckType::Interval), Ok(duck.into()), "{pg}");
        }
        for bad in ["P1Y", "1 fortnight", "1-2", "1:2:3:4", "9999999999 years"] {
            assert!(encode(bad, &DuckType::Interval).is_err(), "{bad}");
        }
    }

    #[test]
    fn arrays() {
        let ints = list(1, DuckType::Integer);
        assert_eq!(
            encode("{1,2,NULL}", &ints),
            Ok(r#"["1", "2", NULL]"#.into())
        );
        assert_eq!(encode("{}", &ints), Ok("[]".into()));
        assert_eq!(encode("{}", &list(2, DuckType::Integer)), Ok("[]".into()));
        let texts = list(1, DuckType::Varchar);
        assert_eq!(
            encode(r#"{"a b","c\"d","NULL",NULL,"back\\slash",""}"#, &texts),
            Ok(r#"["a b", "c\"d", "NULL", NULL, "back\\slash", ""]"#.into())
        );
        assert_eq!(
            encode("{{1,2},{3,NULL}}", &list(2, DuckType::Integer)),
            Ok(r#"[["1", "2"], ["3", NULL]]"#.into())
        );
        assert_eq!(
            encode(r#"{"\\x00ff",NULL}"#, &list(1, DuckType::Blob)),
            Ok(r#"["00ff", NULL]"#.into())
        );
        assert_eq!(
            encode(r#"{"0044-03-15 BC"}"#, &list(1, DuckType::Date)),
            Ok(r#"["-0043-03-15"]"#.into())
        );
        let e = encode("{{1,2},{3,4}}", &ints).expect_err("depth");
        assert_eq!(e.0, "array has 2 dimensions but the target column holds 1");
        assert!(encode("[0:1]={1,2}", &ints).is_err());
        for bad in ["{1,2", "{1,,2}", "{1}x", "{\"a}", "{{1},2}", "1,2"] {
            assert!(encode(bad, &texts).is_err(), "{bad}");
        }
    }

    #[test]
    fn staged_values_are_rewritten_or_refused_for_their_column() {
        assert_eq!(
            stage_value("\\x0a1b", &DuckType::Blob),
            Ok(Cow::Borrowed("0a1b")),
            "bytea loses its prefix, borrowed"
        );
        assert_eq!(stage_value("7", &DuckType::Integer), Ok(Cow::Borrowed("7")));
        let refused = stage_value("nothex", &DuckType::Blob).expect_err("not hex");
        assert!(
            !refused.contains("nothex"),
            "the reason never quotes the value: {refused}"
        );
    }
}
