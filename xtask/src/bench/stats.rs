//! Order statistics of timing samples: medians and percentiles by the nearest-rank method.

use std::time::Duration;

/// The `p`-th percentile (0 < p <= 100) of `samples` by nearest rank: the smallest sample with at
/// least `p` percent of the samples at or below it. `None` when there are no samples.
pub(crate) fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of `samples`: the mean of the two middle samples when their number is even.
pub(crate) fn median(samples: &[Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        Some(sorted[middle])
    } else {
        Some((sorted[middle - 1] + sorted[middle]) / 2)
    }
}

/// Milliseconds as a float, the unit every figure of the report uses for time.
pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(values: &[u64]) -> Vec<Duration> {
        values.iter().copied().map(Duration::from_micros).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&micros(&[5, 1, 3])), Some(Duration::from_micros(3)));
        assert_eq!(median(&micros(&[4, 1, 3, 2])), Some(Duration::from_nanos(2500)));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples = micros(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&samples, 100.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&samples, 0.1), Some(Duration::from_micros(1)));

        // With few samples the 99th percentile is the largest one, never past the end.
        let few = micros(&[7, 3, 9]);
        assert_eq!(percentile(&few, 99.0), Some(Duration::from_micros(9)));
        assert_eq!(percentile(&[], 99.0), None);
    }
}
