//! `mod_wsgi-telemetry dump`: bind the telemetry socket (or read a capture
//! file) and print every datagram decoded, as text or one JSON object per
//! line.
//!
//! The text format is the reference `dump`'s (mod_wsgi-telemetry 1.1.0) character for character: Python's
//! float `repr`, `str(list)`, ISO-8601 stamps with milliseconds and
//! `+00:00`, except that control and bidi characters in BYTES values are
//! written as visible escapes ([`crate::printable`]) instead of reaching the
//! terminal. The JSON format keeps the exact strings. It never removes a
//! socket another process is receiving on (see [`crate::ingest::socket::bind`]).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use wire::{Sample, Value};

/// Options of `dump`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Unlike the reference `dump`, this never steals the socket path from a running \
`serve`: a socket another process is receiving on is refused (stop `serve`, or \
use another --listen path and point the reporter there). Ctrl-C exits quietly \
with status 0 and removes the socket file. The text format writes control and \
bidi characters of strings as escapes (\\x1b, \\u{202e}); --json keeps the \
exact strings, written with JSON escapes (\\u001b, \\u202e).")]
pub(crate) struct DumpArgs {
    /// Datagram socket to bind (`unix:<path>` only).
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "unix:/tmp/mod_wsgi-telemetry.sock",
        value_parser = crate::cmd::args::parse_unix_spec
    )]
    pub(crate) listen: PathBuf,
    /// Octal permission bits (0 to 0777) applied to the socket after bind.
    #[arg(long, value_name = "MODE", default_value = "0660", value_parser = crate::cmd::args::parse_socket_mode)]
    pub(crate) socket_mode: u32,
    /// Group name or numeric GID to chown the socket to.
    #[arg(long, value_name = "GROUP", value_parser = crate::cmd::args::parse_socket_group)]
    pub(crate) socket_group: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Shorthand for `--format json`: one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Stop after N successfully decoded datagrams (0 = forever).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) count: u64,
    /// Decode a capture file (`u32 LE length` + datagram records) instead of
    /// listening on a socket.
    #[arg(long, value_name = "CAPTURE", conflicts_with_all = ["listen", "socket_mode", "socket_group"])]
    pub(crate) file: Option<PathBuf>,
}

/// Output format of `dump`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The reference's human-readable block per datagram.
    Text,
    /// One JSON object per line: `{"kind","pid","seq","stamp","fields"}`.
    Json,
}

