//! Every datagram of the real mod_wsgi 6.1.1 capture decodes to exactly what
//! the reference decoder produced (names, values, float bits, array
//! contents, wire order), and re-encodes to the original bytes.

use serde_json::Value as J;
use wire::{decode, field_name, Value};

fn check_value(ctx: &str, ours: &Value, theirs: &J) {
    match (ours, theirs) {
        (Value::U64(v), J::Number(n)) => {
            assert!(!n.is_f64(), "{ctx}: reference has a float, we have u64");
            assert_eq!(n.as_u64(), Some(*v), "{ctx}");
        }
        (Value::I64(v), J::Number(n)) => assert_eq!(n.as_i64(), Some(*v), "{ctx}"),
        (Value::F64(v), J::Number(n)) => {
            assert!(n.is_f64(), "{ctx}: reference has an integer, we have f64");
            assert_eq!(n.as_f64().unwrap().to_bits(), v.to_bits(), "{ctx}");
        }
        (Value::Bytes(b), J::String(s)) => assert_eq!(b.as_slice(), s.as_bytes(), "{ctx}"),
        (Value::I32Array(a), J::Array(xs)) => {
            let theirs: Vec<i64> = xs.iter().map(|x| x.as_i64().unwrap()).collect();
            let ours: Vec<i64> = a.iter().map(|&x| x as i64).collect();
            assert_eq!(ours, theirs, "{ctx}");
        }
        (Value::F64Array(a), J::Array(xs)) => {
            assert_eq!(a.len(), xs.len(), "{ctx}");
            for (x, y) in a.iter().zip(xs) {
                assert_eq!(x.to_bits(), y.as_f64().unwrap().to_bits(), "{ctx}");
            }
        }
        _ => panic!("{ctx}: type mismatch: ours {ours:?}, reference {theirs}"),
    }
}

#[test]
fn anchor_capture_matches_reference_decoder() {
    let expected = testkit::reference_decoding();
    let datagrams = testkit::corpus_records();
    assert_eq!(datagrams.len(), 11_888);
    assert_eq!(expected.len(), datagrams.len());
    for (i, (d, e)) in datagrams.iter().zip(&expected).enumerate() {
        let s = decode(d).unwrap_or_else(|err| panic!("datagram {i}: {err}"));
        assert_eq!(e["size"].as_u64(), Some(d.len() as u64));
        assert_eq!(e["version"].as_u64(), Some(s.header.version as u64));
        assert_eq!(e["kind"].as_u64(), Some(s.header.kind.0 as u64));
        assert_eq!(e["kind_name"].as_str(), Some(&*s.header.kind.name()));
        assert_eq!(e["flags"].as_u64(), Some(s.header.flags as u64));
        assert_eq!(e["pid"].as_u64(), Some(s.header.pid as u64));
        assert_eq!(e["seq"].as_u64(), Some(s.header.seq as u64));
        assert_eq!(
            e["stamp"].as_f64().unwrap().to_bits(),
            s.header.stamp.to_bits(),
            "datagram {i} stamp"
        );
        let fields = e["fields"].as_object().unwrap();
        assert_eq!(fields.len(), s.fields.len(), "datagram {i}: field count");
        for ((id, v), (name, jv)) in s.fields.iter().zip(fields) {
            assert_eq!(&*field_name(*id), name, "datagram {i}: wire order");
            check_value(&format!("datagram {i} field {name}"), v, jv);
        }
        assert_eq!(&s.encode().unwrap(), d, "datagram {i}: re-encode");
    }
}

#[test]
fn every_prefix_of_real_datagrams_is_handled() {
    // Truncation anywhere never panics; only the full datagram decodes.
    for d in testkit::corpus_records().iter().step_by(97) {
        for cut in 0..d.len() {
            let _ = decode(&d[..cut]);
        }
    }
}
