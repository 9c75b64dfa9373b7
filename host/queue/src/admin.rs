//! The dead-letter stream as an operator sees it: list, requeue, purge.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{Queue, QueueError};

/// DLQ entries per script call of a requeue-all or a purge. A script
/// blocks Redis for its whole run, and a PING arriving meanwhile can wait
/// for it and the next one. On the 2-core VM a requeue costs Redis about
/// 13 us per entry and a purge 7. Side by side in one run, 100,000
/// entries (`cargo bench -p stratbox --bench dlq -- --batch 50 --batch
/// 25`, 3 runs): at 50 a PING's p99 was 2.7-3.4 ms during the requeue
/// (and 1.6-7.6 ms earlier, with builds running); at 25, 0.93-1.03 ms,
/// the requeue as fast (2.5-3.0 s) and the purge 1.8-2.2 s instead of
/// 1.2-1.4. The margin under the 5 ms target is worth the slower purge.
pub const DLQ_BATCH: usize = 25;

/// DLQ entries read per round trip when [`Queue::dlq_entries`] filters by
/// lane: about a millisecond of Redis each.
const DLQ_SCAN_PAGE: usize = 1_000;

/// One dead-lettered task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlqEntry {
    pub entry_id: String,
    pub fields: BTreeMap<String, String>,
    /// The task's lane (its entry's `lane` field); absent for the default
    /// lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
}

impl DlqEntry {
    fn new(entry_id: String, fields: BTreeMap<String, String>) -> Self {
        let lane = fields.get("lane").cloned();
        Self {
            entry_id,
            fields,
            lane,
        }
    }
}

impl Queue {
    /// Newest dead-lettered tasks first.
    pub async fn dlq(&self, count: usize) -> Result<Vec<DlqEntry>, QueueError> {
        self.dlq_entries(count, None).await
    }

    /// Newest dead-lettered tasks first; with `lane`, only that named
    /// lane's (a tenant's view). Filtering reads the stream back in pages
    /// until `count` match: at worst the whole DLQ (at most
    /// `dlq_max_len` entries), so it suits a request, not a loop.
    pub async fn dlq_entries(
        &self,
        count: usize,
        lane: Option<&str>,
    ) -> Result<Vec<DlqEntry>, QueueError> {
        let mut conn = self.conn.clone();
        let mut found = Vec::new();
        let mut from = "+".to_string();
        while found.len() < count {
            let page = if lane.is_some() { DLQ_SCAN_PAGE } else { count };
            let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
                .arg(self.keys.dlq())
                .arg(&from)
                .arg("-")
                .arg("COUNT")
                .arg(page)
                .query_async(&mut conn)
                .await?;
            let last_page = entries.len() < page;
            if let Some((id, _)) = entries.last() {
                from = format!("({id}");
            }
            let room = count - found.len();
            found.extend(
                entries
                    .into_iter()
                    .map(|(entry_id, fields)| DlqEntry::new(entry_id, fields))
                    .filter(|e| lane.is_none() || e.lane.as_deref() == lane)
                    .take(room),
            );
            if last_page || lane.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// Requeues one DLQ entry (by entry id) or all (`None`) with fresh
    /// attempts; returns how many tasks went back. All goes in batches of
    /// [`DLQ_BATCH`] entries, one script call each: each batch is atomic
    /// for its entries, Redis serves other clients between batches, and a
    /// requeue cut short leaves only entries not yet requeued.
    pub async fn requeue(&self, entry_id: Option<&str>) -> Result<u64, QueueError> {
        let Some(id) = entry_id else {
            return self.dlq_batches(DLQ_BATCH, None, false).await;
        };
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(ms) && digits(seq)) {
            return Err(QueueError::Invalid {
                field: "entry_id",
                message: format!("`{id}` is not a stream entry id like 1718000000000-0"),
            });
        }
        let mut conn = self.conn.clone();
        let (n, _): (u64, u64) = self
            .scripts
            .requeue
            .arg(self.keys.prefix())
            .arg("")
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Deletes every DLQ entry, in batches as [`Queue::requeue`] goes;
    /// their tasks expire after the result TTL. Entries dead-lettered
    /// meanwhile stay.
    pub async fn purge_dlq(&self) -> Result<u64, QueueError> {
        self.dlq_batches(DLQ_BATCH, None, true).await
    }

    /// Requeues every DLQ entry, `batch` entries per script call
    /// (the bench weighs the size; [`Queue::requeue`] uses [`DLQ_BATCH`]).
    pub async fn requeue_all_by(&self, batch: usize) -> Result<u64, QueueError> {
        self.dlq_batches(batch.max(1), None, false).await
    }

    /// Purges the DLQ, `batch` entries per script call.
    pub async fn purge_dlq_by(&self, batch: usize) -> Result<u64, QueueError> {
        self.dlq_batches(batch.max(1), None, true).await
    }

    /// Requeues (or purges) the DLQ's entries up to its newest one now, in
    /// script calls of `batch` entries, at most `most_batches` of them.
    /// Returns the tasks requeued (or the entries purged).
    pub(crate) async fn dlq_batches(
        &self,
        batch: usize,
        most_batches: Option<usize>,
        purge: bool,
    ) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        // Entries dead-lettered after this one are left: a task that fails
        // again at once must not keep a requeue-all going.
        let newest: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.dlq())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let Some((bound, _)) = newest.into_iter().next() else {
            return Ok(0);
        };
        let ttl = self.config.result_ttl.as_secs();
        let mut total = 0;
        for _ in 0..most_batches.unwrap_or(usize::MAX) {
            let mut invocation = if purge {
                self.scripts.purge.prepare_invoke()
            } else {
                self.scripts.requeue.prepare_invoke()
            };
            invocation.arg(self.keys.prefix()).arg("");
            if purge {
                invocation.arg(ttl);
            } else {
                invocation.arg("upto");
            }
            invocation.arg(&bound).arg(batch);
            let (done, taken): (u64, u64) = invocation.invoke_async(&mut conn).await?;
            total += done;
            if (taken as usize) < batch {
                break;
            }
        }
        Ok(total)
    }
}
