//! Plugins, content-addressed by the sha256 of the component, with the
//! integer strategy ids the HTTP API speaks.

use super::{parse_field, Result, Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::LazyLock;
use stratbox_engine::Description;

/// Plugin hash fields.
mod field {
    pub const WASM: &str = "wasm";
    pub const NAME: &str = "name";
    pub const VERSION: &str = "version";
    pub const DESCRIPTION: &str = "description";
    pub const SIZE: &str = "size";
    pub const CREATED_AT_MS: &str = "created_at_ms";
    pub const STRATEGY_ID: &str = "strategy_id";
    pub const RUNTIME: &str = "runtime";
    /// `portfolio` for a strategy over several symbols; absent otherwise.
    pub const KIND: &str = "kind";
}

/// Everything but the bytes, in `parse_record` order.
const RECORD_FIELDS: [&str; 8] = [
    field::STRATEGY_ID,
    field::NAME,
    field::VERSION,
    field::SIZE,
    field::CREATED_AT_MS,
    field::DESCRIPTION,
    field::RUNTIME,
    field::KIND,
];

/// Put attempts: a put only repeats when a concurrent delete removed the
/// record it found.
const PUT_ATTEMPTS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginRecord {
    pub strategy_id: u64,
    pub sha256: String,
    pub name: String,
    pub version: String,
    pub size: u64,
    pub created_at_ms: i64,
    pub description: Description,
    /// What runs it: `compiled`, `python` or `javascript` (records put
    /// before guest languages existed read as `compiled`).
    pub runtime: String,
    /// A strategy over several symbols (it exports contract 0.3.0's
    /// `portfolio`); false for one symbol, and for records put before.
    pub portfolio: bool,
}

/// Plugin records by (strategy id, sha256), parsed once per process.
#[derive(Debug, Default)]
pub struct RecordCache {
    records: std::sync::Mutex<HashMap<(u64, String), PluginRecord>>,
}

impl RecordCache {
    /// Distinct strategies kept; past it the cache starts over (records
    /// are small, a refill costs one read each).
    const CAPACITY: usize = 1024;

    fn get(&self, strategy_id: u64, sha256: &str) -> Option<PluginRecord> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        records.get(&(strategy_id, sha256.to_string())).cloned()
    }

    fn put(&self, record: PluginRecord) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= Self::CAPACITY {
            records.clear();
        }
        records.insert((record.strategy_id, record.sha256.clone()), record);
    }
}

/// Stores a plugin unless its hash exists, handing out the next strategy
/// id; either way returns {created (0/1), strategy id}. KEYS: plugin hash,
/// id counter, strategies hash; ARGV: wasm, name, version, description,
/// size, created_at_ms, sha256, runtime, kind ('' for one symbol).
static PUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local id = redis.call('HGET', KEYS[1], 'strategy_id')
if id then return {0, id} end
id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'wasm', ARGV[1], 'name', ARGV[2], 'version', ARGV[3],
  'description', ARGV[4], 'size', ARGV[5], 'created_at_ms', ARGV[6], 'strategy_id', id,
  'runtime', ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'kind', ARGV[9]) end
redis.call('HSET', KEYS[3], id, ARGV[7])
return {1, id}
",
    )
});

/// Deletes a plugin if the id still maps to that sha256. KEYS: strategies
/// hash, plugin hash; ARGV: id, sha256.
static DELETE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
",
    )
});

/// A sha256 as the store keys it: 64 lowercase hex digits.
pub fn check_sha256(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "sha256",
            format!("`{sha256}` is not 64 lowercase hex digits"),
        ))
    }
}

impl Store {
    /// Stores a compiled (Rust) plugin: [`Store::put_plugin_of`].
    pub async fn put_plugin(
        &self,
        sha256: &str,
        bytes: &[u8],
        name: &str,
        version: &str,
        description: &Description,
    ) -> Result<(PluginRecord, bool)> {
        self.put_plugin_of(sha256, bytes, name, version, description, "compiled", false)
            .await
    }

