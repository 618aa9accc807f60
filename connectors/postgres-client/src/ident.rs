//! Quoting of identifiers and literals for SQL and replication commands.
//!
//! Slot and publication names reach replication commands only through these functions:
//! identifiers in double quotes with embedded double quotes doubled, literals in single quotes
//! with embedded single quotes doubled. The server runs with `standard_conforming_strings = on`
//! (the default since 9.1), so backslashes are not escapes. A NUL byte cannot travel in the
//! protocol at all; the command builders reject names containing one.
//!
//! One trap: the replication command lexer (unlike SQL's) has no escape for `"` inside a
//! quoted identifier, so replication commands refuse slot and option names containing `"`.
//! Publication names travel inside a literal option value and are split by pgoutput as an SQL
//! identifier list, where [`publication_names`] doubling works.

/// `"name"`, with every `"` doubled.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `'value'`, with every `'` doubled.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The value of pgoutput's `publication_names` option: each name quoted as an identifier,
/// separated by commas (the plugin splits the value as an identifier list).
pub fn publication_names<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_identifiers() {
        assert_eq!(quote_ident("sluice"), r#""sluice""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident(r#"""#), r#""""""#);
        assert_eq!(quote_ident("with space"), r#""with space""#);
        assert_eq!(quote_ident("Ünïcødé_槽"), "\"Ünïcødé_槽\"");
        assert_eq!(
            quote_ident(r#"x"; DROP TABLE x; --"#),
            r#""x""; DROP TABLE x; --""#
        );
        assert_eq!(quote_ident("it's"), r#""it's""#);
        assert_eq!(quote_ident(""), r#""""#);
    }

    #[test]
    fn publication_name_lists() {
        assert_eq!(publication_names(&["a"]), r#""a""#);
        assert_eq!(publication_names(&["a b", r#"c"d"#]), r#""a b","c""d""#);
    }

    #[test]
    fn quotes_hostile_literals() {
        assert_eq!(quote_literal("1"), "'1'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            quote_literal("'; DROP TABLE x; --"),
            "'''; DROP TABLE x; --'"
        );
        assert_eq!(quote_literal(r#""pub""#), r#"'"pub"'"#);
        assert_eq!(quote_literal(r"back\slash"), r"'back\slash'");
        assert_eq!(quote_literal("ünï 槽"), "'ünï 槽'");
    }
}