/// Runs `dump`; returns the exit status.
pub(crate) fn run(args: DumpArgs) -> anyhow::Result<i32> {
    let format = if args.json { Format::Json } else { args.format };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    // Returns false when output is closed (e.g. `dump | head`).
    let mut emit =
        |dgram: &[u8], out: &mut io::BufWriter<io::StdoutLock<'_>>| -> io::Result<bool> {
            if let Some(e) = wire::oversize_error(dgram.len()) {
                out.flush()?;
                eprintln!("decode error: {e}");
                return Ok(true);
            }
            match wire::decode(dgram) {
                Ok(s) => {
                    let text = match format {
                        Format::Text => format_text(&s),
                        Format::Json => format_json(&s),
                    };
                    out.write_all(text.as_bytes())?;
                    out.write_all(b"\n")?;
                    seen += 1;
                    Ok(args.count == 0 || seen < args.count)
                }
                Err(e) => {
                    out.flush()?;
                    eprintln!("decode error: {e} (len={})", dgram.len());
                    Ok(true)
                }
            }
        };
    let quiet_pipe = |r: io::Result<()>| match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    };

    if let Some(file) = &args.file {
        let buf = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read capture '{}': {e}", file.display()))?;
        let result = (|| -> io::Result<i32> {
            for rec in wire::capture::records(&buf) {
                match rec {
                    Ok(d) => {
                        if !emit(d, &mut out)? {
                            break;
                        }
                    }
                    Err(off) => {
                        out.flush()?;
                        eprintln!(
                            "mod_wsgi-telemetry: capture '{}' is truncated: the record at offset {off} runs past the end",
                            file.display()
                        );
                        return Ok(1);
                    }
                }
            }
            out.flush()?;
            Ok(0)
        })();
        return match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
            other => Ok(other?),
        };
    }

    crate::clock::stop_on_signals();
    let bound =
        crate::ingest::socket::bind(&args.listen, args.socket_mode, args.socket_group.as_deref())?;
    // A timeout as well as EINTR, so a signal that lands between the flag
    // check and recv() is still seen promptly.
    bound
        .socket
        .set_read_timeout(Some(Duration::from_millis(250)))?;
    let mut buf = vec![0u8; wire::RECV_CAPACITY];
    let result = (|| -> io::Result<()> {
        while !crate::clock::stopping() {
            match bound.socket.recv(&mut buf) {
                Ok(n) => {
                    if !emit(&buf[..n], &mut out)? {
                        break;
                    }
                    out.flush()?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        out.flush()
    })();
    quiet_pipe(result)?;
    drop(bound); // removes the socket file
    Ok(0)
}

/// The reference's text block for one sample (without the trailing newline):
/// a blank line, the header line, then one `name = value` line per field.
pub(crate) fn format_text(s: &Sample) -> String {
    let h = &s.header;
    let mut t = String::with_capacity(64 + 48 * s.fields.len());
    let _ = write!(
        t,
        "\n[{}] pid={} seq={} kind={} v{}",
        iso_utc_ms(h.stamp),
        h.pid,
        h.seq,
        h.kind.name(),
        h.version
    );
    for (id, v) in &s.fields {
        let _ = write!(t, "\n  {:<30} = ", wire::field_name(*id));
        text_value(&mut t, v);
    }
    t
}

fn text_value(t: &mut String, v: &Value) {
    match v {
        Value::U64(x) => {
            let _ = write!(t, "{x}");
        }
        Value::I64(x) => {
            let _ = write!(t, "{x}");
        }
        Value::F64(x) => t.push_str(&py_float_repr(*x)),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => t.push_str(&crate::printable::printable(s)),
            Err(_) => {
                for byte in b {
                    let _ = write!(t, "{byte:02x}");
                }
            }
        },
        Value::I32Array(a) => {
            t.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    t.push_str(", ");
                }
                let _ = write!(t, "{x}");
            }
            t.push(']');
        }
        Value::F64Array(a) => {
            t.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    t.push_str(", ");
                }
                t.push_str(&py_float_repr(*x));
            }
            t.push(']');
        }
    }
}

/// One sample as a single-line JSON object `{"kind","pid","seq","stamp",
/// "fields"}`; BYTES become text (invalid UTF-8 replaced), arrays stay
/// arrays, non-finite floats become `null`; characters a terminal would act
/// on are `\uNNNN` escapes ([`crate::printable::json_printable`]).
pub(crate) fn format_json(s: &Sample) -> String {
    let mut fields = serde_json::Map::with_capacity(s.fields.len());
    for (id, v) in &s.fields {
        fields.insert(wire::field_name(*id).into_owned(), json_value(v));
    }
    let obj = serde_json::json!({
        "kind": s.header.kind.name(),
        "pid": s.header.pid,
        "seq": s.header.seq,
        "stamp": json_f64(s.header.stamp),
        "fields": fields,
    });
    crate::printable::json_printable(obj.to_string())
}

