//! What a queue operation can fail with.

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The submission's guard did not hold: another process went first.
    #[error("guard on {0} did not hold; nothing was submitted")]
    GuardFailed(String),
}
