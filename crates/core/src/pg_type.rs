//! PostgreSQL types as Sluice understands them.
//!
//! Values travel in PostgreSQL's text output format (see [`crate::Value`]), which is lossless for
//! every built-in type. [`PgType`] says how to interpret that text: destinations map it to their
//! best native type, and fall back to exact text for anything they cannot hold.

use serde::{Deserialize, Serialize};

/// Built-in type OIDs (from `pg_type.dat`).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;

    pub const BOOL_ARRAY: u32 = 1000;
    pub const BYTEA_ARRAY: u32 = 1001;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const BPCHAR_ARRAY: u32 = 1014;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const TIMESTAMP_ARRAY: u32 = 1115;
    pub const DATE_ARRAY: u32 = 1182;
    pub const TIMESTAMPTZ_ARRAY: u32 = 1185;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const UUID_ARRAY: u32 = 2951;
    pub const JSONB_ARRAY: u32 = 3807;
    pub const JSON_ARRAY: u32 = 199;
    pub const NAME_ARRAY: u32 = 1003;
    pub const OID_ARRAY: u32 = 1028;
    pub const TIME_ARRAY: u32 = 1183;
    pub const INTERVAL_ARRAY: u32 = 1187;
    pub const TIMETZ_ARRAY: u32 = 1270;
}

/// How Sluice interprets a column's values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(precision, scale)`; both `None` for unconstrained `numeric`.
    Numeric {
        precision: Option<u16>,
        scale: Option<u16>,
    },
    Text,
    /// `varchar(n)`; `None` for unbounded.
    Varchar(Option<u32>),
    /// `char(n)`.
    Bpchar(Option<u32>),
    Bytea,
    Uuid,
    Json,
    Jsonb,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    /// A one- or multi-dimensional array of the element type.
    Array(Box<PgType>),
    /// Any other type: kept as its exact text.
    Other(u32),
}

impl PgType {
    /// The type of a column given its type OID and modifier (`atttypmod`).
    pub fn from_oid(type_oid: u32, type_modifier: i32) -> PgType {
        use oid::*;
        let element = |o: u32| PgType::Array(Box::new(PgType::from_oid(o, type_modifier)));
        match type_oid {
            BOOL => PgType::Bool,
            INT2 => PgType::Int2,
            INT4 => PgType::Int4,
            INT8 => PgType::Int8,
            FLOAT4 => PgType::Float4,
            FLOAT8 => PgType::Float8,
            NUMERIC => {
                // atttypmod = ((precision << 16) | (scale & 0x7ff)) + VARHDRSZ (4), -1 when
                // unconstrained; the scale is 11-bit two's complement (negative since 15).
                if type_modifier >= 4 {
                    let m = (type_modifier - 4) as u32;
                    let scale = (((m & 0x7ff) ^ 0x400) as i16) - 0x400;
                    PgType::Numeric {
                        precision: Some(((m >> 16) & 0xFFFF) as u16),
                        // Negative scales as their 16-bit two's complement (`as i16` reads them).
                        scale: Some(scale as u16),
                    }
                } else {
                    PgType::Numeric {
                        precision: None,
                        scale: None,
                    }
                }
            }
            TEXT | NAME => PgType::Text,
            VARCHAR => PgType::Varchar(char_length(type_modifier)),
            BPCHAR => PgType::Bpchar(char_length(type_modifier)),
            BYTEA => PgType::Bytea,
            UUID => PgType::Uuid,
            JSON => PgType::Json,
            JSONB => PgType::Jsonb,
            DATE => PgType::Date,
            TIME => PgType::Time,
            TIMETZ => PgType::TimeTz,
            TIMESTAMP => PgType::Timestamp,
            TIMESTAMPTZ => PgType::TimestampTz,
            INTERVAL => PgType::Interval,
            BOOL_ARRAY => element(BOOL),
            BYTEA_ARRAY => element(BYTEA),
            INT2_ARRAY => element(INT2),
            INT4_ARRAY => element(INT4),
            INT8_ARRAY => element(INT8),
            TEXT_ARRAY => element(TEXT),
            BPCHAR_ARRAY => element(BPCHAR),
            VARCHAR_ARRAY => element(VARCHAR),
            FLOAT4_ARRAY => element(FLOAT4),
            FLOAT8_ARRAY => element(FLOAT8),
            TIMESTAMP_ARRAY => element(TIMESTAMP),
            TIMESTAMPTZ_ARRAY => element(TIMESTAMPTZ),
            DATE_ARRAY => element(DATE),
            NUMERIC_ARRAY => element(NUMERIC),
            UUID_ARRAY => element(UUID),
            JSON_ARRAY => element(JSON),
            JSONB_ARRAY => element(JSONB),
            other => PgType::Other(other),
        }
    }
}

/// The length limit of `varchar(n)` / `char(n)`: atttypmod is `n + 4`, `-1` when unbounded.
fn char_length(type_modifier: i32) -> Option<u32> {
    (type_modifier >= 4).then(|| (type_modifier - 4) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_typmod() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(
            PgType::from_oid(oid::NUMERIC, (12 << 16 | 2) + 4),
            PgType::Numeric {
                precision: Some(12),
                scale: Some(2)
            }
        );
        // numeric(5,-2): the scale in 11 bits, two's complement.
        assert_eq!(
            PgType::from_oid(oid::NUMERIC, ((5 << 16) | (-2i32 & 0x7ff)) + 4),
            PgType::Numeric {
                precision: Some(5),
                scale: Some(-2i16 as u16)
            }
        );
        assert_eq!(
            PgType::from_oid(oid::NUMERIC, -1),
            PgType::Numeric {
                precision: None,
                scale: None
            }
        );
    }

    #[test]
    fn varchar_and_arrays() {
        assert_eq!(
            PgType::from_oid(oid::VARCHAR, 14),
            PgType::Varchar(Some(10))
        );
        assert_eq!(PgType::from_oid(oid::VARCHAR, -1), PgType::Varchar(None));
        assert_eq!(
            PgType::from_oid(oid::INT4_ARRAY, -1),
            PgType::Array(Box::new(PgType::Int4))
        );
        assert_eq!(PgType::from_oid(600, -1), PgType::Other(600));
    }
}
