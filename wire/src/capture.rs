//! Capture files (`tests/fixtures/corpus/README.md`): a plain concatenation of
//! records `length: u32 LE` + `length` datagram bytes. Used by `replay`,
//! tests and benchmarks.

/// Iterates over the datagrams of a capture held in memory. Yields
/// `Err(offset)` once, and then stops, when a record runs past the end.
pub fn records(buf: &[u8]) -> Records<'_> {
    Records {
        buf,
        off: 0,
        failed: false,
    }
}

/// Iterator returned by [`records`].
pub struct Records<'a> {
    buf: &'a [u8],
    off: usize,
    failed: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.off >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.off..];
        if rest.len() < 4 {
            self.failed = true;
            return Some(Err(self.off));
        }
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() - 4 < n {
            self.failed = true;
            return Some(Err(self.off));
        }
        self.off += 4 + n;
        Some(Ok(&rest[4..4 + n]))
    }
}

/// Appends one record to a capture.
pub fn append_record(out: &mut Vec<u8>, datagram: &[u8]) {
    out.extend_from_slice(&(datagram.len() as u32).to_le_bytes());
    out.extend_from_slice(datagram);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut cap = Vec::new();
        append_record(&mut cap, b"abc");
        append_record(&mut cap, b"");
        append_record(&mut cap, b"defg");
        let all: Vec<_> = records(&cap).collect();
        assert_eq!(all, vec![Ok(&b"abc"[..]), Ok(&b""[..]), Ok(&b"defg"[..])]);
        let cut = &cap[..cap.len() - 1];
        let all: Vec<_> = records(cut).collect();
        assert_eq!(all.last(), Some(&Err(11)));
    }
}
