//! `--fail-if` health thresholds for `top --once`.
//!
//! Syntax: `METRIC OP VALUE`, spaces optional, e.g. `capacity>0.9`,
//! `p95 >= 2s`, `5xx_rate>5%`, `rss>2GB`, `live_processes<1`.
//! `OP` is one of `>`, `>=`, `<`, `<=`, `==`, `!=`. `VALUE` is a number
//! with an optional unit: `%` (÷100), `ms`, `s`, `us`/`µs`, `KB`, `MB`,
//! `GB`, `TB` (powers of 1024). A metric without a value (e.g. `p95` with no
//! requests in the window) never fails.

use super::view_model::Header;

/// Metrics `--fail-if` understands, with what they measure.
pub const METRICS: &[(&str, &str)] = &[
    (
        "capacity",
        "thread capacity utilization (0..1), latest tick, weighted by threads",
    ),
    ("busy", "busy threads / total threads (0..1), latest tick"),
    ("rps", "requests per second, latest tick"),
    ("rps_1m", "requests per second over the last minute"),
    ("p50", "median request time over the window (seconds)"),
    (
        "p95",
        "95th percentile request time over the window (seconds)",
    ),
    (
        "p99",
        "99th percentile request time over the window (seconds)",
    ),
    ("latency_max", "longest request in the window (seconds)"),
    ("queue", "mean daemon queue time, latest tick (seconds)"),
    (
        "5xx_rate",
        "share of 5xx responses over the last minute (0..1)",
    ),
    (
        "4xx_rate",
        "share of 4xx responses over the last minute (0..1)",
    ),
    ("cpu", "CPU cores in use, sum over live processes"),
    ("rss", "resident memory, sum over live processes (bytes)"),
    ("slow_active", "slow requests in flight"),
    ("slow_1m", "slow requests started in the last minute"),
    ("live_processes", "processes sending samples"),
    (
        "gone_processes",
        "processes that stopped or went silent (still remembered)",
    ),
    (
        "decode_errors",
        "undecodable datagrams counted by the server",
    ),
];

/// Comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One parsed `--fail-if` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub metric: &'static str,
    pub op: Op,
    pub threshold: f64,
    /// As the user wrote it.
    pub text: String,
}

/// A condition that holds, with the measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub condition: Condition,
    pub value: f64,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {} {} {}",
            self.condition.metric,
            fmt_num(self.value),
            self.condition.op.text(),
            fmt_num(self.condition.threshold)
        )
    }
}

fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// Parses `METRIC OP VALUE` (clap value parser).
pub fn parse(s: &str) -> Result<Condition, String> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let pos = t
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| format!("'{s}': expected METRIC OP VALUE, e.g. 'p95>2.0'"))?;
    let (name, rest) = t.split_at(pos);
    let (op, value) = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ]
    .iter()
    .find_map(|(p, op)| rest.strip_prefix(p).map(|v| (*op, v)))
    .ok_or_else(|| format!("'{s}': unknown operator"))?;
    let metric = METRICS
        .iter()
        .map(|(m, _)| *m)
        .find(|m| m.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let names: Vec<&str> = METRICS.iter().map(|(m, _)| *m).collect();
            format!(
                "'{s}': unknown metric '{name}' (one of: {})",
                names.join(", ")
            )
        })?;
    let threshold = parse_value(value).ok_or_else(|| format!("'{s}': bad value '{value}'"))?;
    Ok(Condition {
        metric,
        op,
        threshold,
        text: s.to_string(),
    })
}

fn parse_value(v: &str) -> Option<f64> {
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let k = 1024f64;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1.0,
        "%" => 0.01,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "b" => 1.0,
        "kb" => k,
        "mb" => k * k,
        "gb" => k * k * k,
        "tb" => k * k * k * k,
        _ => return None,
    };
    n.is_finite().then_some(n * mult)
}

/// The value of `metric` in a header, if there is one.
pub fn value(metric: &str, h: &Header) -> Option<f64> {
    match metric {
        "capacity" => h.utilization.or(h.busy_fraction()),
        "busy" => h.busy_fraction(),
        "rps" => Some(h.rps_now),
        "rps_1m" => h.rps_1m,
        "p50" => h.p50,
        "p95" => h.p95,
        "p99" => h.p99,
        "latency_max" => h.max,
        "queue" => h.queue_mean,
        "5xx_rate" => h.status_share(4),
        "4xx_rate" => h.status_share(3),
        "cpu" => Some(h.cpu_total),
        "rss" => Some(h.rss_total),
        "slow_active" => Some(h.slow_active as f64),
        "slow_1m" => Some(h.slow_1m as f64),
        "live_processes" => Some(h.live_processes as f64),
        "gone_processes" => Some(h.other_processes as f64),
        "decode_errors" => Some(h.decode_errors as f64),
        _ => None,
    }
}

/// The conditions that hold.
pub fn evaluate(conds: &[Condition], h: &Header) -> Vec<Failure> {
    conds
        .iter()
        .filter_map(|c| {
            let v = value(c.metric, h)?;
            c.op.holds(v, c.threshold).then(|| Failure {
                condition: c.clone(),
                value: v,
            })
        })
        .collect()
}

/// Help text for `--fail-if`.
pub fn help_text() -> String {
    let mut s = String::from(
        "Health check for --once: exit 1 when CONDITION holds (repeatable; any \
         holding condition fails). CONDITION is METRIC OP VALUE, e.g. \
         'capacity>0.9', 'p95>2s', '5xx_rate>5%', 'rss>=2GB', \
         'live_processes<1'. OP: > >= < <= == !=. VALUE units: % ms s us KB MB GB TB. \
         A metric with no value (no requests in the window) never fails. Metrics:",
    );
    for (m, d) in METRICS {
        s.push_str(&format!("\n  {m:<15} {d}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms_and_units() {
        let c = parse("capacity>0.9").unwrap();
        assert_eq!((c.metric, c.op, c.threshold), ("capacity", Op::Gt, 0.9));
        let c = parse(" p95 >= 250ms ").unwrap();
        assert_eq!((c.metric, c.op), ("p95", Op::Ge));
        assert!((c.threshold - 0.25).abs() < 1e-12);
        assert!((parse("5xx_rate>5%").unwrap().threshold - 0.05).abs() < 1e-12);
        assert_eq!(parse("rss>2GB").unwrap().threshold, 2.0 * 1073741824.0);
        assert!(parse("nonsense>1").unwrap_err().contains("unknown metric"));
        assert!(parse("p95").is_err());
        assert!(parse("p95>fast").is_err());
    }

    #[test]
    fn evaluates_against_header() {
        let h = Header {
            p95: Some(3.0),
            status: [0.0, 90.0, 0.0, 0.0, 10.0],
            live_processes: 2,
            ..Header::default()
        };
        let conds = vec![
            parse("p95>2").unwrap(),
            parse("5xx_rate>0.2").unwrap(),
            parse("p50>1").unwrap(), // no value: never fails
            parse("live_processes<3").unwrap(),
        ];
        let f = evaluate(&conds, &h);
        let names: Vec<&str> = f.iter().map(|f| f.condition.metric).collect();
        assert_eq!(names, vec!["p95", "live_processes"]);
        assert_eq!(f[0].to_string(), "p95 = 3 > 2");
    }
}
