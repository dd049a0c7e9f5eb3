//! The 65-bucket latency histogram of every per-phase histogram (fields 90-97).
//!
//! Bucket 0 holds everything below 1.25 ms; buckets 1–63 split each octave of
//! milliseconds `[2^o, 2^(o+1))` into four equal sub-buckets; bucket 64 is the
//! overflow at 65.536 s and above. Boundaries are half-open `[lo, hi)`.

/// Number of buckets in every per-phase histogram.
pub const BUCKETS: usize = 65;

/// The bucket index of a duration in seconds.
///
/// The octave comes from the float's exponent, not from a floating `log2`,
/// so values just below a power of two land correctly. NaN and negative
/// values go to bucket 0.
#[inline]
pub fn bucket_index(seconds: f64) -> usize {
    let ms = seconds * 1000.0;
    // `!(ms >= 1.0)` also catches NaN (hence not `ms < 1.0`).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(ms >= 1.0) {
        return 0;
    }
    if ms >= 65536.0 {
        return 64;
    }
    let bits = ms.to_bits();
    // ms is normal and in [1, 65536): the unbiased exponent is the octave.
    let octave = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // The mantissa's top two bits are the quarter within the octave.
    let sub = ((bits >> 50) & 0b11) as i64;
    (4 * octave + sub) as usize
}

/// Lower bound of bucket `i` in milliseconds (`0` for bucket 0).
pub fn lower_ms(i: usize) -> f64 {
    match i {
        0 => 0.0,
        64.. => 65536.0,
        _ => (1u64 << (i / 4)) as f64 * (1.0 + (i % 4) as f64 / 4.0),
    }
}

/// Upper bound of bucket `i` in milliseconds (infinite for bucket 64).
pub fn upper_ms(i: usize) -> f64 {
    if i >= 64 {
        f64::INFINITY
    } else {
        (1u64 << (i / 4)) as f64 * (1.0 + ((i % 4) + 1) as f64 / 4.0)
    }
}

/// The value at quantile `q` (0..=1) of a histogram, in seconds, linearly
/// interpolated inside the bucket that holds it (`None` when empty). The
/// overflow bucket reports its lower bound.
pub fn quantile_seconds(counts: &[i64], q: f64) -> Option<f64> {
    let total: i64 = counts.iter().map(|&c| c.max(0)).sum();
    if total <= 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0i64;
    for (i, &c) in counts.iter().enumerate() {
        let c = c.max(0);
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let lo = lower_ms(i);
            let hi = upper_ms(i);
            if !hi.is_finite() {
                return Some(lo / 1000.0);
            }
            let frac = (rank - seen as f64) / c as f64;
            return Some((lo + (hi - lo) * frac) / 1000.0);
        }
        seen += c;
    }
    Some(lower_ms(counts.len().saturating_sub(1)) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanity_points() {
        for (ms, idx) in [
            (0.5, 0),
            (1.25, 1),
            (2.0, 4),
            (9.9, 12),
            (10.0, 13),
            (250.0, 31),
            (1000.0, 39),
            (65535.0, 63),
            (65536.0, 64),
            (0.0, 0),
            (1.0, 0),
            (1.2499, 0),
            (1.5, 2),
            (1.75, 3),
            (1.9999999, 3),
            (300.0, 32),
        ] {
            assert_eq!(bucket_index(ms / 1000.0), idx, "{ms} ms");
        }
        assert_eq!(bucket_index(f64::NAN), 0);
        assert_eq!(bucket_index(-1.0), 0);
        assert_eq!(bucket_index(f64::INFINITY), 64);
    }

    #[test]
    fn every_bucket_holds_its_bounds() {
        for i in 1..64 {
            let lo = lower_ms(i);
            let hi = upper_ms(i);
            assert_eq!(bucket_index(lo / 1000.0), i, "lower bound of {i}");
            // just below the upper bound stays in i, the bound itself moves on
            let below = f64::from_bits((hi / 1000.0).to_bits() - 1);
            assert_eq!(bucket_index(below), i, "below upper bound of {i}");
            assert_eq!(bucket_index(hi / 1000.0), i + 1, "upper bound of {i}");
            assert_eq!(upper_ms(i), lower_ms(i + 1));
        }
        assert_eq!(upper_ms(0), 1.25);
    }

    #[test]
    fn frexp_definition_agrees() {
        // 6.x's formula with frexp (o = e - 1, sub = (2m - 1) * 4),
        // checked on a dense sweep.
        let mut ms = 1.0f64;
        while ms < 70000.0 {
            let o = ms.log2().floor();
            let mut sub = ((ms / 2f64.powf(o) - 1.0) * 4.0).floor() as usize;
            if sub > 3 {
                sub = 3;
            }
            let want = if ms >= 65536.0 {
                64
            } else {
                4 * o as usize + sub
            };
            // log2 may misround just under powers of two; skip those points.
            if (ms.log2() - ms.log2().round()).abs() > 1e-9 {
                assert_eq!(bucket_index(ms / 1000.0), want, "{ms}");
            }
            ms *= 1.0137;
        }
    }

    #[test]
    fn quantiles() {
        let mut c = vec![0i64; BUCKETS];
        assert_eq!(quantile_seconds(&c, 0.5), None);
        c[31] = 10; // [224, 256) ms
        let p50 = quantile_seconds(&c, 0.5).unwrap();
        assert!(p50 > 0.224 && p50 < 0.256, "{p50}");
        c[64] = 1000;
        assert_eq!(quantile_seconds(&c, 0.99), Some(65.536));
    }
}
