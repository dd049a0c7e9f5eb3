//! `wire::decode` on arbitrary bytes: must return a sample or an error,
//! never panic or read out of bounds. A decoded sample that re-encodes must
//! be a fixed point: decoding and encoding it again gives the same bytes.
//! An `app_metrics` datagram (kind 10) is also read as metrics, which must
//! give the metrics or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = wire::decode_header(data);
    match wire::decode(data) {
        Ok(sample) => {
            assert_eq!(header.as_ref().ok().map(|h| h.to_bytes()), Some(sample.header.to_bytes()));
            for (id, _) in &sample.fields {
                let _ = wire::field_name(*id);
            }
            let _ = sample.header.kind.name();
            if let Ok(view) = wire::decode_ref(data) {
                match wire::app::decode(&view) {
                    Ok(m) => assert!(m.metrics.iter().all(|m| wire::app::check_name(m.name.as_bytes()).is_ok())),
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
            if let Ok(bytes) = sample.encode() {
                let again = wire::decode(&bytes).expect("re-encoded sample decodes");
                assert_eq!(again.encode().expect("re-encodes"), bytes);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