    /// Stores a plugin under its sha256, with the runtime the sandbox
    /// found in it. Putting the same bytes again (even concurrently)
    /// returns the existing record and `created == false`.
    #[allow(clippy::too_many_arguments)] // each is one field of the record
    pub async fn put_plugin_of(
        &self,
        sha256: &str,
        bytes: &[u8],
        name: &str,
        version: &str,
        description: &Description,
        runtime: &str,
        portfolio: bool,
    ) -> Result<(PluginRecord, bool)> {
        check_sha256(sha256)?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha256 {
            return Err(StoreError::invalid(
                "sha256",
                format!("`{sha256}` given, but the bytes hash to `{actual}`"),
            ));
        }
        let description_json = serde_json::to_string(description)
            .map_err(|e| StoreError::invalid("description", e.to_string()))?;
        let mut conn = self.conn.clone();
        for _ in 0..PUT_ATTEMPTS {
            // Most puts of known plugins end here, without sending the bytes.
            if let Some(existing) = self.plugin_record_by_sha(sha256).await? {
                return Ok((existing, false));
            }
            let created_at_ms = super::now_ms();
            let (created, strategy_id): (i64, u64) = PUT
                .key(self.keys.plugin(sha256))
                .key(self.keys.strategy_next_id())
                .key(self.keys.strategies())
                .arg(bytes)
                .arg(name)
                .arg(version)
                .arg(&description_json)
                .arg(bytes.len())
                .arg(created_at_ms)
                .arg(sha256)
                .arg(runtime)
                .arg(if portfolio { "portfolio" } else { "" })
                .invoke_async(&mut conn)
                .await?;
            if created == 1 {
                let record = PluginRecord {
                    strategy_id,
                    sha256: sha256.to_string(),
                    name: name.to_string(),
                    version: version.to_string(),
                    size: bytes.len() as u64,
                    created_at_ms,
                    description: description.clone(),
                    runtime: runtime.to_string(),
                    portfolio,
                };
                return Ok((record, true));
            }
        }
        Err(StoreError::Conflict {
            what: format!("plugin {sha256}"),
        })
    }

