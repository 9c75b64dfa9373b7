//! Redis connections shared by the store, the queue and the worker.

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// Commands fail after this long without a reply, so a hung server turns
/// into an error the caller retries instead of a stuck task slot.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: starts at 10 ms and doubles, capped at 1 s, so a
/// restarted Redis is found again within a second of coming back.
const RECONNECT_MIN: Duration = Duration::from_millis(10);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// A multiplexed connection that reconnects by itself. Cheap to clone;
/// every clone shares one socket, so it must never carry a blocking
/// command (use [`connect_blocking`] for `XREADGROUP ... BLOCK`).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    connect_with(url, RESPONSE_TIMEOUT).await
}

/// A connection of its own for blocking reads: its response timeout is
/// longer than any `BLOCK` the caller issues.
pub async fn connect_blocking(
    url: &str,
    longest_block: Duration,
) -> anyhow::Result<ConnectionManager> {
    connect_with(url, longest_block + RESPONSE_TIMEOUT).await
}

async fn connect_with(url: &str, response_timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("invalid redis url `{url}`"))?;
    let config = ConnectionManagerConfig::new()
        .set_min_delay(RECONNECT_MIN)
        .set_max_delay(RECONNECT_MAX)
        .set_number_of_retries(6)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("cannot connect to redis at {url}"))
}
