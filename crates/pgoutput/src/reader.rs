//! A checked cursor over a received buffer.
//!
//! Every read checks the remaining length first and fails with an error naming the message
//! being decoded and the offset of the read. Byte-string reads return zero-copy slices of the
//! underlying [`Bytes`]. All integers on the wire are big-endian.

use bytes::Bytes;

use crate::error::{DecodeError, Result};

pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader {
    /// A cursor at offset `pos` of `buf`, decoding a `what` (e.g. `"Insert message"`).
    pub(crate) fn new(buf: Bytes, pos: usize, what: &'static str) -> Self {
        Reader { buf, pos, what }
    }

    pub(crate) fn what(&self) -> &'static str {
        self.what
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                let mut out = [0u8; N];
                out.copy_from_slice(s);
                self.pos += N;
                Ok(out)
            }
            None => Err(self.truncated(N)),
        }
    }

    pub(crate) fn truncated(&self, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            what: self.what,
            needed,
            offset: self.pos,
            left: self.remaining(),
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    /// An `Int16` count that must not be negative.
    pub(crate) fn count16(&mut self, field: &'static str) -> Result<usize> {
        let offset = self.pos;
        let v = self.i16()?;
        usize::try_from(v).map_err(|_| self.negative(field, v.into(), offset))
    }

    /// An `Int32` count or length that must not be negative.
    pub(crate) fn count32(&mut self, field: &'static str) -> Result<usize> {
        let offset = self.pos;
        let v = self.i32()?;
        usize::try_from(v).map_err(|_| self.negative(field, v.into(), offset))
    }

    fn negative(&self, field: &'static str, value: i64, offset: usize) -> DecodeError {
        DecodeError::NegativeLength {
            what: self.what,
            field,
            value,
            offset,
        }
    }

    /// The next `n` bytes as a zero-copy slice.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Everything left, as a zero-copy slice.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos.min(self.buf.len())..);
        self.pos = self.buf.len();
        out
    }

    /// A NUL-terminated UTF-8 string (the wire type `String`), without its terminator.
    pub(crate) fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(DecodeError::UnterminatedString {
                what: self.what,
                offset: start,
            });
        };
        let s = std::str::from_utf8(&rest[..len]).map_err(|_| DecodeError::InvalidUtf8 {
            what: self.what,
            offset: start,
        })?;
        let s = s.to_owned();
        self.pos = start + len + 1;
        Ok(s)
    }

    /// Fails unless the whole buffer has been read.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                what: self.what,
                count,
                offset: self.pos,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_reports_truncation() {
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 0, 0, 0, 2, 9]), 0, "test");
        assert_eq!(r.i16().ok(), Some(1));
        assert_eq!(r.u32().ok(), Some(2));
        assert_eq!(
            r.i32(),
            Err(DecodeError::Truncated {
                what: "test",
                needed: 4,
                offset: 6,
                left: 1
            })
        );
        // a failed read consumes nothing
        assert_eq!(r.u8().ok(), Some(9));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn strings_need_a_terminator_and_utf8() {
        let mut r = Reader::new(Bytes::from_static(b"ab\0cd"), 0, "test");
        assert_eq!(r.string().ok().as_deref(), Some("ab"));
        assert_eq!(
            r.string(),
            Err(DecodeError::UnterminatedString {
                what: "test",
                offset: 3
            })
        );
        let mut r = Reader::new(Bytes::from_static(b"\xff\0"), 0, "test");
        assert!(matches!(r.string(), Err(DecodeError::InvalidUtf8 { .. })));
    }

    #[test]
    fn negative_counts_are_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff]), 0, "test");
        assert!(matches!(
            r.count16("column count"),
            Err(DecodeError::NegativeLength { value: -1, .. })
        ));
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 9, 1]), 0, "test");
        let n = r.count32("length").ok();
        assert_eq!(n, Some(9));
        assert!(matches!(
            r.bytes(9),
            Err(DecodeError::Truncated {
                needed: 9,
                left: 1,
                ..
            })
        ));
    }
}
