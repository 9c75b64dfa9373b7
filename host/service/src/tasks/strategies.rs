//! Strategy lifecycle rules that need both the store and the queue.

use stratbox_queue::{Queue, QueueError};
use stratbox_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("strategy {0} not found")]
    NotFound(u64),
    /// Tasks that may still run it; the first few ids are named.
    #[error("strategy {strategy_id} is needed by {} queued or running task(s): {}", tasks.len(), preview(tasks))]
    InUse {
        strategy_id: u64,
        tasks: Vec<String>,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

fn preview(tasks: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = tasks
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if tasks.len() > SHOWN {
        text.push_str(", ...");
    }
    text
}

/// Deletes a strategy unless a queued or running task needs it.
///
/// A submission racing with the delete (validated just before, queued
/// just after) is not stopped here; its run fails as `plugin_not_found`
/// and lands in the DLQ with that reason.
pub async fn delete_strategy(
    store: &Store,
    queue: &Queue,
    strategy_id: u64,
) -> Result<(), DeleteError> {
    let record = store
        .plugin_record_by_id(strategy_id)
        .await?
        .ok_or(DeleteError::NotFound(strategy_id))?;
    let tasks = queue
        .holders(&store.keys().plugin_tasks(&record.sha256))
        .await?;
    if !tasks.is_empty() {
        return Err(DeleteError::InUse { strategy_id, tasks });
    }
    if store.delete_plugin(strategy_id).await? {
        Ok(())
    } else {
        Err(DeleteError::NotFound(strategy_id))
    }
}
