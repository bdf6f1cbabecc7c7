//! One table compared: chunks along the source's primary key, a checksum of each on both sides,
//! differing chunks narrowed to keys by row hashes, differing keys read again after the
//! pipeline's delay before they are reported.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::Value;

use crate::check::sql::Shape;
use crate::check::{
    threads_running, CheckError, CheckOptions, Delay, Difference, DifferenceKind, Pair, Side,
    TableReport,
};

/// Smallest chunk the sizing goes down to.
const MIN_CHUNK_ROWS: u64 = 10;

/// A key's values, and its canonical text (to match keys across sides and to print them).
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) values: Vec<Value>,
    pub(crate) text: String,
}

impl Key {
    fn new(names: &[String], values: Vec<Value>) -> Key {
        let text = names
            .iter()
            .zip(&values)
            .map(|(n, v)| format!("{n}={}", v.as_sql(false)))
            .collect::<Vec<_>>()
            .join(", ");
        Key { values, text }
    }
}

/// A key found different in a chunk, not yet confirmed.
#[derive(Debug, Clone)]
struct Candidate {
    key: Key,
    /// The source row at the previous read (`None`: no row), once read.
    last_source: Option<Option<Vec<Value>>>,
}

/// `col=value, …` of a row.
pub(crate) fn image(columns: &[String], row: &[Value]) -> String {
    columns
        .iter()
        .zip(row)
        .map(|(n, v)| format!("{n}={}", v.as_sql(false)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Walks tables for one check.
pub(crate) struct Walker<'a, D> {
    pub(crate) source: &'a mut Side,
    pub(crate) target: &'a mut Side,
    pub(crate) opts: &'a CheckOptions,
    pub(crate) delay: &'a D,
}

impl<D: Delay> Walker<'_, D> {
    /// Compares one table.
    pub(crate) async fn table(&mut self, pair: &Pair) -> Result<TableReport, CheckError> {
        let started = Instant::now();
        let mut report = TableReport {
            source: pair.source_name.clone(),
            target: pair.target_name.clone(),
            ..TableReport::default()
        };
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut lo: Option<Key> = None;
        let mut chunk = self
            .opts
            .chunk_rows
            .clamp(MIN_CHUNK_ROWS, self.opts.max_chunk_rows);
        let mut rows_read = 0u64;
        loop {
            self.throttle().await?;
            let lo_values = lo.as_ref().map(|k| k.values.as_slice());
            let t0 = Instant::now();
            let hi = self.boundary(&pair.source, lo_values, chunk).await?;
            let hi_values = hi.as_ref().map(|k| k.values.as_slice());
            let (s_count, s_sum) =
                checksum(self.source, &pair.source, lo_values, hi_values).await?;
            let (t_count, t_sum) =
                checksum(self.target, &pair.target, lo_values, hi_values).await?;
            report.chunks += 1;
            report.source_rows += s_count;
            report.target_rows += t_count;
            if (s_count, s_sum) != (t_count, t_sum) {
                report.differing_chunks += 1;
                candidates.extend(self.narrow(pair, lo_values, hi_values).await?);
            }
            let took = t0.elapsed().max(Duration::from_millis(1));
            // Size the next chunk so it takes about chunk_time, changing at most 2× at a time.
            let scaled = chunk as f64 * self.opts.chunk_time.as_secs_f64() / took.as_secs_f64();
            chunk = (scaled.clamp(chunk as f64 / 2.0, chunk as f64 * 2.0) as u64)
                .clamp(MIN_CHUNK_ROWS, self.opts.max_chunk_rows);
            rows_read += s_count + t_count;
            if let Some(cap) = self.opts.max_rows_per_sec.filter(|c| *c > 0) {
                let due = Duration::from_secs_f64(rows_read as f64 / cap as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            match hi {
                Some(hi) => lo = Some(hi),
                None => break,
            }
        }
        self.settle(pair, candidates, &mut report).await?;
        report.secs = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Waits while the pipeline's delay or the source's running threads are above their limits.
    async fn throttle(&mut self) -> Result<(), CheckError> {
        let since = Instant::now();
        let mut said = Instant::now();
        loop {
            let delay = self.delay.delay().await;
            let running = threads_running(self.source).await?;
            let slow = delay.is_some_and(|d| d > self.opts.max_delay);
            if !slow && running <= self.opts.max_threads_running {
                return Ok(());
            }
            if said.elapsed() > Duration::from_secs(10) {
                tracing::warn!(
                    delay_ms = delay.map(|d| d.as_millis() as u64),
                    threads_running = running,
                    waited_s = since.elapsed().as_secs(),
                    "check: waiting for the pipeline's delay or the source's load to fall"
                );
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The last key of the next chunk of `rows` rows after `lo`; `None` when fewer are left.
    async fn boundary(
        &mut self,
        shape: &Shape,
        lo: Option<&[Value]>,
        rows: u64,
    ) -> Result<Option<Key>, CheckError> {
        let sql = shape.boundary(lo.is_some(), rows)?;
        let found = self
            .source
            .exec_rows(&sql, Shape::range_params(lo, None))
            .await?;
        Ok(found
            .into_iter()
            .next()
            .map(|r| Key::new(&shape.keys, r.unwrap_raw().into_iter().flatten().collect())))
    }

    /// The keys that differ in a range, by row hash.
    async fn narrow(
        &mut self,
        pair: &Pair,
        lo: Option<&[Value]>,
        hi: Option<&[Value]>,
    ) -> Result<Vec<Candidate>, CheckError> {
        let s = hashes(self.source, &pair.source, lo, hi).await?;
        let mut t = hashes(self.target, &pair.target, lo, hi).await?;
        let mut out = Vec::new();
        for (text, (key, hash)) in s {
            match t.remove(&text) {
                Some((_, h)) if h == hash => {}
                _ => out.push(Candidate {
                    key,
                    last_source: None,
                }),
            }
        }
        out.extend(t.into_values().map(|(key, _)| Candidate {
            key,
            last_source: None,
        }));
        Ok(out)
    }

    /// Reads every candidate again, `rechecks` times, at least `recheck_wait` and twice the
    /// pipeline's delay apart: a key equal on both sides drops out; one whose source row stood
    /// still between two reads while the target still differed is a difference; one whose
    /// source row changed every time is unsettled (in flight).
    async fn settle(
        &mut self,
        pair: &Pair,
        mut candidates: Vec<Candidate>,
        report: &mut TableReport,
    ) -> Result<(), CheckError> {
        let columns = &pair.source.columns;
        for _ in 0..=self.opts.rechecks {
            if candidates.is_empty() {
                return Ok(());
            }
            let delay = self.delay.delay().await.unwrap_or_default();
            tokio::time::sleep(self.opts.recheck_wait.max(delay * 2)).await;
            let mut left = Vec::new();
            for mut c in candidates {
                let (s, t) = (
                    row(self.source, &pair.source, &c.key.values, false).await?,
                    row(self.target, &pair.target, &c.key.values, false).await?,
                );
                if s == t {
                    continue;
                }
                let stood_still = c.last_source.as_ref() == Some(&s);
                if stood_still || self.opts.rechecks == 0 {
                    let kind = match (&s, &t) {
                        (Some(_), None) => DifferenceKind::Missing,
                        (None, Some(_)) => DifferenceKind::Extra,
                        _ => DifferenceKind::Changed,
                    };
                    if report.differences.len() < self.opts.max_differences {
                        report.differences.push(Difference {
                            key: c.key.text.clone(),
                            kind,
                            source: s.as_deref().map(|r| image(columns, r)),
                            target: t.as_deref().map(|r| image(columns, r)),
                            repaired: false,
                            key_values: c.key.values.clone(),
                        });
                    } else {
                        report.more_differences += 1;
                    }
                    continue;
                }
                c.last_source = Some(s);
                left.push(c);
            }
            candidates = left;
        }
        report.unsettled = candidates.into_iter().map(|c| c.key.text).collect();
        Ok(())
    }
}

/// Count and checksum of a range on one side.
async fn checksum(
    side: &mut Side,
    shape: &Shape,
    lo: Option<&[Value]>,
    hi: Option<&[Value]>,
) -> Result<(u64, u64), CheckError> {
    let sql = shape.checksum(lo.is_some(), hi.is_some())?;
    let rows = side.exec_rows(&sql, Shape::range_params(lo, hi)).await?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| mysql_async::from_row_opt::<(u64, u64)>(r).ok())
        .unwrap_or((0, 0)))
}

/// Keys and row hashes of a range on one side, by key text.
async fn hashes(
    side: &mut Side,
    shape: &Shape,
    lo: Option<&[Value]>,
    hi: Option<&[Value]>,
) -> Result<BTreeMap<String, (Key, Value)>, CheckError> {
    let sql = shape.hashes(lo.is_some(), hi.is_some())?;
    let rows = side.exec_rows(&sql, Shape::range_params(lo, hi)).await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let mut values: Vec<Value> = r.unwrap_raw().into_iter().flatten().collect();
        let Some(hash) = values.pop() else { continue };
        let key = Key::new(&shape.keys, values);
        out.insert(key.text.clone(), (key, hash));
    }
    Ok(out)
}

/// The compared columns of the row with `key` on one side.
pub(crate) async fn row(
    side: &mut Side,
    shape: &Shape,
    key: &[Value],
    lock: bool,
) -> Result<Option<Vec<Value>>, CheckError> {
    let sql = shape.row(lock)?;
    let rows = side.exec_rows(&sql, key.to_vec()).await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| r.unwrap_raw().into_iter().flatten().collect()))
}
