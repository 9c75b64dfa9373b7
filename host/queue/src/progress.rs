//! Progress of running tasks, as their workers report it.

use super::{Queue, QueueError};

impl Queue {
    /// Writes the progress (0..=1) of running tasks, and of their records,
    /// in one round trip. A task that has finished keeps its final value.
    pub async fn report_progress(&self, items: &[(String, f64)]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.progress.prepare_invoke();
        invocation.arg(self.keys.prefix()).arg("");
        for (task_id, progress) in items {
            invocation
                .arg(task_id)
                .arg(format!("{:.4}", progress.clamp(0.0, 1.0)));
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }
}
