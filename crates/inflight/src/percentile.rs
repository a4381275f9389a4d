//! Percentiles of measured samples: the one definition behind every figure the CLI and the
//! benchmarks print (`inflight load`, `inflight bench`, `inflight stats`, `cargo bench`).
//!
//! The nearest-rank method: the `p`-th percentile of `n` sorted samples is the sample of rank
//! `ceil(n * p)` (from 1), so it is always a measured value, and the 100th is the maximum.
//! Pure.
//!
//! ```
//! use inflight::percentile::{P50, P99, P999, nearest_rank};
//!
//! let mut samples: Vec<u32> = (1..=1000).rev().collect();
//! samples.sort_unstable();
//! assert_eq!(nearest_rank(&samples, P50), Some(500));
//! assert_eq!(nearest_rank(&samples, P99), Some(990));
//! assert_eq!(nearest_rank(&samples, P999), Some(999));
//! assert_eq!(nearest_rank::<u32>(&[], P50), None);
//! ```

/// A percentile as an exact fraction, `parts` of `whole` (so that 99.9 is exact).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    /// The numerator, at most `whole`.
    pub parts: u64,
    /// The denominator, above 0.
    pub whole: u64,
}

/// The median.
pub const P50: Fraction = Fraction {
    parts: 50,
    whole: 100,
};
/// The 90th percentile.
pub const P90: Fraction = Fraction {
    parts: 90,
    whole: 100,
};
/// The 99th percentile.
pub const P99: Fraction = Fraction {
    parts: 99,
    whole: 100,
};
/// The 99.9th percentile.
pub const P999: Fraction = Fraction {
    parts: 999,
    whole: 1000,
};
/// The maximum.
pub const MAX: Fraction = Fraction { parts: 1, whole: 1 };

/// The nearest-rank percentile `p` of `sorted` (ascending); `None` when it is empty.
///
/// # Panics
/// If `p` is not a fraction in `0..=1` with a denominator above 0.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: Fraction) -> Option<T> {
    assert!(
        p.whole > 0 && p.parts <= p.whole,
        "{p:?} is not a fraction in 0..=1"
    );
    let n = sorted.len() as u64;
    let rank = (n * p.parts).div_ceil(p.whole).max(1);
    sorted.get(rank as usize - 1).copied()
}

/// [`nearest_rank`], 0 for no samples: for tables that print a figure either way.
pub fn percentile_or_zero<T: Copy + Default>(sorted: &[T], p: Fraction) -> T {
    nearest_rank(sorted, p).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_a_measured_sample() {
        let one = [7u64];
        for p in [P50, P90, P99, P999, MAX] {
            assert_eq!(nearest_rank(&one, p), Some(7));
        }
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, P50), Some(5));
        assert_eq!(nearest_rank(&ten, P90), Some(9));
        assert_eq!(nearest_rank(&ten, P99), Some(10));
        assert_eq!(nearest_rank(&ten, MAX), Some(10));
        assert_eq!(nearest_rank(&ten, Fraction { parts: 0, whole: 1 }), Some(1));
        assert_eq!(percentile_or_zero::<u64>(&[], P99), 0);
    }
}
