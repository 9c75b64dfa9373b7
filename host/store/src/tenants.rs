//! Tenants, their quotas and the API keys that name them
//! (docs/tenants.md). Keys are stored as their sha256 only: a leaked
//! Redis dump gives no key that works.
//!
//! Both hashes live under the install's prefix, whichever store (the
//! install's or a tenant's) is asked.

use super::{Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A tenant's name: `[a-z0-9_-]`, 1 to 32 characters, so it can sit in a
/// key, a queue lane and a URL as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    pub const MAX_LEN: usize = 32;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = StoreError;
    fn try_from(name: String) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(TenantName(name))
        } else {
            Err(StoreError::invalid(
                "tenant",
                format!(
                    "`{name}` is not a tenant name: use 1 to {} of a-z, 0-9, `_` and `-`",
                    Self::MAX_LEN
                ),
            ))
        }
    }
}

impl std::str::FromStr for TenantName {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        TenantName::try_from(s.to_string())
    }
}

impl From<TenantName> for String {
    fn from(name: TenantName) -> String {
        name.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one tenant may use. `None` is "no limit of its own": the
/// server's maximum still applies to per-task limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Tasks waiting in the queue at once (submissions past it get 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
    /// Tasks running at once; the queue hands out no more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Fuel of one task; also its default when a request names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fuel: Option<u64>,
    /// Linear memory of one task, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<u64>,
    /// Wall-clock time of one task, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_ms: Option<u64>,
    /// Stored results: backtest and optimization records together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u64>,
    /// Retention: finished records kept, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_max_count: Option<u64>,
    /// Retention: finished records older than this many days go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_max_age_days: Option<u64>,
}

impl Quota {
    /// Zero would refuse everything or never keep a record: a mistake,
    /// not a limit.
    pub fn check(&self) -> Result<()> {
        let fields = [
            ("max_queued", self.max_queued),
            ("max_running", self.max_running.map(u64::from)),
            ("max_fuel", self.max_fuel),
            ("max_memory_mib", self.max_memory_mib),
            ("max_timeout_ms", self.max_timeout_ms),
            ("max_results", self.max_results),
            ("retention_max_count", self.retention_max_count),
            ("retention_max_age_days", self.retention_max_age_days),
        ];
        for (field, value) in fields {
            if value == Some(0) {
                return Err(StoreError::invalid(
                    field,
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
        Ok(())
    }
}

/// An API key as stored and listed; the secret itself is shown once, at
/// creation, and never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Names the key in lists and revocation: the first 12 hex digits of
    /// its sha256.
    pub id: String,
    /// The tenant it acts for; `None` for an admin key of the install.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tenant: Option<TenantName>,
    pub label: String,
    /// Sees every tenant and manages keys, quotas and the DLQ.
    pub admin: bool,
    pub created_at_ms: i64,
}

/// Prefix of every key this service issues, so a secret scanner can
/// spot one in a log or a repository.
pub const KEY_PREFIX: &str = "sbx_";

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Issues a key; returns it with its secret (the only time the secret
    /// is seen). A tenant named here for the first time starts with no
    /// quota of its own.
    pub async fn create_api_key(
        &self,
        tenant: Option<&TenantName>,
        label: &str,
        admin: bool,
    ) -> Result<(ApiKey, String)> {
        let secret = format!(
            "{KEY_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let sha = digest(&secret);
        let key = ApiKey {
            id: sha[..12].to_string(),
            tenant: tenant.cloned(),
            label: label.to_string(),
            admin,
            created_at_ms: super::now_ms(),
        };
        let json = serde_json::to_string(&key).expect("an api key serialises");
        let keys = self.install().keys();
        let mut pipe = redis::pipe();
        pipe.atomic().hset(keys.api_keys(), &sha, json).ignore();
        if let Some(tenant) = tenant {
            pipe.hset_nx(keys.tenants(), tenant.as_str(), "{}").ignore();
        }
        let () = pipe.query_async(&mut self.connection()).await?;
        Ok((key, secret))
    }

    /// The key a request presented, if it is one of ours.
    pub async fn api_key_by_secret(&self, secret: &str) -> Result<Option<ApiKey>> {
        let key = self.install().keys().api_keys();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(digest(secret))
            .query_async(&mut self.connection())
            .await?;
        raw.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::corrupt(&key, e.to_string())))
            .transpose()
    }

    /// True once any key exists: from then on every read needs one.
    pub async fn has_api_keys(&self) -> Result<bool> {
        let n: u64 = redis::cmd("HLEN")
            .arg(self.install().keys().api_keys())
            .query_async(&mut self.connection())
            .await?;
        Ok(n > 0)
    }

    /// Every key, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        Ok(self
            .api_keys_by_sha()
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect())
    }

