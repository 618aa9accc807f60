//! Row images (`TupleData`) inside Insert, Update and Delete messages.
//!
//! ```text
//! TupleData  Int16 ncols, then per column one of:
//!            'n'                      NULL
//!            'u'                      unchanged TOASTed value (not sent; keep the old one)
//!            't'  Int32 len  Byte[len] value in text format
//!            'b'  Int32 len  Byte[len] value in binary format (`binary` option)
//! ```
//!
//! Values are zero-copy slices of the received buffer; nothing is copied or allocated per
//! column. Columns are in relation order, as announced by the last Relation message for the
//! table (generated columns are not sent).

use bytes::Bytes;

use crate::error::{DecodeError, Result};
use crate::reader::Reader;

/// One row image: a value per column, in the order of the relation's columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuple {
    /// The column values.
    pub columns: Vec<TupleValue>,
}

/// One column of a [`Tuple`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    /// `'n'`: SQL NULL.
    Null,
    /// `'u'`: an unchanged TOASTed value the server did not send. Never the same as NULL.
    UnchangedToast,
    /// `'t'`: the value in PostgreSQL's text output format.
    Text(Bytes),
    /// `'b'`: the value in PostgreSQL's binary send format.
    Binary(Bytes),
}

impl Tuple {
    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The value of column `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&TupleValue> {
        self.columns.get(index)
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Tuple> {
        let n = r.count16("column count")?;
        // every column takes at least its kind byte, so the input bounds the allocation
        let mut columns = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            let offset = r.offset();
            let value = match r.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                b't' => {
                    let len = r.count32("value length")?;
                    TupleValue::Text(r.bytes(len)?)
                }
                b'b' => {
                    let len = r.count32("value length")?;
                    TupleValue::Binary(r.bytes(len)?)
                }
                kind => {
                    return Err(DecodeError::UnknownColumnKind {
                        what: r.what(),
                        kind,
                        offset,
                    });
                }
            };
            columns.push(value);
        }
        Ok(Tuple { columns })
    }
}

impl TupleValue {
    /// The text-format value, if this column is `'t'`.
    pub fn as_text(&self) -> Option<&Bytes> {
        match self {
            TupleValue::Text(b) => Some(b),
            _ => None,
        }
    }

    /// Whether this column is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, TupleValue::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &'static [u8]) -> Result<Tuple> {
        Tuple::decode(&mut Reader::new(Bytes::from_static(bytes), 0, "test"))
    }

    #[test]
    fn every_column_kind() {
        let t = decode(b"\0\x04nut\0\0\0\x02hib\0\0\0\x01\xff");
        assert_eq!(
            t,
            Ok(Tuple {
                columns: vec![
                    TupleValue::Null,
                    TupleValue::UnchangedToast,
                    TupleValue::Text(Bytes::from_static(b"hi")),
                    TupleValue::Binary(Bytes::from_static(b"\xff")),
                ]
            })
        );
    }

    #[test]
    fn bad_kind_and_huge_counts() {
        assert_eq!(
            decode(b"\0\x01x"),
            Err(DecodeError::UnknownColumnKind {
                what: "test",
                kind: b'x',
                offset: 2
            })
        );
        // a count of 32767 with no data must fail without allocating for 32767 columns
        assert!(matches!(
            decode(b"\x7f\xff"),
            Err(DecodeError::Truncated { offset: 2, .. })
        ));
        assert!(matches!(
            decode(b"\0\x01t\x80\0\0\0"),
            Err(DecodeError::NegativeLength { offset: 3, .. })
        ));
    }
}
