//! A table read as `_creationTime` ranges at once: `migrate:readBack` takes `from <= t < to`,
//! the first range without `from`, the last without `to`, so that every document is in exactly
//! one range whatever its creation time (equal times at a boundary included: a boundary belongs
//! to the range it starts).

/// Half-open `[from, to)`; `None`: unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub from: Option<f64>,
    pub to: Option<f64>,
}

impl Range {
    /// Whether a document created at `t` is read by this range.
    #[cfg(test)]
    pub fn contains(&self, t: f64) -> bool {
        self.from.is_none_or(|from| from <= t) && self.to.is_none_or(|to| t < to)
    }
}

/// `n` ranges of about equal width between the first and last creation time of a table (fewer
/// when the times are too close to split), together covering every time.
pub fn split(first: f64, last: f64, n: usize) -> Vec<Range> {
    let mut bounds: Vec<f64> = Vec::with_capacity(n);
    if first.is_finite() && last.is_finite() && last > first {
        let width = last - first;
        for i in 1..n {
            let bound = first + width * (i as f64 / n as f64);
            // Strictly increasing and inside (first, last]: no empty or inverted range.
            if bound > first && bound <= last && bounds.last().is_none_or(|&b| bound > b) {
                bounds.push(bound);
            }
        }
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut from = None;
    for &bound in &bounds {
        ranges.push(Range { from, to: Some(bound) });
        from = Some(bound);
    }
    ranges.push(Range { from, to: None });
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_range_without_bounds_when_there_is_nothing_to_split() {
        let whole = vec![Range { from: None, to: None }];
        assert_eq!(split(5.0, 5.0, 8), whole);
        assert_eq!(split(5.0, 4.0, 8), whole);
        assert_eq!(split(1.0, 2.0, 1), whole);
        assert_eq!(split(f64::NAN, 2.0, 4), whole);
    }

    #[test]
    fn a_boundary_time_is_read_once_by_the_range_it_starts() {
        let ranges = split(1000.0, 1004.0, 4);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[1], Range { from: Some(1001.0), to: Some(1002.0) });
        // Three documents created in the same millisecond, right at a boundary.
        for t in [1001.0, 1001.0, 1001.0, 1000.0, 1004.0, 999.0, 1005.0] {
            assert_eq!(ranges.iter().filter(|r| r.contains(t)).count(), 1, "{t}");
        }
        assert!(ranges[1].contains(1001.0) && !ranges[0].contains(1001.0));
    }

    proptest! {
        #[test]
        fn every_time_is_in_exactly_one_range(
            first in 1.7e12f64..1.8e12,
            width in prop_oneof![Just(0.0), 0.0f64..1e-3, 0.0f64..1e7],
            n in 1usize..64,
            offsets in proptest::collection::vec(-0.1f64..1.1, 1..50),
        ) {
            let last = first + width;
            let ranges = split(first, last, n);
            prop_assert!(!ranges.is_empty() && ranges.len() <= n);
            prop_assert_eq!(ranges[0].from, None);
            prop_assert_eq!(ranges[ranges.len() - 1].to, None);
            for pair in ranges.windows(2) {
                prop_assert_eq!(pair[0].to, pair[1].from);
                prop_assert!(pair[0].from.is_none_or(|from| from < pair[0].to.unwrap()));
            }
            // Times inside, outside and exactly at every boundary.
            let mut times: Vec<f64> = offsets.iter().map(|o| first + width * o).collect();
            times.extend(ranges.iter().filter_map(|r| r.from));
            times.extend([first, last]);
            for t in times {
                prop_assert_eq!(ranges.iter().filter(|r| r.contains(t)).count(), 1, "{}", t);
            }
        }
    }
}
