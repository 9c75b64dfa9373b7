//! The HTTP side: one GET against the configured base URL, with Bybit's
//! throttling (retCode 10006, HTTP 403 from the edge, and 429) retried
//! with exponential backoff and every other non-zero `retCode` reported
//! with its message (docs/conventions/market-data.md, "Errors and
//! throttling").

use crate::parse::envelope;
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bybit's public mainnet host; testnet (`https://api-testnet.bybit.com`)
/// answers the same way.
pub const DEFAULT_BASE_URL: &str = "https://api.bybit.com";

/// retCode for "too many visits": back off and retry.
pub const RET_RATE_LIMIT: i64 = 10006;

/// How throttled requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles per retry.
    pub base: Duration,
    /// Longest single wait.
    pub cap: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            // 6 tries wait 0.5+1+2+4+8 = 15.5 s in all: longer than
            // Bybit's rolling 5 s IP window, short enough to give up on a
            // ban (an edge 403 ban lasts 10 minutes or more).
            attempts: 6,
            // Bybit's public limit is 600 requests per 5 s per IP; half a
            // second is a tenth of that window.
            base: Duration::from_millis(500),
            // Past 8 s a wait spans the whole window again; waiting longer
            // only delays the give-up.
            cap: Duration::from_secs(8),
        }
    }
}

impl Retry {
    /// The wait before retry number `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        self.base
            .saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX))
            .min(self.cap)
    }
}

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme and host, no trailing slash needed.
    pub base_url: String,
    /// Per request, connect to last byte.
    pub timeout: Duration,
    pub retry: Retry,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            // A 1000-row kline page is about 90 KB: 30 s only trips on a
            // stuck connection, never on a slow one.
            timeout: Duration::from_secs(30),
            retry: Retry::default(),
        }
    }
}

type Sleep = Box<dyn Fn(Duration) + Send + Sync>;

/// A blocking Bybit v5 public client. Not for use inside an async runtime
/// (reqwest's blocking client runs its own).
pub struct BybitClient {
    http: reqwest::blocking::Client,
    base_url: String,
    retry: Retry,
    sleep: Sleep,
    requests: AtomicU64,
}

impl BybitClient {
    pub fn new(config: &ClientConfig) -> Result<BybitClient> {
        let base_url = config.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::invalid(
                "base_url",
                format!("`{base_url}` must start with http:// or https://"),
            ));
        }
        crate::install_tls_provider();
        #[cfg(not(feature = "tls"))]
        if base_url.starts_with("https://") {
            return Err(Error::invalid(
                "base_url",
                "built without the `tls` feature: only http:// base URLs work",
            ));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("stratbox/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport {
                endpoint: base_url.clone(),
                message: e.to_string(),
            })?;
        Ok(BybitClient {
            http,
            base_url,
            retry: config.retry,
            sleep: Box::new(std::thread::sleep),
            requests: AtomicU64::new(0),
        })
    }

    /// Replaces the wait between retries (tests record it instead).
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// GETs `path` with `query` and returns the body of an answer whose
    /// `retCode` is 0.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<String> {
        let mut url = format!("{}{path}", self.base_url);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            encode_into(&mut url, k);
            url.push('=');
            encode_into(&mut url, v);
        }
        let mut last = String::new();
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                (self.sleep)(self.retry.delay(attempt - 1));
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = self.http.get(&url).send().map_err(|e| Error::Transport {
                endpoint: path.to_string(),
                message: e.to_string(),
            })?;
            let status = response.status().as_u16();
            let body = response.text().map_err(|e| Error::Transport {
                endpoint: path.to_string(),
                message: format!("reading the body: {e}"),
            })?;
            if status == 403 || status == 429 {
                last = format!("HTTP {status}");
                continue;
            }
            if status != 200 {
                return Err(Error::Http {
                    endpoint: path.to_string(),
                    status,
                    body: snippet(&body),
                });
            }
            let env = envelope(path, &body)?;
            match env.ret_code {
                0 => return Ok(body),
                RET_RATE_LIMIT => {
                    last = format!("retCode {RET_RATE_LIMIT}: {}", env.ret_msg);
                }
                code => {
                    return Err(Error::Api {
                        endpoint: path.to_string(),
                        code,
                        message: env.ret_msg.into_owned(),
                    })
                }
            }
        }
        Err(Error::Throttled {
            endpoint: path.to_string(),
            attempts: self.retry.attempts,
            last,
        })
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters
/// pass as they are).
fn encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The start of a body, for an error message.
fn snippet(body: &str) -> String {
    const MAX: usize = 200;
    match body.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &body[..at]),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = Retry::default();
        let ms: Vec<u128> = (0..7).map(|n| r.delay(n).as_millis()).collect();
        assert_eq!(ms, [500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
        assert_eq!(r.delay(40), r.cap);
    }

    /// HTTPS is wired (a rustls provider is installed): a TLS handshake
    /// with a server that is not TLS fails as a transport error.
    #[cfg(feature = "tls")]
    #[test]
    fn https_is_built_in() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nnot tls");
            }
        });
        let c = BybitClient::new(&ClientConfig {
            base_url: format!("https://127.0.0.1:{port}"),
            ..ClientConfig::default()
        })
        .unwrap();
        let e = c.get("/v5/market/time", &[]).unwrap_err();
        assert!(matches!(e, Error::Transport { .. }), "{e}");
    }

    #[test]
    fn base_url_must_be_http() {
        let e = BybitClient::new(&ClientConfig {
            base_url: "ftp://x".into(),
            ..ClientConfig::default()
        })
        .err()
        .unwrap();
        assert!(e.to_string().starts_with("invalid base_url"), "{e}");
    }
}
