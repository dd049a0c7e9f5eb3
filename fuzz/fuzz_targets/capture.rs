//! `wire::capture::records` on arbitrary bytes, decoding every record:
//! records tile the input exactly, or the iterator reports the offset of the
//! first record that runs past the end, once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut consumed = 0usize;
    let mut failed = None;
    for rec in wire::capture::records(data) {
        assert!(failed.is_none(), "a record after the error");
        match rec {
            Ok(d) => {
                consumed += 4 + d.len();
                let _ = wire::decode(d);
            }
            Err(off) => {
                assert_eq!(off, consumed);
                failed = Some(off);
            }
        }
    }
    if failed.is_none() {
        assert_eq!(consumed, data.len());
    }
});