    async fn api_keys_by_sha(&self) -> Result<Vec<(String, ApiKey)>> {
        let key = self.install().keys().api_keys();
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.connection())
            .await?;
        let mut out = raw
            .into_iter()
            .map(|(sha, j)| {
                serde_json::from_str::<ApiKey>(&j)
                    .map(|k| (sha, k))
                    .map_err(|e| StoreError::corrupt(&key, e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.1.created_at_ms, &a.1.id).cmp(&(b.1.created_at_ms, &b.1.id)));
        Ok(out)
    }

    /// Revokes key `id`; false when there is no such key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let found = self
            .api_keys_by_sha()
            .await?
            .into_iter()
            .find(|(_, k)| k.id == id);
        let Some((sha, key)) = found else {
            return Ok(None);
        };
        let _: u64 = redis::cmd("HDEL")
            .arg(self.install().keys().api_keys())
            .arg(sha)
            .query_async(&mut self.connection())
            .await?;
        Ok(Some(key))
    }

    /// Sets (replaces) a tenant's quota, registering the tenant.
    pub async fn set_quota(&self, tenant: &TenantName, quota: &Quota) -> Result<()> {
        quota.check()?;
        let json = serde_json::to_string(quota).expect("a quota serialises");
        let _: u64 = redis::cmd("HSET")
            .arg(self.install().keys().tenants())
            .arg(tenant.as_str())
            .arg(json)
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// A tenant's quota; `None` when the tenant is unknown.
    pub async fn quota(&self, tenant: &TenantName) -> Result<Option<Quota>> {
        let key = self.install().keys().tenants();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(tenant.as_str())
            .query_async(&mut self.connection())
            .await?;
        raw.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::corrupt(&key, e.to_string())))
            .transpose()
    }

