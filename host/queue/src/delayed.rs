//! The delayed set: retries waiting out their backoff, moved back to
//! their streams once due.

use super::{Queue, QueueError};

impl Queue {
    /// Moves due retries back to their streams; returns how many moved.
    pub async fn promote_due(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .promote
            .arg(self.keys.prefix())
            .arg("")
            .arg(1000)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }
}