fn json_f64(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn json_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::U64(x) => J::from(*x),
        Value::I64(x) => J::from(*x),
        Value::F64(x) => json_f64(*x),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::I32Array(a) => J::Array(a.iter().map(|x| J::from(*x)).collect()),
        Value::F64Array(a) => J::Array(a.iter().map(|x| json_f64(*x)).collect()),
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed
/// notation for decimal exponents -4..16 (whole values keep `.0`), otherwise
/// scientific with a signed, at least two-digit exponent (`1e-05`, `1e+16`).
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7".
    let mut sci = format!("{:e}", x);
    if sci.bytes().filter(u8::is_ascii_digit).count() - exp_digits(&sci) >= 17 {
        // 17 significant digits: several strings round-trip; Python prints
        // the correctly rounded one (ties to even), Rust's shortest mode may
        // round a tie up (1.0051651000976563 vs Python's ...562).
        sci = format!("{:.16e}", x);
    }
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

fn exp_digits(sci: &str) -> usize {
    sci.split_once('e')
        .map_or(0, |(_, e)| e.bytes().filter(u8::is_ascii_digit).count())
}

/// `datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec=
/// "milliseconds")`: microseconds rounded half-even, then truncated to
/// milliseconds. Stamps outside years 1..=9999 (where Python raises) print as
/// the raw number.
pub(crate) fn iso_utc_ms(stamp: f64) -> String {
    // Python: modf, microseconds rounded half-even, carried into seconds.
    if !stamp.is_finite() || !(-62_135_596_800.0..253_402_300_800.0).contains(&stamp) {
        return py_float_repr(stamp);
    }
    let mut secs = stamp.trunc();
    let mut us = ((stamp - secs) * 1e6).round_ties_even();
    if us >= 1e6 {
        us -= 1e6;
        secs += 1.0;
    } else if us < 0.0 {
        us += 1e6;
        secs -= 1.0;
    }
    let secs = secs as i64;
    let ms = us as i64 / 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return py_float_repr(stamp);
    }
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}+00:00",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{Header, Kind};

    #[test]
    fn python_float_repr() {
        for (x, want) in [
            (1.0, "1.0"),
            (0.005, "0.005"),
            (1795315410.572355, "1795315410.572355"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1.2345e16, "1.2345e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456.0, "123456.0"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0051651000976562, "1.0051651000976562"),
            (1.0346450805664062e-10, "1.0346450805664063e-10"),
        ] {
            assert_eq!(py_float_repr(x), want, "{x:?}");
        }
    }

    #[test]
    fn iso_stamps() {
        assert_eq!(
            iso_utc_ms(1795315410.572355),
            "2026-11-22T02:43:30.572+00:00"
        );
        assert_eq!(iso_utc_ms(0.0), "1970-01-01T00:00:00.000+00:00");
        // 0.9999996 s rounds to 1.000000 s (microseconds half-even, then carry)
        assert_eq!(iso_utc_ms(0.9999996), "1970-01-01T00:00:01.000+00:00");
        assert_eq!(iso_utc_ms(-0.5), "1969-12-31T23:59:59.500+00:00");
        assert_eq!(iso_utc_ms(951_782_400.0), "2000-02-29T00:00:00.000+00:00");
        assert_eq!(iso_utc_ms(f64::NAN), "nan");
        assert_eq!(iso_utc_ms(1e20), "1e+20");
    }

    fn sample() -> Sample {
        Sample {
            header: Header::new(Kind::PROCESS_STARTED, 19867, 1, 1795315410.572355),
            fields: vec![
                (1, Value::Bytes(b"6.1.1".to_vec())),
                (7, Value::U64(19862)),
                (13, Value::F64(0.005)),
                (8, Value::Bytes(vec![0xff, 0x41])),
                (70, Value::I32Array(vec![1, -2])),
                (999, Value::F64Array(vec![1.0, 2.5])),
            ],
        }
    }

    #[test]
    fn text_block() {
        let want = "\n[2026-11-22T02:43:30.572+00:00] pid=19867 seq=1 kind=process_started v1\n  \
mod_wsgi_version               = 6.1.1\n  \
process_parent_pid             = 19862\n  \
switch_interval                = 0.005\n  \
interpreter_name               = ff41\n  \
server_time_min                = [1, -2]\n  \
id999                          = [1.0, 2.5]";
        assert_eq!(format_text(&sample()), want);
    }

    #[test]
    fn json_line() {
        let j: serde_json::Value = serde_json::from_str(&format_json(&sample())).unwrap();
        assert_eq!(j["kind"], "process_started");
        assert_eq!(j["pid"], 19867);
        assert_eq!(j["seq"], 1);
        assert_eq!(j["stamp"].as_f64(), Some(1795315410.572355));
        assert_eq!(j["fields"]["mod_wsgi_version"], "6.1.1");
        assert_eq!(j["fields"]["interpreter_name"], "\u{fffd}A");
        assert_eq!(j["fields"]["id999"], serde_json::json!([1.0, 2.5]));
        let line = format_json(&sample());
        assert!(!line.contains('\n'));
        assert!(line.contains("\"id999\":[1.0,2.5]"), "{line}");
        let keys: Vec<_> = j["fields"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[0], "mod_wsgi_version");
        assert_eq!(keys[5], "id999");
    }
}
