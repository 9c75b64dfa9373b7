//! Bybit v5 public market data (docs/conventions/market-data.md): trade and mark-price
//! klines, funding history, instruments and risk limits, fetched page by
//! page into a caller's sink, resumably, with throttling retried and gaps
//! reported (never filled).
//!
//! Knows nothing of Redis, files or the sandbox: the caller hands a
//! [`CandleSink`] that says what it already holds and stores what arrives.
//! The only engine type used is [`Candles`](stratbox_engine::candles::Candles).

pub mod client;
#[cfg(feature = "test-support")]
pub mod fake;
pub mod fetch;
pub mod instrument;
pub mod interval;
pub mod parse;

pub use client::{BybitClient, ClientConfig, Retry, DEFAULT_BASE_URL};
pub use fetch::{
    fetch_candles, fetch_funding, missing_ranges, CandleRequest, CandleSink, FetchOptions,
    FetchReport, FundingRate, Gap, KlineKind,
};
pub use instrument::{Instrument, Tier};
pub use interval::Interval;

/// What can go wrong talking to Bybit or walking its pages. Each names the
/// endpoint, and a bad answer names the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A non-zero `retCode` other than throttling (10001: bad parameter).
    #[error("bybit {endpoint}: retCode {code}: {message}")]
    Api {
        endpoint: String,
        code: i64,
        message: String,
    },
    /// An HTTP status other than 200 that is not throttling.
    #[error("bybit {endpoint}: HTTP {status}: {body}")]
    Http {
        endpoint: String,
        status: u16,
        body: String,
    },
    /// Still throttled (retCode 10006, HTTP 403 or 429) after every attempt.
    #[error("bybit {endpoint}: still throttled after {attempts} attempts ({last})")]
    Throttled {
        endpoint: String,
        attempts: u32,
        last: String,
    },
    /// The request did not get an answer (connection refused, timeout).
    #[error("bybit {endpoint}: request failed: {message}")]
    Transport { endpoint: String, message: String },
    /// An answer not in Bybit's shape; `field` is a path such as
    /// `result.list[3][2] (highPrice)`.
    #[error("bybit {endpoint}: unexpected answer: {field}: {reason}")]
    Shape {
        endpoint: String,
        field: String,
        reason: String,
    },
    /// Pages stopped moving backwards (the same page twice).
    #[error("bybit {endpoint}: paging made no progress at {at_ms} ms")]
    Stalled { endpoint: String, at_ms: i64 },
    /// A bad request parameter, named.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The caller's sink could not store or read what it holds.
    #[error("cannot store the fetched data: {0}")]
    Sink(String),
}

impl Error {
    pub(crate) fn shape(
        endpoint: &str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Shape {
            endpoint: endpoint.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Installs the process-wide rustls crypto provider, once. With this crate's
/// `tls` feature every reqwest client in the process (the CLI's API client
/// too, by feature unification) takes its TLS from it, and building one
/// before it is installed panics: call this first thing in a program that
/// links this crate. A second call does nothing. `ring` (deprecated for
/// lacking post-quantum key exchange) builds with a C compiler alone,
/// unlike aws-lc-rs (cmake); public market data is not secret.
pub fn install_tls_provider() {
    #[cfg(feature = "tls")]
    {
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
