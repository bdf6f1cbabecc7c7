//! What the sampler reads from a node's Prometheus text exposition: the counters the console
//! charts and alarms on, summed per pipeline.

use std::collections::BTreeMap;

/// Pipeline id → value.
pub type PerPipeline = BTreeMap<u32, f64>;

/// One node's counters, each summed over its other labels per pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeCounters {
    /// `otter_load_rows_total{pipeline}`: rows Load committed.
    pub rows: PerPipeline,
    /// `otter_retries_total{pipeline,stage}`: stage workers restarted after a failure.
    pub failures: PerPipeline,
    /// `otter_conflicts_total{pipeline,table,outcome}`: rows changed on both sites.
    pub conflicts: PerPipeline,
}

impl NodeCounters {
    /// Reads the counters from `text`; `None` when it holds none of them (not an otter-node).
    pub fn parse(text: &str) -> Option<Self> {
        let rows = by_pipeline(text, "otter_load_rows_total");
        let failures = by_pipeline(text, "otter_retries_total");
        let conflicts = by_pipeline(text, "otter_conflicts_total");
        if rows.is_none() && failures.is_none() && conflicts.is_none() {
            return None;
        }
        Some(Self {
            rows: rows.unwrap_or_default(),
            failures: failures.unwrap_or_default(),
            conflicts: conflicts.unwrap_or_default(),
        })
    }
}

/// The `name` series: pipeline id → value summed over the other labels (a series without a
/// pipeline label, from an older node, counts as pipeline 0); `None` when there is none.
pub fn by_pipeline(text: &str, name: &str) -> Option<PerPipeline> {
    let mut found: Option<PerPipeline> = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let pipeline = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .and_then(|(labels, _)| {
                labels.split(',').find_map(|l| {
                    l.trim()
                        .strip_prefix("pipeline=\"")
                        .and_then(|v| v.strip_suffix('"'))
                        .and_then(|v| v.parse::<u32>().ok())
                })
            })
            .unwrap_or(0);
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found
                .get_or_insert_with(BTreeMap::new)
                .entry(pipeline)
                .or_insert(0.0) += v;
        }
    }
    found
}

/// How much each pipeline's counter grew from `before` to `now` (a counter that went down, a
/// restarted node, counts from zero).
pub fn growth(now: &PerPipeline, before: &PerPipeline) -> PerPipeline {
    now.iter()
        .map(|(pid, v)| {
            let v0 = before.get(pid).copied().unwrap_or(0.0);
            (*pid, if *v >= v0 { v - v0 } else { *v })
        })
        .collect()
}

/// Adds `add` into `into`, pipeline by pipeline, scaled by `factor`.
pub fn add_scaled(into: &mut PerPipeline, add: &PerPipeline, factor: f64) {
    for (pid, v) in add {
        *into.entry(*pid).or_insert(0.0) += v * factor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_split_by_pipeline_and_ignore_lookalikes() {
        let text = "# TYPE otter_load_rows_total counter\notter_load_rows_total 120\notter_load_rows_total{pipeline=\"2\"} 30\notter_load_rows_total{node=\"1\",pipeline=\"7\"} 5\notter_load_rows_total_other 9\notter_retries_total{pipeline=\"2\",stage=\"load\"} 3\notter_retries_total{pipeline=\"2\",stage=\"select\"} 1\n";
        let c = NodeCounters::parse(text).unwrap();
        assert_eq!(c.rows, BTreeMap::from([(0, 120.0), (2, 30.0), (7, 5.0)]));
        assert_eq!(c.failures, BTreeMap::from([(2, 4.0)]));
        assert!(c.conflicts.is_empty());
        assert_eq!(NodeCounters::parse("up 1\n"), None);
    }

    #[test]
    fn growth_restarts_from_zero_after_a_reset() {
        let before = BTreeMap::from([(1, 10.0), (2, 50.0)]);
        let now = BTreeMap::from([(1, 15.0), (2, 4.0), (3, 2.0)]);
        assert_eq!(
            growth(&now, &before),
            BTreeMap::from([(1, 5.0), (2, 4.0), (3, 2.0)])
        );
    }
}
