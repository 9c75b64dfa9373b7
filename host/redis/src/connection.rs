//! Redis connections shared by the store, the queue and the worker:
//! `redis://` and `rediss://` (TLS through rustls) URLs, an ACL user and
//! password in the URL, and a CA of one's own from `STRATBOX_REDIS_CA_CERT`.
//! The password never appears in an error message: see [`redact`].

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Commands fail after this long without a reply, so a hung server turns
/// into an error the caller retries instead of a stuck task slot.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: starts at 10 ms and doubles, capped at 1 s, so a
/// restarted Redis is found again within a second of coming back.
const RECONNECT_MIN: Duration = Duration::from_millis(10);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// A PEM file of the CA(s) that signed the server's certificate, for a
/// `rediss://` server whose certificate the system's roots do not trust
/// (self-signed, a private CA). Replaces the system roots when set.
pub const CA_CERT_ENV: &str = "STRATBOX_REDIS_CA_CERT";
/// A PEM client certificate chain and its key, for servers that require
/// client certificates (`tls-auth-clients yes`). Both or neither.
pub const CLIENT_CERT_ENV: &str = "STRATBOX_REDIS_CLIENT_CERT";
pub const CLIENT_KEY_ENV: &str = "STRATBOX_REDIS_CLIENT_KEY";

/// Certificates for `rediss://` URLs beyond the system's roots. Ignored for
/// `redis://` URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA(s) to trust instead of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate chain and its private key (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// From [`CA_CERT_ENV`], [`CLIENT_CERT_ENV`] and [`CLIENT_KEY_ENV`].
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let client_cert = match (var(CLIENT_CERT_ENV), var(CLIENT_KEY_ENV)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!(
                "{CLIENT_CERT_ENV} and {CLIENT_KEY_ENV} go together: set both or neither"
            ),
        };
        Ok(Self {
            ca_cert: var(CA_CERT_ENV),
            client_cert,
        })
    }

    fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none()
    }

    fn load(&self) -> anyhow::Result<redis::TlsCertificates> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the {what} {}", path.display()))
        };
        let root_cert = match &self.ca_cert {
            Some(path) => Some(read(
                path,
                &format!("redis CA certificate ({CA_CERT_ENV})"),
            )?),
            None => None,
        };
        let client_tls = match &self.client_cert {
            Some((cert, key)) => Some(redis::ClientTlsConfig {
                client_cert: read(
                    cert,
                    &format!("redis client certificate ({CLIENT_CERT_ENV})"),
                )?,
                client_key: read(key, &format!("redis client key ({CLIENT_KEY_ENV})"))?,
            }),
            None => None,
        };
        Ok(redis::TlsCertificates {
            client_tls,
            root_cert,
        })
    }
}

/// The URL with its password replaced by `***`, for messages and logs.
/// A URL that does not parse is not shown at all: it may hold a password
/// in a place the parser did not find.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password at all.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(an unparseable URL, not shown)".to_string(),
    }
}

/// A client for `url`, with the certificates of [`TlsFiles::from_env`] for
/// a `rediss://` URL. For connections this module does not make itself
/// (pub/sub, one-shot scripts).
pub fn client(url: &str) -> anyhow::Result<redis::Client> {
    client_with(url, &TlsFiles::from_env()?)
}

/// [`client`] with the certificates given.
pub fn client_with(url: &str, tls: &TlsFiles) -> anyhow::Result<redis::Client> {
    install_tls_provider();
    let invalid = || format!("invalid redis url `{}` (REDIS_URL)", redact(url));
    let info = redis::IntoConnectionInfo::into_connection_info(url).with_context(invalid)?;
    let is_tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    if is_tls && !tls.is_empty() {
        redis::Client::build_with_tls(info, tls.load()?).with_context(invalid)
    } else {
        redis::Client::open(info).with_context(invalid)
    }
}

/// rustls needs a process-wide crypto provider before any `rediss://`
/// connection. The same `ring` provider as the Bybit client's
/// (`stratbox_marketdata::install_tls_provider`); whichever installs it
/// first wins, a second install does nothing.
fn install_tls_provider() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A multiplexed connection that reconnects by itself. Cheap to clone;
/// every clone shares one socket, so it must never carry a blocking
/// command (use [`connect_blocking`] for `XREADGROUP ... BLOCK`).
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    connect_with(url, RESPONSE_TIMEOUT, &TlsFiles::from_env()?).await
}

/// [`connect`] with the certificates given instead of the environment's.
pub async fn connect_tls(url: &str, tls: &TlsFiles) -> anyhow::Result<ConnectionManager> {
    connect_with(url, RESPONSE_TIMEOUT, tls).await
}

/// A connection of its own for blocking reads: its response timeout is
/// longer than any `BLOCK` the caller issues.
pub async fn connect_blocking(
    url: &str,
    longest_block: Duration,
) -> anyhow::Result<ConnectionManager> {
    connect_with(
        url,
        longest_block + RESPONSE_TIMEOUT,
        &TlsFiles::from_env()?,
    )
    .await
}

async fn connect_with(
    url: &str,
    response_timeout: Duration,
    tls: &TlsFiles,
) -> anyhow::Result<ConnectionManager> {
    let client = client_with(url, tls)?;
    let config = ConnectionManagerConfig::new()
        .set_min_delay(RECONNECT_MIN)
        .set_max_delay(RECONNECT_MAX)
        .set_number_of_retries(6)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("cannot connect to redis at {} (REDIS_URL)", redact(url)))
}

#[cfg(test)]
mod tests;