    pub async fn plugin_record_by_sha(&self, sha256: &str) -> Result<Option<PluginRecord>> {
        check_sha256(sha256)?;
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.plugin(sha256))
            .arg(RECORD_FIELDS.as_slice())
            .query_async(&mut self.conn.clone())
            .await?;
        self.parse_record(sha256, values)
    }

    /// The record of a strategy id. A (strategy id, sha256) pair never
    /// changes meaning (a re-upload after a delete gets a new id), so its
    /// record is kept in memory and a hit costs one `HGET`.
    pub async fn plugin_record_by_id(&self, strategy_id: u64) -> Result<Option<PluginRecord>> {
        let sha256: Option<String> = redis::cmd("HGET")
            .arg(self.keys.strategies())
            .arg(strategy_id)
            .query_async(&mut self.conn.clone())
            .await?;
        let Some(sha256) = sha256 else {
            return Ok(None);
        };
        if let Some(record) = self.plugin_records.get(strategy_id, &sha256) {
            return Ok(Some(record));
        }
        let record = self.plugin_record_by_sha(&sha256).await?;
        if let Some(record) = &record {
            if record.strategy_id == strategy_id {
                self.plugin_records.put(record.clone());
            }
        }
        Ok(record)
    }

    /// The component bytes, as put.
    pub async fn plugin_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        check_sha256(sha256)?;
        Ok(redis::cmd("HGET")
            .arg(self.keys.plugin(sha256))
            .arg(field::WASM)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Every plugin, by strategy id.
    pub async fn list_plugins(&self) -> Result<Vec<PluginRecord>> {
        let mut conn = self.conn.clone();
        let ids: Vec<(u64, String)> = redis::cmd("HGETALL")
            .arg(self.keys.strategies())
            .query_async(&mut conn)
            .await?;
        let mut ids = ids;
        ids.sort_unstable();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for (_, sha256) in &ids {
            check_sha256(sha256)?;
            read.cmd("HMGET")
                .arg(self.keys.plugin(sha256))
                .arg(RECORD_FIELDS.as_slice());
        }
        let replies: Vec<Vec<Option<String>>> = read.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for ((_, sha256), values) in ids.iter().zip(replies) {
            // Absent: deleted between the two reads.
            if let Some(record) = self.parse_record(sha256, values)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Removes a plugin and its id; `false` when the id is unknown.
    pub async fn delete_plugin(&self, strategy_id: u64) -> Result<bool> {
        let mut conn = self.conn.clone();
        let sha256: Option<String> = redis::cmd("HGET")
            .arg(self.keys.strategies())
            .arg(strategy_id)
            .query_async(&mut conn)
            .await?;
        let Some(sha256) = sha256 else {
            return Ok(false);
        };
        check_sha256(&sha256)?;
        let deleted: i64 = DELETE
            .key(self.keys.strategies())
            .key(self.keys.plugin(&sha256))
            .arg(strategy_id)
            .arg(&sha256)
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    fn parse_record(
        &self,
        sha256: &str,
        values: Vec<Option<String>>,
    ) -> Result<Option<PluginRecord>> {
        let key = self.keys.plugin(sha256);
        let values: [Option<String>; 8] = values
            .try_into()
            .map_err(|_| StoreError::corrupt(&key, "unexpected reply length"))?;
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let [Some(id), Some(name), Some(version), Some(size), Some(created), Some(description), runtime, kind] =
            values
        else {
            return Err(StoreError::corrupt(&key, "plugin fields are missing"));
        };
        let description: Description = serde_json::from_str(&description)
            .map_err(|e| StoreError::corrupt(&key, format!("field description: {e}")))?;
        Ok(Some(PluginRecord {
            strategy_id: parse_field(&key, field::STRATEGY_ID, &id)?,
            sha256: sha256.to_string(),
            name,
            version,
            size: parse_field(&key, field::SIZE, &size)?,
            created_at_ms: parse_field(&key, field::CREATED_AT_MS, &created)?,
            description,
            runtime: runtime.unwrap_or_else(|| "compiled".into()),
            portfolio: kind.as_deref() == Some("portfolio"),
        }))
    }
}

/// An upload compiled in the background (a large component the API does
/// not compile on the request path).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadState {
    pub sha256: String,
    /// `compiling`, `ready` or `failed`.
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The stored strategy, once ready.
    pub strategy_id: Option<u64>,
    pub started_at_ms: i64,
}

/// A staged upload lives a day after its last change: long enough to poll,
/// short enough that abandoned bytes do not pile up.
const UPLOAD_TTL_SECS: u64 = 24 * 3600;

impl Store {
    /// Stages `bytes` for a background compile; `false` when an upload of
    /// the same bytes is already staged (and still compiling or done).
    pub async fn stage_upload(&self, sha256: &str, bytes: &[u8], restart: bool) -> Result<bool> {
        check_sha256(sha256)?;
        let key = self.keys.upload(sha256);
        let mut conn = self.conn.clone();
        let fresh: bool = if restart {
            true
        } else {
            redis::cmd("HSETNX")
                .arg(&key)
                .arg("status")
                .arg("compiling")
                .query_async(&mut conn)
                .await?
        };
        if fresh {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&key)
                .arg("status")
                .arg("compiling")
                .arg("wasm")
                .arg(bytes)
                .arg("started_at_ms")
                .arg(super::now_ms())
                .ignore()
                .cmd("HDEL")
                .arg(&key)
                .arg("error")
                .ignore()
                .cmd("EXPIRE")
                .arg(&key)
                .arg(UPLOAD_TTL_SECS)
                .ignore()
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(fresh)
    }

    /// The state of a staged upload, `None` when unknown or expired.
    pub async fn upload_state(&self, sha256: &str) -> Result<Option<UploadState>> {
        check_sha256(sha256)?;
        let key = self.keys.upload(sha256);
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&["status", "error", "strategy_id", "started_at_ms"])
            .query_async(&mut self.conn.clone())
            .await?;
        let [status, error, strategy_id, started] = <[Option<String>; 4]>::try_from(values)
            .map_err(|_| StoreError::corrupt(&key, "unexpected reply length"))?;
        let Some(status) = status else {
            return Ok(None);
        };
        Ok(Some(UploadState {
            sha256: sha256.to_string(),
            status,
            error,
            strategy_id: strategy_id
                .map(|v| parse_field(&key, "strategy_id", &v))
                .transpose()?,
            started_at_ms: started
                .map(|v| parse_field(&key, "started_at_ms", &v))
                .transpose()?
                .unwrap_or(0),
        }))
    }

    /// The staged bytes, to compile them.
    pub async fn upload_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        check_sha256(sha256)?;
        Ok(redis::cmd("HGET")
            .arg(self.keys.upload(sha256))
            .arg("wasm")
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Ends a staged upload: `Ok(id)` stored as that strategy, `Err(why)`
    /// refused. The bytes are dropped either way (a stored plugin has
    /// its own copy).
    pub async fn finish_upload(
        &self,
        sha256: &str,
        outcome: std::result::Result<u64, String>,
    ) -> Result<()> {
        check_sha256(sha256)?;
        let key = self.keys.upload(sha256);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match &outcome {
            Ok(id) => pipe
                .cmd("HSET")
                .arg(&key)
                .arg("status")
                .arg("ready")
                .arg("strategy_id")
                .arg(id)
                .ignore(),
            Err(why) => pipe
                .cmd("HSET")
                .arg(&key)
                .arg("status")
                .arg("failed")
                .arg("error")
                .arg(why)
                .ignore(),
        };
        pipe.cmd("HDEL")
            .arg(&key)
            .arg("wasm")
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(UPLOAD_TTL_SECS)
            .ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;
    use stratbox_engine::{Column, ParamSpec, ParamType, ParamValue};

    fn description(name: &str) -> Description {
        Description {
            name: name.into(),
            version: "1.2.3".into(),
            summary: "crosses".into(),
            params: vec![
                ParamSpec {
                    name: "fast".into(),
                    kind: ParamType::Int,
                    default: ParamValue::Int(12),
                    min: Some(1.0),
                    max: None,
                    step: Some(1.0),
                    help: "fast EMA".into(),
                },
                ParamSpec {
                    name: "ratio".into(),
                    kind: ParamType::Float,
                    default: ParamValue::Float(2.0),
                    min: None,
                    max: Some(0.1 + 0.2),
                    step: None,
                    help: String::new(),
                },
                ParamSpec {
                    name: "short".into(),
                    kind: ParamType::Bool,
                    default: ParamValue::Bool(false),
                    min: None,
                    max: None,
                    step: None,
                    help: String::new(),
                },
            ],
            columns: vec![Column::Ts, Column::Close],
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let t = TestRedis::start("plugins").await;
        let s = &t.store;
        let a = b"\0asm component a".to_vec();
        let b = vec![0xffu8; 100_000];
        let (ra, created) = s
            .put_plugin(&sha(&a), &a, "ema", "1.2.3", &description("ema"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(
            (ra.strategy_id, ra.size, ra.name.as_str()),
            (1, a.len() as u64, "ema")
        );
        let (rb, _) = s
            .put_plugin(&sha(&b), &b, "rsi", "0.1.0", &description("rsi"))
            .await
            .unwrap();
        assert_eq!(rb.strategy_id, 2);
        // Again: the same record, nothing new.
        let (again, created) = s
            .put_plugin(&sha(&a), &a, "other", "9", &description("x"))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, ra);

        assert_eq!(s.plugin_record_by_sha(&sha(&a)).await.unwrap().unwrap(), ra);
        assert_eq!(s.plugin_record_by_id(2).await.unwrap().unwrap(), rb);
        assert_eq!(s.plugin_record_by_id(3).await.unwrap(), None);
        assert_eq!(s.plugin_bytes(&sha(&b)).await.unwrap().unwrap(), b);
        assert_eq!(s.list_plugins().await.unwrap(), [ra.clone(), rb.clone()]);
        assert_eq!(ra.description, description("ema"));

        // Read by id once more, so the delete below meets a cached record.
        assert_eq!(s.plugin_record_by_id(1).await.unwrap().unwrap(), ra);
        assert!(s.delete_plugin(1).await.unwrap());
        assert!(!s.delete_plugin(1).await.unwrap());
        assert_eq!(
            s.plugin_record_by_id(1).await.unwrap(),
            None,
            "deleted, cache or not"
        );
        assert_eq!(s.plugin_bytes(&sha(&a)).await.unwrap(), None);
        assert_eq!(s.plugin_record_by_sha(&sha(&a)).await.unwrap(), None);
        assert_eq!(s.list_plugins().await.unwrap(), [rb]);
        // Put back after a delete: a new id.
        let (back, created) = s
            .put_plugin(&sha(&a), &a, "ema", "1.2.3", &description("ema"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(back.strategy_id, 3);
        assert_eq!(s.plugin_record_by_id(3).await.unwrap().unwrap(), back);
        assert_eq!(s.plugin_record_by_id(1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_wrong_or_malformed_hashes() {
        let t = TestRedis::start("plugin-hash").await;
        let bytes = b"abc";
        let e = t
            .store
            .put_plugin(&sha(b"abd"), bytes, "n", "v", &description("n"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { ref field, .. } if field == "sha256"),
            "{e}"
        );
        let upper = sha(bytes).to_uppercase();
        assert!(t
            .store
            .put_plugin(&upper, bytes, "n", "v", &description("n"))
            .await
            .is_err());
        assert!(t.store.plugin_bytes("../x").await.is_err());
        assert!(t.store.list_plugins().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_of_the_same_bytes_get_one_id() {
        let t = TestRedis::start("plugin-race").await;
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let sha256 = sha(&bytes);
        let mut handles = Vec::new();
        for _ in 0..16 {
            // Separate connections, so the puts really interleave.
            let store = Store::connect(&t.server.url(), "test-plugin-race")
                .await
                .unwrap();
            let (bytes, sha256) = (bytes.clone(), sha256.clone());
            handles.push(tokio::spawn(async move {
                store
                    .put_plugin(&sha256, &bytes, "n", "v", &description("n"))
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        for h in handles {
            let (record, c) = h.await.unwrap();
            assert_eq!(record.strategy_id, 1);
            created += usize::from(c);
        }
        assert_eq!(created, 1);
        assert_eq!(t.store.list_plugins().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_staged_upload_is_compiled_once_and_keeps_its_outcome() {
        let t = TestRedis::start("plugin-upload").await;
        let bytes = b"\0asm staged".to_vec();
        let sha256 = sha(&bytes);
        assert_eq!(t.store.upload_state(&sha256).await.unwrap(), None);
        assert!(t.store.stage_upload(&sha256, &bytes, false).await.unwrap());
        // A second upload of the same bytes joins the first compile.
        assert!(!t.store.stage_upload(&sha256, &bytes, false).await.unwrap());
        let state = t.store.upload_state(&sha256).await.unwrap().unwrap();
        assert_eq!(state.status, "compiling");
        assert!(state.started_at_ms > 0);
        assert_eq!(
            t.store.upload_bytes(&sha256).await.unwrap(),
            Some(bytes.clone())
        );

        t.store
            .finish_upload(&sha256, Err("refused: no".into()))
            .await
            .unwrap();
        let state = t.store.upload_state(&sha256).await.unwrap().unwrap();
        assert_eq!(
            (state.status.as_str(), state.error.as_deref()),
            ("failed", Some("refused: no"))
        );
        assert_eq!(
            t.store.upload_bytes(&sha256).await.unwrap(),
            None,
            "bytes dropped"
        );

        // A failed upload sent again starts over, then ends ready.
        assert!(t.store.stage_upload(&sha256, &bytes, true).await.unwrap());
        let state = t.store.upload_state(&sha256).await.unwrap().unwrap();
        assert_eq!((state.status.as_str(), state.error), ("compiling", None));
        t.store.finish_upload(&sha256, Ok(7)).await.unwrap();
        let state = t.store.upload_state(&sha256).await.unwrap().unwrap();
        assert_eq!(
            (state.status.as_str(), state.strategy_id),
            ("ready", Some(7))
        );
        let ttl: i64 = redis::cmd("TTL")
            .arg(t.store.keys.upload(&sha256))
            .query_async(&mut t.store.connection())
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 24 * 3600, "ttl {ttl}");
    }

    #[tokio::test]
    async fn a_plugin_keeps_the_runtime_and_kind_it_was_put_with() {
        let t = TestRedis::start("plugin-runtime").await;
        let bytes = b"\0asm python".to_vec();
        let sha256 = sha(&bytes);
        let (record, created) = t
            .store
            .put_plugin_of(&sha256, &bytes, "n", "v", &description("n"), "python", true)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(record.runtime, "python");
        assert!(record.portfolio);
        let read = t
            .store
            .plugin_record_by_sha(&sha256)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, record);
    }
}
