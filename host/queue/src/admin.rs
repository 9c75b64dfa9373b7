//! The dead-letter stream as an operator sees it: list, requeue, purge.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{Queue, QueueError};

/// One dead-lettered task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlqEntry {
    pub entry_id: String,
    pub fields: BTreeMap<String, String>,
}

impl Queue {
    /// Newest dead-lettered tasks first.
    pub async fn dlq(&self, count: usize) -> Result<Vec<DlqEntry>, QueueError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.dlq())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(entries
            .into_iter()
            .map(|(entry_id, fields)| DlqEntry { entry_id, fields })
            .collect())
    }

    /// Requeues one DLQ entry (by entry id) or all (`None`) with fresh
    /// attempts; returns how many tasks went back.
    pub async fn requeue(&self, entry_id: Option<&str>) -> Result<u64, QueueError> {
        if let Some(id) = entry_id {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
            if !(digits(ms) && digits(seq)) {
                return Err(QueueError::Invalid {
                    field: "entry_id",
                    message: format!("`{id}` is not a stream entry id like 1718000000000-0"),
                });
            }
        }
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .requeue
            .arg(self.keys.prefix())
            .arg("")
            .arg(entry_id.unwrap_or("all"))
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Deletes every DLQ entry; their tasks expire after the result TTL.
    pub async fn purge_dlq(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.keys.dlq())
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await?;
        let task_ids: Vec<String> = entries
            .iter()
            .filter_map(|(_, fields)| fields.get("task_id").cloned())
            .collect();
        let mut homes = self.homes(&task_ids).await?.into_iter();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Exactly the entries read: one dead-lettered meanwhile stays.
        for (entry_id, fields) in &entries {
            if let Some(task_id) = fields.get("task_id") {
                let ttl = self.config.result_ttl.as_secs() as i64;
                let home = homes.next().unwrap_or_else(|| self.keys.task(task_id));
                pipe.expire(format!("{home}:retries"), ttl).ignore();
                // A hosted task lives as long as its record.
                if home == self.keys.task(task_id) {
                    pipe.expire(home, ttl).ignore();
                }
            }
            pipe.xdel(self.keys.dlq(), &[entry_id]).ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        Ok(entries.len() as u64)
    }
}
