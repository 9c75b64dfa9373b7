//! Redis storage: plugins by sha256, candles as binary chunks, backtest
//! records. Keys live under the configurable prefix (see `keys`).
//!
//! Writes that must be atomic use Lua scripts, not WATCH/MULTI: the
//! connection is multiplexed and shared, and WATCH state belongs to the
//! connection, so another task's EXEC on the same socket would silently
//! drop our WATCH.
#![forbid(unsafe_code)]

pub mod backtests;
pub mod cache;
pub mod candles;
pub mod chunk;
pub mod funding;
pub mod instruments;
pub mod keys;
pub mod optimizations;
pub mod plugins;
pub mod schedules;
pub mod series;
pub mod tenants;

pub use backtests::{
    BacktestDefinition, BacktestError, BacktestRecord, BacktestStatus, LogEntry, StrategyLog,
    TaskLimits,
};
pub use cache::CandleCache;
pub use funding::FundingInfo;
pub use keys::{Keys, DEFAULT_PREFIX};
pub use optimizations::{OptimizationDefinition, OptimizationRecord, OptimizationRequest};
pub use plugins::PluginRecord;
pub use series::SeriesInfo;
pub use tenants::{ApiKey, Quota, TenantName};

use redis::aio::ConnectionManager;

/// What can go wrong in the store; callers map `NotFound` and `Invalid` to
/// 404 and 422, `Busy` to 409, `Redis` to 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("corrupt data at `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// Optimistic writes kept losing to concurrent writers; retry later.
    #[error("{what} changed concurrently too often; retry")]
    Conflict { what: String },
    /// The record is queued or running: cancel it before deleting it.
    #[error("{what} is {status}")]
    Busy { what: String, status: String },
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub(crate) fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            key: key.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The Redis data of the service. Cheap to clone: the connection is
/// multiplexed and shared.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    /// Backtest ids reserved by this process and not handed out yet.
    backtest_ids: std::sync::Arc<tokio::sync::Mutex<std::ops::Range<u64>>>,
    plugin_records: std::sync::Arc<plugins::RecordCache>,
    /// A tenant's view: the install's own store, whose market data (candles,
    /// mark prices, funding, instruments) the tenant reads when it has
    /// none of its own. `None` for the install's own store.
    shared: Option<Box<Store>>,
    tenant: Option<TenantName>,
}

impl Store {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Store> {
        let conn = stratbox_redis::connection::connect(url).await?;
        Ok(Store::from_connection(conn, prefix))
    }

    pub fn from_connection(conn: ConnectionManager, prefix: &str) -> Store {
        Store {
            conn,
            keys: Keys::new(prefix),
            backtest_ids: std::sync::Arc::default(),
            plugin_records: std::sync::Arc::default(),
            shared: None,
            tenant: None,
        }
    }

    /// The store of `tenant`: every key under `{prefix}:tenant:{name}`, so
    /// its strategies, candles, records and schedules cannot meet
    /// another tenant's; market data it lacks is read from this store.
    /// Keep the result (it reserves backtest ids in blocks).
    pub fn for_tenant(&self, tenant: &TenantName) -> Store {
        let base = self.shared.as_deref().unwrap_or(self);
        Store {
            conn: base.conn.clone(),
            keys: base.keys.tenant(tenant),
            backtest_ids: std::sync::Arc::default(),
            plugin_records: std::sync::Arc::default(),
            shared: Some(Box::new(base.clone())),
            tenant: Some(tenant.clone()),
        }
    }

    /// The tenant this store belongs to; `None` for the install's own.
    pub fn tenant(&self) -> Option<&TenantName> {
        self.tenant.as_ref()
    }

    /// The install's own store (itself when it is not a tenant's).
    pub fn install(&self) -> &Store {
        self.shared.as_deref().unwrap_or(self)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

pub use stratbox_redis::clock::now_ms;

/// Parses a decimal field read back from Redis, naming the key on failure.
pub(crate) fn parse_field<T: std::str::FromStr>(key: &str, field: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| StoreError::corrupt(key, format!("field {field} is `{value}`, not a number")))
}

#[cfg(feature = "test-support")]
pub mod test_support {
    //! One private redis-server per test: a static one would never be
    //! dropped, leaving the server running after the test binary exits.

    use super::Store;
    use stratbox_redis::test_support::{TempDir, TestServer};
    use stratbox_redis::LocalRedis;

    pub struct TestRedis {
        pub server: LocalRedis,
        pub store: Store,
        _dir: TempDir,
    }

    impl TestRedis {
        pub async fn start(name: &str) -> TestRedis {
            let TestServer { server, dir } = TestServer::start();
            let store = Store::connect(&server.url(), &format!("test-{name}"))
                .await
                .expect("a store on the test server");
            TestRedis {
                server,
                store,
                _dir: dir,
            }
        }

        /// A stored strategy with the EMA crossover's two int params
        /// (1..=500); the bytes are not a component, nothing runs them.
        pub async fn fake_strategy(&self) -> super::PluginRecord {
            self.fake_strategy_in(&self.store).await
        }

        /// The same in another store (a tenant's).
        pub async fn fake_strategy_in(&self, store: &Store) -> super::PluginRecord {
            use stratbox_engine::{Column, Description, ParamSpec, ParamType, ParamValue};
            let int = |name: &str, default: i64| ParamSpec {
                name: name.into(),
                kind: ParamType::Int,
                default: ParamValue::Int(default),
                min: Some(1.0),
                max: Some(500.0),
                step: Some(1.0),
                help: String::new(),
            };
            let description = Description {
                name: "ema-crossover".into(),
                version: "0.1.0".into(),
                summary: "test".into(),
                params: vec![int("fast_period", 12), int("slow_period", 26)],
                columns: vec![Column::Close],
            };
            let bytes = b"not really a component".to_vec();
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            let (record, _) = store
                .put_plugin(&sha, &bytes, "ema-crossover", "0.1.0", &description)
                .await
                .expect("the fake strategy stored");
            record
        }
    }
}
