//! Small statistics: the Wilson score interval, medians, lift.

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959963984540054;

/// The Wilson score interval of `successes` out of `n` at `z` (95%: [`Z95`]); `None` when
/// `n == 0` (no trials: no rate, no interval).
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    // At 0 or n the bound is exactly 0 or 1 (rounding would leave 0.9999999999999999).
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if successes == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some([lo, hi])
}

/// `successes / n`, `None` when `n == 0`.
pub fn rate(successes: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| successes as f64 / n as f64)
}

/// The median (the mean of the two middle values for an even count); `None` when empty.
/// Sorts `xs` in place.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// `a / b` when both are known and `b > 0`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Round to 6 significant decimals for output (keeps JSON readable; comparisons in tests use
/// tolerances).
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    /// Reference values: Wilson (1927) / Newcombe (1998) table, and R's `prop.test(correct=FALSE)`.
    #[test]
    fn wilson_matches_published_values() {
        let [lo, hi] = wilson(81, 263, Z95).unwrap();
        assert!(close(lo, 0.2552885198782742), "{lo}");
        assert!((hi - 0.3662).abs() < 1e-4, "{hi}");
        // 0 of 10: [0, 0.2775]; 10 of 10: [0.7225, 1].
        let [lo, hi] = wilson(0, 10, Z95).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - 0.27753).abs() < 1e-4, "{hi}");
        let [lo, hi] = wilson(10, 10, Z95).unwrap();
        assert!((lo - 0.72247).abs() < 1e-4 && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0, Z95), None);
        // The interval holds the rate and narrows with n.
        let a = wilson(5, 10, Z95).unwrap();
        let b = wilson(500, 1000, Z95).unwrap();
        assert!(a[0] < 0.5 && a[1] > 0.5 && b[1] - b[0] < a[1] - a[0]);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(rate(0, 0), None);
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(round6(1.23456789), 1.234568);
    }
}
