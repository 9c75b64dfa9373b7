//! Redis plumbing shared by the store, the queue and the service: the
//! reconnecting connections, the one wall-clock reading, and a private
//! `redis-server` for the demo, the benches and the tests.
#![forbid(unsafe_code)]

pub mod clock;
pub mod connection;
pub mod local;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use clock::now_ms;
pub use local::{LocalRedis, Persistence};
