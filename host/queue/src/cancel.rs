//! Cancellation: a queued task at once, a running one through its worker.

use serde::Serialize;

use super::{Queue, QueueError, TaskStatus};

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelState {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; its worker stops it and marks it cancelled.
    Cancelling,
    /// It had already finished (with this status).
    AlreadyFinished(TaskStatus),
    NotFound,
}

impl Queue {
    /// Cancels a queued task at once, or asks a running one to stop.
    pub async fn cancel(&self, task_id: &str) -> Result<CancelState, QueueError> {
        let mut conn = self.conn.clone();
        let state: String = self
            .scripts
            .cancel
            .arg(self.keys.prefix())
            .arg("")
            .arg(task_id)
            .arg(self.config.result_ttl.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(match state.as_str() {
            "cancelled" => CancelState::Cancelled,
            "cancelling" => CancelState::Cancelling,
            "missing" => CancelState::NotFound,
            other => match other.strip_prefix("final:").and_then(TaskStatus::parse) {
                Some(status) => CancelState::AlreadyFinished(status),
                None => return Err(QueueError::Reply(format!("cancel answered `{other}`"))),
            },
        })
    }
}
