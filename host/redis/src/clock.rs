//! The one wall-clock reading of the service side.

/// Milliseconds since the Unix epoch by the system clock: bookkeeping
/// (records, heartbeats), never strategy input.
pub fn now_ms() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        // A clock before 1970 is broken; 0 sorts it first rather than failing.
        Err(_) => 0,
    }
}
