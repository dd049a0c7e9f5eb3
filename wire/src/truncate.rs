//! Slow-request string truncation, as mod_wsgi 6.x does it: strings that do not
//! fit their buffer are cut to `C - 4` bytes followed by `...`.

/// Buffer capacity *C* (including the terminating NUL of the reference's C
/// buffers) of each slow-request string field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowStringCap {
    /// 204 `slow_log_id`.
    LogId = 64,
    /// 210 `slow_method`, 211 `slow_scheme`, 215 `slow_protocol`.
    Short = 16,
    /// 212 `slow_hostname`, 213 `slow_script_name`.
    Name = 256,
    /// 214 `slow_path_info`, 217 `slow_user_agent`.
    Long = 512,
    /// 216 `slow_peer_ip`.
    PeerIp = 46,
}

/// Length on the wire of a source string of `n` bytes in a buffer of
/// capacity `cap`.
pub fn truncated_len(n: usize, cap: usize) -> usize {
    if n < cap {
        n
    } else if cap >= 4 {
        cap - 1
    } else {
        cap.saturating_sub(1)
    }
}

/// Copies `src` into `out` with the truncation rule for capacity `cap`,
/// returning the number of bytes written. `out` must hold at least
/// `cap - 1` bytes; extra room is not used.
pub fn truncate_into(src: &[u8], cap: usize, out: &mut [u8]) -> usize {
    let n = truncated_len(src.len(), cap).min(out.len());
    if src.len() < cap {
        out[..n].copy_from_slice(&src[..n]);
        return n;
    }
    if cap >= 4 && n == cap - 1 {
        out[..cap - 4].copy_from_slice(&src[..cap - 4]);
        out[cap - 4..cap - 1].copy_from_slice(b"...");
        return n;
    }
    out[..n].copy_from_slice(&src[..n]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_rule() {
        let mut out = [0u8; 600];
        let cap = SlowStringCap::Long as usize;
        let s = vec![b'a'; 511];
        assert_eq!(truncate_into(&s, cap, &mut out), 511);
        assert_eq!(&out[..511], &s[..]);
        let s = vec![b'b'; 512];
        let n = truncate_into(&s, cap, &mut out);
        assert_eq!(n, 511);
        assert_eq!(&out[..508], &s[..508]);
        assert_eq!(&out[508..511], b"...");
        let n = truncate_into(
            b"GETLONGMETHODNAME",
            SlowStringCap::Short as usize,
            &mut out,
        );
        assert_eq!(&out[..n], b"GETLONGMETHO...");
        assert_eq!(truncate_into(b"", 16, &mut out), 0);
    }
}
