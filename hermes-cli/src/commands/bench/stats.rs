//! Counting answers and errors, and latency histograms.

use std::time::Duration;

use hermes_node::RequestError;
use serde_json::{json, Map, Value};

use super::workload::OpKind;

/// Bits of precision below the leading bit of a recorded latency.
const SUB_BUCKET_BITS: u32 = 7;
/// Buckets per power of two; latencies below twice this are counted exactly.
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Latencies above this (about 18 minutes) are counted as this.
const LATENCY_NS_MAX: u64 = 1 << 40;

/// Latencies in nanoseconds in log-linear buckets: exact below 256 ns, then 128 buckets per
/// power of two, so that a reported percentile is at most 0.8 % above the true one. Buckets are
/// allocated up to the largest latency seen.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    /// How many latencies fell in each bucket.
    counts: Vec<u64>,
    /// How many latencies were recorded.
    total: u64,
    /// Their sum, for the mean.
    sum_ns: u128,
    /// The largest one, exactly.
    max_ns: u64,
}

/// The bucket of a latency.
fn bucket_of(latency_ns: u64) -> usize {
    if latency_ns < 2 * SUB_BUCKETS {
        return latency_ns as usize;
    }
    let magnitude = 63 - latency_ns.leading_zeros();
    let shift = magnitude - SUB_BUCKET_BITS;
    ((u64::from(shift) << SUB_BUCKET_BITS) + (latency_ns >> shift)) as usize
}

/// The largest latency of a bucket.
fn bucket_high_ns(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < 2 * SUB_BUCKETS {
        return bucket;
    }
    let shift = (bucket >> SUB_BUCKET_BITS) - 1;
    let mantissa = (bucket & (SUB_BUCKETS - 1)) + SUB_BUCKETS;
    ((mantissa + 1) << shift) - 1
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        let latency_ns = u64::try_from(latency.as_nanos())
            .unwrap_or(u64::MAX)
            .min(LATENCY_NS_MAX);
        let bucket = bucket_of(latency_ns);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.total += 1;
        self.sum_ns += u128::from(latency_ns);
        self.max_ns = self.max_ns.max(latency_ns);
    }

    /// Adds the latencies of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum_ns += other.sum_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// How many latencies were recorded.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The latency at or below which a fraction `quantile` of the latencies lie (the top of its
    /// bucket, never above the maximum); `None` if nothing was recorded.
    pub fn quantile_ns(&self, quantile: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((quantile * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_high_ns(bucket).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }

    /// The largest latency; `None` if nothing was recorded.
    pub fn max_ns(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max_ns)
    }

    /// The mean latency; `None` if nothing was recorded.
    pub fn mean_ns(&self) -> Option<u64> {
        (self.total > 0).then(|| u64::try_from(self.sum_ns / u128::from(self.total)).unwrap_or(0))
    }
}

/// The percentiles reported, with their names.
pub const PERCENTILES: [(&str, f64); 3] = [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)];

/// The short name of a request error, as reported (`timeout`, `overloaded`, ...).
pub fn error_name(error: &RequestError) -> &'static str {
    match error {
        RequestError::NotResponsible { .. } => "not_responsible",
        RequestError::NoActiveReplicas(_) => "no_active_replicas",
        RequestError::NetworkError(_) => "network_error",
        RequestError::QuorumFailed { .. } => "quorum_failed",
        RequestError::ValueNotFound => "value_not_found",
        RequestError::Timeout { .. } => "timeout",
        RequestError::Overloaded(_) => "overloaded",
        RequestError::CasFailed => "cas_failed",
        RequestError::Aborted => "aborted",
        RequestError::InvalidArgument(_) => "invalid_argument",
        RequestError::Stopped => "stopped",
    }
}

/// The name of an answer that does not fit the request (a value for a write, ...).
pub const UNEXPECTED_ANSWER: &str = "unexpected_answer";

/// What one client saw of one kind of operation.
#[derive(Clone, Debug, Default)]
pub struct KindStats {
    /// Answered without error: reads (found or absent), writes, compare-and-swaps (swapped or
    /// compared a different value).
    pub answered: u64,
    /// Reads that found the key absent.
    pub absent: u64,
    /// Compare-and-swaps that compared a different value (nothing written).
    pub compared_different: u64,
    /// Errors by name, in order of first occurrence.
    pub errors: Vec<(&'static str, u64)>,
    /// Errors after which the operation may still take effect.
    pub outcome_unknown: u64,
    /// Latencies of the answered operations, from invocation to answer.
    pub latency: LatencyHistogram,
}

impl KindStats {
    /// Counts one error.
    pub fn count_error(&mut self, name: &'static str, outcome_unknown: bool) {
        match self.errors.iter_mut().find(|(known, _)| *known == name) {
            Some((_, count)) => *count += 1,
            None => self.errors.push((name, 1)),
        }
        if outcome_unknown {
            self.outcome_unknown += 1;
        }
    }

    /// How many errors there were.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, count)| count).sum()
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &KindStats) {
        self.answered += other.answered;
        self.absent += other.absent;
        self.compared_different += other.compared_different;
        for (name, count) in &other.errors {
            match self.errors.iter_mut().find(|(known, _)| known == name) {
                Some((_, mine)) => *mine += count,
                None => self.errors.push((name, *count)),
            }
        }
        self.outcome_unknown += other.outcome_unknown;
        self.latency.merge(&other.latency);
    }
}

