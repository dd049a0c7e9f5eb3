//! Text formatting of durations, byte counts and windows, shared by the
//! widgets and `--once`: one place decides how `46.1ms` or `1.5KB` looks.

/// `Nµs` below 1 ms, `N.Nms` below 1 s, else `N.NNs`; `-` for none.
pub fn fmt_seconds(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1}ms", s * 1000.0),
        Some(s) => format!("{s:.2}s"),
    }
}

/// A metric's value: whole numbers as integers (below 10^15), others with
/// four significant digits (one decimal from 100 up), trailing zeros cut.
pub fn fmt_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let decimals = if v.abs() >= 100.0 {
        1
    } else {
        (3 - v.abs().log10().floor() as i64).clamp(0, 9) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `NB`, then `N.NKB` … `N.NPB` (base 1024).
pub fn fmt_bytes(n: f64) -> String {
    if n < 1024.0 {
        return format!("{}B", n.max(0.0) as u64);
    }
    let mut n = n;
    for unit in ["KB", "MB", "GB", "TB"] {
        n /= 1024.0;
        if n < 1024.0 {
            return format!("{n:.1}{unit}");
        }
    }
    format!("{:.1}PB", n / 1024.0)
}

/// `10s`, `1m`, `10m`.
pub fn fmt_window(s: f64) -> String {
    if s >= 60.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{s:.0}s")
    }
}

/// `s` cut to `n` characters, the last one replaced by `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_seconds(None), "-");
        assert_eq!(fmt_seconds(Some(0.0005)), "500µs");
        assert_eq!(fmt_seconds(Some(0.0461)), "46.1ms");
        assert_eq!(fmt_seconds(Some(2.5)), "2.50s");
        assert_eq!(fmt_bytes(1000.0), "1000B");
        assert_eq!(fmt_bytes(1536.0), "1.5KB");
        assert_eq!(fmt_bytes(3.0 * 1048576.0), "3.0MB");
        assert_eq!(fmt_window(600.0), "10m");
        assert_eq!(fmt_window(10.0), "10s");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(fmt_number(1234.0), "1234");
        assert_eq!(fmt_number(-3.0), "-3");
        assert_eq!(fmt_number(12.9), "12.9");
        assert_eq!(fmt_number(0.004), "0.004");
        assert_eq!(fmt_number(2.0 / 3.0), "0.6667");
        assert_eq!(fmt_number(1234.56), "1234.6");
        assert_eq!(fmt_number(1e20), "100000000000000000000");
    }
}