    /// Every tenant with its quota, by name.
    pub async fn list_tenants(&self) -> Result<Vec<(TenantName, Quota)>> {
        let key = self.install().keys().tenants();
        let raw: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.connection())
            .await?;
        let mut out = raw
            .into_iter()
            .map(|(name, j)| {
                let quota = serde_json::from_str(&j)
                    .map_err(|e| StoreError::corrupt(&key, e.to_string()))?;
                Ok((TenantName::try_from(name)?, quota))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Stored backtest and optimization records of this store's tenant
    /// (the `max_results` quota counts these).
    pub async fn result_count(&self) -> Result<u64> {
        let (backtests, optimizations): (u64, u64) = redis::pipe()
            .zcard(self.keys.backtests())
            .zcard(self.keys.optimizations())
            .query_async(&mut self.connection())
            .await?;
        Ok(backtests + optimizations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;

    fn name(s: &str) -> TenantName {
        s.parse().unwrap()
    }

    #[test]
    fn tenant_names_are_checked() {
        assert!("acme-1_x".parse::<TenantName>().is_ok());
        for bad in ["", "Acme", "a:b", "a b", &"x".repeat(33)] {
            let err = bad.parse::<TenantName>().unwrap_err();
            assert!(err.to_string().contains("tenant"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn keys_are_stored_hashed_found_listed_and_revoked() {
        let t = TestRedis::start("tenant-keys").await;
        assert!(!t.store.has_api_keys().await.unwrap());
        let (key, secret) = t
            .store
            .create_api_key(Some(&name("acme")), "ci", false)
            .await
            .unwrap();
        assert!(secret.starts_with(KEY_PREFIX) && secret.len() == 68);
        assert!(t.store.has_api_keys().await.unwrap());
        let stored: Vec<String> = redis::cmd("HVALS")
            .arg(t.store.keys().api_keys())
            .query_async(&mut t.store.connection())
            .await
            .unwrap();
        assert!(
            !stored[0].contains(&secret[4..]),
            "the secret is not stored"
        );
        let found = t.store.api_key_by_secret(&secret).await.unwrap().unwrap();
        assert_eq!(found, key);
        assert_eq!(found.tenant, Some(name("acme")));
        assert!(t
            .store
            .api_key_by_secret("sbx_nope")
            .await
            .unwrap()
            .is_none());
        // The tenant is registered with no quota of its own.
        assert_eq!(
            t.store.list_tenants().await.unwrap(),
            vec![(name("acme"), Quota::default())]
        );
        assert_eq!(t.store.list_api_keys().await.unwrap(), vec![key.clone()]);
        assert_eq!(t.store.revoke_api_key(&key.id).await.unwrap(), Some(key));
        assert!(t.store.api_key_by_secret(&secret).await.unwrap().is_none());
        assert_eq!(t.store.revoke_api_key("000000000000").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_tenant_store_keeps_its_records_apart_and_reads_shared_market_data() {
        let t = TestRedis::start("tenant-scope").await;
        let acme = t.store.for_tenant(&name("acme"));
        let globex = t.store.for_tenant(&name("globex"));
        assert_eq!(acme.tenant(), Some(&name("acme")));
        assert!(acme.keys().prefix().ends_with(":tenant:acme"));
        // The same tenant from a tenant's store is the same keyspace.
        assert_eq!(globex.for_tenant(&name("acme")).keys(), acme.keys());
        // Ids are install-wide: another tenant's id finds nothing.
        assert_eq!(
            acme.keys().backtest_next_id(),
            t.store.keys().backtest_next_id()
        );
        let a = acme.allocate_backtest_ids(2).await.unwrap();
        let g = globex.allocate_backtest_ids(2).await.unwrap();
        assert!(a.iter().all(|id| !g.contains(id)), "{a:?} {g:?}");

        let quota = Quota {
            max_queued: Some(3),
            ..Quota::default()
        };
        acme.set_quota(&name("acme"), &quota).await.unwrap();
        assert_eq!(t.store.quota(&name("acme")).await.unwrap(), Some(quota));
        assert_eq!(t.store.quota(&name("globex")).await.unwrap(), None);
        let zero = Quota {
            max_fuel: Some(0),
            ..Quota::default()
        };
        let err = t.store.set_quota(&name("acme"), &zero).await.unwrap_err();
        assert!(err.to_string().contains("max_fuel"), "{err}");
    }

    #[tokio::test]
    async fn a_tenant_reads_shared_candles_until_it_has_its_own() {
        use crate::CandleCache;
        use stratbox_engine::candles::{synth, Candles};
        let t = TestRedis::start("tenant-market").await;
        let acme = t.store.for_tenant(&name("acme"));
        let globex = t.store.for_tenant(&name("globex"));
        let shared = synth(500, 1, 60, 0, 100.0);
        let own = synth(500, 2, 60, 0, 100.0);
        t.store
            .import_candles("BTCUSDT", 60, &shared)
            .await
            .unwrap();
        let info = acme.series_info("BTCUSDT", 60).await.unwrap().unwrap();
        assert!(info.shared);
        assert!(
            !t.store
                .series_info("BTCUSDT", 60)
                .await
                .unwrap()
                .unwrap()
                .shared
        );
        assert_eq!(
            acme.series_versions(&[("BTCUSDT", 60)]).await.unwrap(),
            vec![Some(1)]
        );

        // One cache for every tenant, as in a worker.
        let cache = CandleCache::new(16 << 20);
        let close = |c: &Candles| c.close.clone();
        let read = |store: &Store| {
            let (store, cache) = (store.clone(), &cache);
            async move {
                store
                    .load_candles(cache, "BTCUSDT", 60, 0, 500 * 60, 0)
                    .await
                    .unwrap()
                    .0
            }
        };
        assert_eq!(close(&read(&acme).await), shared.close);

        let mine = acme.import_candles("BTCUSDT", 60, &own).await.unwrap();
        assert!(!mine.shared);
        assert_eq!(close(&read(&acme).await), own.close);
        // Neither the install nor another tenant sees acme's series.
        assert_eq!(close(&read(&globex).await), shared.close);
        assert_eq!(close(&read(&t.store).await), shared.close);
        let listed = acme.list_series().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].shared);
        assert!(globex.list_series().await.unwrap()[0].shared);
    }
}