/// What one client (or, merged, all clients) saw, per kind of operation.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Indexed by [`OpKind::index`].
    pub kinds: [KindStats; 3],
}

impl RunStats {
    /// The counts of one kind.
    pub fn kind(&self, kind: OpKind) -> &KindStats {
        &self.kinds[kind.index()]
    }

    /// The counts of one kind, to update.
    pub fn kind_mut(&mut self, kind: OpKind) -> &mut KindStats {
        &mut self.kinds[kind.index()]
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &RunStats) {
        for (mine, theirs) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.merge(theirs);
        }
    }

    /// Operations answered without error, of every kind.
    pub fn answered(&self) -> u64 {
        self.kinds.iter().map(|k| k.answered).sum()
    }

    /// Errors, of every kind.
    pub fn errors(&self) -> u64 {
        self.kinds.iter().map(KindStats::error_count).sum()
    }
}

/// A latency in microseconds with one decimal, for JSON.
fn micros(latency_ns: u64) -> f64 {
    (latency_ns as f64 / 100.0).round() / 10.0
}

/// A latency for people: `8.5 µs`, `412 µs`, `1.25 ms`, `2.10 s`.
pub fn format_latency(latency_ns: u64) -> String {
    let latency = latency_ns as f64;
    if latency_ns < 10_000 {
        format!("{:.1} µs", latency / 1e3)
    } else if latency_ns < 1_000_000 {
        format!("{:.0} µs", latency / 1e3)
    } else if latency_ns < 1_000_000_000 {
        format!("{:.2} ms", latency / 1e6)
    } else {
        format!("{:.2} s", latency / 1e9)
    }
}

/// Operations per second over `elapsed`.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// One kind's counts as a JSON object.
pub fn kind_json(kind: OpKind, stats: &KindStats, elapsed: Duration) -> Value {
    let mut latency = Map::new();
    for (name, quantile) in PERCENTILES {
        latency.insert(
            name.into(),
            json!(stats.latency.quantile_ns(quantile).map(micros)),
        );
    }
    latency.insert("max".into(), json!(stats.latency.max_ns().map(micros)));
    latency.insert("mean".into(), json!(stats.latency.mean_ns().map(micros)));
    let errors: Map<String, Value> = stats
        .errors
        .iter()
        .map(|(name, count)| ((*name).to_string(), json!(count)))
        .collect();
    let mut object = Map::new();
    object.insert("ok".into(), json!(stats.answered));
    match kind {
        OpKind::Read => {
            object.insert("absent".into(), json!(stats.absent));
        }
        OpKind::Cas => {
            object.insert(
                "swapped".into(),
                json!(stats.answered - stats.compared_different),
            );
            object.insert("compared_different".into(), json!(stats.compared_different));
        }
        OpKind::Write => {}
    }
    object.insert(
        "ops_per_sec".into(),
        json!(rounded(per_second(stats.answered, elapsed))),
    );
    object.insert("errors".into(), Value::Object(errors));
    object.insert("outcome_unknown".into(), json!(stats.outcome_unknown));
    object.insert("latency_us".into(), Value::Object(latency));
    Value::Object(object)
}

/// A rate with one decimal.
pub fn rounded(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous_high = None;
        for bucket in 0..bucket_of(LATENCY_NS_MAX) + 1 {
            let high = bucket_high_ns(bucket);
            if let Some(previous) = previous_high {
                assert_eq!(
                    bucket_of(previous + 1),
                    bucket,
                    "bucket {bucket} starts after {previous}"
                );
            }
            assert_eq!(bucket_of(high), bucket, "bucket {bucket}");
            previous_high = Some(high);
        }
        for latency in [0, 1, 255, 256, 257, 1_000, 123_456, 987_654_321, 1 << 39] {
            let high = bucket_high_ns(bucket_of(latency));
            assert!(high >= latency);
            assert!((high - latency) as f64 <= latency as f64 / 128.0 + 1.0);
        }
    }

    #[test]
    fn quantiles_of_a_known_spread() {
        let mut histogram = LatencyHistogram::default();
        for micros in 1..=1000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        let p50 = histogram.quantile_ns(0.5).unwrap_or(0);
        assert!((500_000..=504_000).contains(&p50), "{p50}");
        let p99 = histogram.quantile_ns(0.99).unwrap_or(0);
        assert!((990_000..=998_000).contains(&p99), "{p99}");
        assert_eq!(histogram.quantile_ns(1.0), Some(1_000_000));
        assert_eq!(histogram.max_ns(), Some(1_000_000));
        assert_eq!(histogram.mean_ns(), Some(500_500));
        let mut merged = LatencyHistogram::default();
        merged.merge(&histogram);
        merged.merge(&histogram);
        assert_eq!(merged.total(), 2000);
        assert_eq!(merged.quantile_ns(0.5), histogram.quantile_ns(0.5));
        assert_eq!(LatencyHistogram::default().quantile_ns(0.5), None);
    }

    #[test]
    fn latencies_print_with_units() {
        assert_eq!(format_latency(8_500), "8.5 µs");
        assert_eq!(format_latency(412_300), "412 µs");
        assert_eq!(format_latency(1_254_000), "1.25 ms");
        assert_eq!(format_latency(2_100_000_000), "2.10 s");
    }
}
