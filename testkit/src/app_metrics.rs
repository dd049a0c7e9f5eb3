//! Application metrics (`app_metrics` datagrams, kind 10) as the module
//! keeps them, for the tests that build such datagrams.

use wire::app::{AppMetric, AppValue, Distribution};
use wire::histogram::{bucket_index, BUCKETS};

/// The totals of a distribution of values, as the module keeps them.
#[derive(Clone, Debug)]
pub struct DistTotals {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest (+inf with none).
    pub min: f64,
    /// The largest (0 with none).
    pub max: f64,
    /// Counts per latency bucket (`wire::histogram`).
    pub buckets: [u32; BUCKETS],
}

impl DistTotals {
    /// The totals of `values`.
    pub fn of(values: &[f64]) -> DistTotals {
        let mut buckets = [0u32; BUCKETS];
        for &v in values {
            buckets[bucket_index(v)] += 1;
        }
        DistTotals {
            count: values.len() as u64,
            sum: values.iter().sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(0.0, f64::max),
            buckets,
        }
    }

    /// This distribution as the metric `name` of a datagram.
    pub fn metric<'a>(&'a self, name: &'a str) -> AppMetric<'a> {
        AppMetric {
            name: name.as_bytes(),
            value: AppValue::Distribution(Distribution {
                count: self.count,
                sum: self.sum,
                min: self.min,
                max: self.max,
                buckets: &self.buckets,
            }),
        }
    }
}
