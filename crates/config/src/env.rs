//! `${VAR}` interpolation and `SLUICE__SECTION__KEY` overrides.

use std::collections::BTreeMap;

use crate::{ConfigError, Problem, key_name};

/// Prefix of environment overrides: `SLUICE__LOAD__FLUSH_INTERVAL_MS=200` sets
/// `load.flush_interval_ms`.
pub const ENV_PREFIX: &str = "SLUICE__";

/// Replaces `${VAR}` in every string value with `vars[VAR]`; `$${` stands for a literal `${`.
pub fn interpolate(
    table: &mut toml::Table,
    vars: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for (key, value) in table.iter_mut() {
        interpolate_value(&key_name(key), value, vars, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn interpolate_value(
    path: &str,
    value: &mut toml::Value,
    vars: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        toml::Value::String(s) => match substitute(s, vars) {
            Ok(new) => *s = new,
            Err(why) => problems.push(Problem::new(path, why)),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(&format!("{path}[{i}]"), item, vars, problems);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                interpolate_value(&format!("{path}.{}", key_name(k)), v, vars, problems);
            }
        }
        _ => {}
    }
}

fn substitute(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or("unterminated ${...}: add the closing brace")?;
            let name = &r[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "${{{name}}} is not a valid environment variable reference"
                ));
            }
            let value = vars.get(name).ok_or_else(|| {
                format!("environment variable {name} is not set (referenced as ${{{name}}})")
            })?;
            out.push_str(value);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies `SLUICE__SECTION__KEY=value` overrides. Values that parse as TOML integers, floats or
/// booleans take that type; anything else is a string.
pub fn apply_env_overrides(
    table: &mut toml::Table,
    vars: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            problems.push(Problem::new(name, "empty key in environment override"));
            continue;
        }
        let value = parse_scalar(raw);
        if let Err(why) = set_path(table, &keys, value) {
            problems.push(Problem::new(name, why));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn parse_scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(f) = raw.parse::<f64>()
        && raw.contains('.')
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_owned())
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = keys.split_first().ok_or("empty override path")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    match table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        toml::Value::Table(t) => set_path(t, rest, value),
        _ => Err(format!("{first} is not a section")),
    }
}
