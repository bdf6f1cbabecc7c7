//! How the parser hands events on: each event's entries in binlog order, large rows events
//! written on other tasks meanwhile (`parallel_rows`), entries passed downstream under the
//! parser buffer's byte budget.

use futures::future::BoxFuture;

use super::*;

/// One event's entries, ready to hand on, with the GTID state as of the event.
pub(super) struct Converted {
    pub(super) entries: Vec<ParsedEntry>,
    pub(super) gtid: Option<GtidSet>,
    /// The event's size, counted against [`CONVERT_AHEAD_BYTES`] until it is handed on.
    pub(super) event_bytes: usize,
}

/// How many events the parser converts ahead of the oldest one still being written…
pub(super) const CONVERT_AHEAD: usize = 32;
/// …and how many bytes of events they may hold (one event always passes).
pub(super) const CONVERT_AHEAD_BYTES: usize = 8 << 20;

impl Supervisor {
    /// Counts a received event and shows its position in the status.
    pub(super) fn observe(
        &self,
        raw: &source::RawEvent,
        bytes_counter: &metrics::Counter,
        delay_gauge: &metrics::Gauge,
    ) {
        bytes_counter.increment(raw.event.header().event_size() as u64);
        let ts = raw.event.header().timestamp() as i64 * 1000;
        if ts > 0 {
            delay_gauge.set((now_ms() - ts).max(0) as f64);
        }
        // Per event: no allocation unless the binlog file changed.
        self.status.send_if_modified(|s| match s {
            DestinationStatus::Running {
                position,
                timestamp_ms,
            } if position.file == raw.pos.file => {
                let moved = position.offset != raw.pos.offset;
                position.offset = raw.pos.offset;
                if ts > 0 {
                    *timestamp_ms = ts;
                }
                moved
            }
            _ => {
                *s = DestinationStatus::Running {
                    position: BinlogPosition::new(raw.pos.file.clone(), raw.pos.offset),
                    timestamp_ms: ts,
                };
                true
            }
        });
    }

    /// Writes a deferred rows event's RowChange on another task.
    pub(super) fn write_later(
        &self,
        plan: RowsPlan,
        raw: source::RawEvent,
        mut converted: Converted,
    ) -> BoxFuture<'static, Result<Converted, DestinationError>> {
        let destination = self.name.clone();
        let task = tokio::spawn(async move {
            if let Some(last) = converted.entries.last_mut() {
                plan.run(&raw.event, last)?;
            }
            Ok::<_, ConvertError>(converted)
        });
        Box::pin(async move {
            match task.await {
                Ok(r) => r.map_err(|source| DestinationError::Convert {
                    destination,
                    source,
                }),
                Err(e) => Err(DestinationError::Aborted {
                    destination,
                    message: format!("writing a rows event ended abnormally: {e}"),
                }),
            }
        })
    }

    /// Hands one event's entries downstream in order (waiting for budget and channel space);
    /// `Some` when the destination stops meanwhile or nobody receives any more.
    pub(super) async fn hand_on(
        &mut self,
        converted: Converted,
        skip_through: Option<&BinlogPosition>,
        rows_counter: &metrics::Counter,
    ) -> Option<RunEnd> {
        let Converted { entries, gtid, .. } = converted;
        for entry in entries {
            if skip_through.is_some_and(|s| entry.position.binlog <= *s) {
                continue;
            }
            // Counted without decoding the rows (a full RowChange decode here cost about as
            // much as the conversion itself).
            let shape = entry.shape();
            rows_counter.increment(shape.rows as u64);
            let boundary = shape.boundary.then(|| Cursor {
                position: entry.position.binlog.clone(),
                gtid: gtid.clone(),
                inclusive: false,
            });
            let pos = entry.position.binlog.clone();
            // An entry bigger than the whole budget takes all of it and passes alone.
            let size = entry
                .entry
                .encoded_len()
                .clamp(1, self.config.parser_buffer_bytes);
            let budget = self.budget.clone();
            let send = async {
                let permit = budget
                    .acquire_many_owned(size as u32)
                    .await
                    .map_err(|_| ())?;
                self.tx
                    .send(Buffered {
                        entry,
                        _permit: permit,
                    })
                    .await
                    .map_err(|_| ())
            };
            tokio::select! {
                _ = self.cancel.cancelled() => return Some(RunEnd::Cancelled),
                sent = send => {
                    if sent.is_err() {
                        return Some(RunEnd::ConsumerGone);
                    }
                }
            }
            self.delivered = Some(pos);
            if let Some(b) = boundary {
                self.cursor = Some(b);
            }
        }
        None
    }
}
