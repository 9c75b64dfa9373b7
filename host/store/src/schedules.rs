//! Schedules: a backtest or optimization and when to submit it. The scheduler
//! loop (any number of processes) fires due ones; `next_run_ms` is the
//! field their guarded submission compares and moves on, so each
//! occurrence is submitted once.

use super::{parse_field, Result, Store, StoreError};
use crate::{BacktestDefinition, OptimizationRequest};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Field names of a schedule hash.
pub mod fields {
    pub const DEFINITION: &str = "definition";
    pub const PAUSED: &str = "paused";
    /// Next occurrence (ms), or empty when there is none (paused, or past
    /// its end).
    pub const NEXT_RUN_MS: &str = "next_run_ms";
    pub const LAST_RUN_MS: &str = "last_run_ms";
    pub const LAST_BACKTEST_ID: &str = "last_backtest_id";
    pub const LAST_OPTIMIZATION_ID: &str = "last_optimization_id";
    pub const RUNS: &str = "runs";
    pub const LAST_ERROR: &str = "last_error";
    pub const CREATED_AT_MS: &str = "created_at_ms";
}

/// What a schedule runs and when (kept as created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleDefinition {
    pub name: Option<String>,
    /// Cron expression (UTC): 5 fields (minute resolution) or 6 with
    /// seconds first.
    pub cron: Option<String>,
    /// Or a fixed interval.
    pub every_secs: Option<u64>,
    /// First occurrence no earlier than this (ms).
    pub start_at_ms: i64,
    /// No occurrence after this (ms).
    pub end_at_ms: Option<i64>,
    pub priority: i64,
    /// Stored as a `backtest` or an `optimization` key beside the timing
    /// (schedules of backtests stored before optimizations read as ever).
    #[serde(flatten)]
    pub submits: Submission,
}

/// What each occurrence submits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Submission {
    /// Checked (params resolved) at creation.
    Backtest(BacktestDefinition),
    /// As asked; checked in full at creation and at each occurrence.
    Optimization(OptimizationRequest),
}

impl Submission {
    /// `backtest` or `optimization`.
    pub fn kind(&self) -> &'static str {
        match self {
            Submission::Backtest(_) => "backtest",
            Submission::Optimization(_) => "optimization",
        }
    }

    /// The backtest every run starts from (an optimization's fixed part).
    pub fn backtest(&self) -> &BacktestDefinition {
        match self {
            Submission::Backtest(b) => b,
            Submission::Optimization(o) => &o.backtest,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: u64,
    pub definition: ScheduleDefinition,
    pub paused: bool,
    pub next_run_ms: Option<i64>,
    pub last_run_ms: Option<i64>,
    pub last_backtest_id: Option<u64>,
    pub last_optimization_id: Option<u64>,
    pub runs: u64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
}

impl Store {
    /// Stores a new schedule, due at `next_run_ms`; returns its id.
    pub async fn create_schedule(
        &self,
        definition: &ScheduleDefinition,
        next_run_ms: Option<i64>,
    ) -> Result<u64> {
        let json = serde_json::to_string(definition)
            .map_err(|e| StoreError::invalid("definition", e.to_string()))?;
        let mut conn = self.conn.clone();
        let id: u64 = redis::cmd("INCR")
            .arg(self.keys.schedule_next_id())
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                self.keys.schedule(id),
                &[
                    (fields::DEFINITION, json),
                    (fields::PAUSED, "0".to_string()),
                    (fields::NEXT_RUN_MS, opt(next_run_ms)),
                    (fields::RUNS, "0".to_string()),
                    (fields::CREATED_AT_MS, super::now_ms().to_string()),
                ],
            )
            .ignore()
            .sadd(self.keys.schedules(), id)
            .ignore();
        if let Some(next) = next_run_ms {
            pipe.zadd(self.keys.schedules_due(), id, next).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(id)
    }

    pub async fn get_schedule(&self, id: u64) -> Result<Option<ScheduleRecord>> {
        let values: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.schedule(id))
            .query_async(&mut self.conn.clone())
            .await?;
        self.parse_schedule(id, values)
    }

    /// Every schedule, by id.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(self.keys.schedules())
            .query_async(&mut conn)
            .await?;
        ids.sort_unstable();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for id in &ids {
            read.cmd("HGETALL").arg(self.keys.schedule(*id));
        }
        let replies: Vec<HashMap<String, String>> = read.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, values) in ids.into_iter().zip(replies) {
            if let Some(record) = self.parse_schedule(id, values)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Ids of schedules due at `now_ms`, oldest first.
    pub async fn due_schedules(&self, now_ms: i64, limit: usize) -> Result<Vec<u64>> {
        Ok(redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.schedules_due())
            .arg("-inf")
            .arg(now_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Pauses (no next run; an in-flight firing fails its guard) or
    /// resumes at `next_run_ms`. `false` when there is no such schedule.
    pub async fn set_schedule_paused(
        &self,
        id: u64,
        paused: bool,
        next_run_ms: Option<i64>,
    ) -> Result<bool> {
        let key = self.keys.schedule(id);
        let mut conn = self.conn.clone();
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if !exists {
            return Ok(false);
        }
        let next = if paused { None } else { next_run_ms };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    (fields::PAUSED, if paused { "1" } else { "0" }.to_string()),
                    (fields::NEXT_RUN_MS, opt(next)),
                ],
            )
            .ignore();
        match next {
            Some(at) => pipe.zadd(self.keys.schedules_due(), id, at).ignore(),
            None => pipe.zrem(self.keys.schedules_due(), id).ignore(),
        };
        pipe.query_async::<()>(&mut conn).await?;
        Ok(true)
    }

    pub async fn delete_schedule(&self, id: u64) -> Result<bool> {
        let mut conn = self.conn.clone();
        let (deleted, _, _): (i64, i64, i64) = redis::pipe()
            .atomic()
            .del(self.keys.schedule(id))
            .srem(self.keys.schedules(), id)
            .zrem(self.keys.schedules_due(), id)
            .query_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    /// Moves a schedule past an occurrence it could not submit (its
    /// definition no longer validates), if no one else has: compare and
    /// set on `next_run_ms`, like a firing.
    pub async fn skip_schedule_run(
        &self,
        id: u64,
        occurrence_ms: i64,
        next_run_ms: Option<i64>,
        error: &str,
    ) -> Result<bool> {
        static SKIP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"
if redis.call('HGET', KEYS[1], 'next_run_ms') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next_run_ms', ARGV[2], 'last_run_ms', ARGV[1], 'last_error', ARGV[3])
if ARGV[2] == '' then redis.call('ZREM', KEYS[2], ARGV[4])
else redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4]) end
return 1
",
            )
        });
        let moved: i64 = SKIP
            .key(self.keys.schedule(id))
            .key(self.keys.schedules_due())
            .arg(occurrence_ms)
            .arg(opt(next_run_ms))
            .arg(error)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(moved == 1)
    }

    fn parse_schedule(
        &self,
        id: u64,
        mut values: HashMap<String, String>,
    ) -> Result<Option<ScheduleRecord>> {
        if values.is_empty() {
            return Ok(None);
        }
        let key = self.keys.schedule(id);
        let mut take = |name: &str| values.remove(name).filter(|v| !v.is_empty());
        let definition =
            take(fields::DEFINITION).ok_or_else(|| StoreError::corrupt(&key, "no definition"))?;
        let definition: ScheduleDefinition = serde_json::from_str(&definition)
            .map_err(|e| StoreError::corrupt(&key, format!("definition: {e}")))?;
        let number = |name: &str, v: Option<String>| -> Result<Option<i64>> {
            v.map(|v| parse_field(&key, name, &v)).transpose()
        };
        Ok(Some(ScheduleRecord {
            id,
            definition,
            paused: take(fields::PAUSED).as_deref() == Some("1"),
            next_run_ms: number(fields::NEXT_RUN_MS, take(fields::NEXT_RUN_MS))?,
            last_run_ms: number(fields::LAST_RUN_MS, take(fields::LAST_RUN_MS))?,
            last_backtest_id: number(fields::LAST_BACKTEST_ID, take(fields::LAST_BACKTEST_ID))?
                .map(|v| v as u64),
            last_optimization_id: number(
                fields::LAST_OPTIMIZATION_ID,
                take(fields::LAST_OPTIMIZATION_ID),
            )?
            .map(|v| v as u64),
            runs: number(fields::RUNS, take(fields::RUNS))?
                .unwrap_or(0)
                .max(0) as u64,
            last_error: take(fields::LAST_ERROR),
            created_at_ms: number(fields::CREATED_AT_MS, take(fields::CREATED_AT_MS))?.unwrap_or(0),
        }))
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;
    use std::collections::BTreeMap;
    use stratbox_engine::optimize::Direction;

    fn backtest() -> BacktestDefinition {
        BacktestDefinition {
            strategy_sha256: "ab".repeat(32),
            strategy_id: Some(1),
            name: None,
            symbol: "BTCUSDT".into(),
            symbols: Vec::new(),
            timeframe_secs: 3600,
            start_ts: 0,
            end_ts: 7200,
            initial_capital: 10_000.0,
            commission: 0.0006,
            leverage: 1.0,
            slippage_bps: 0.0,
            params: BTreeMap::new(),
            market: Default::default(),
            funding_rate: None,
            limits: Default::default(),
        }
    }

    #[tokio::test]
    async fn schedules_of_optimizations_read_back_and_older_backtest_ones_still_read() {
        let t = TestRedis::start("schedules-kinds").await;
        let optimization = OptimizationRequest {
            backtest: backtest(),
            search_space: BTreeMap::from([(
                "fast_period".to_string(),
                serde_json::json!({"min": 5, "max": 10, "step": 5}),
            )]),
            method: "grid".into(),
            samples: None,
            batch: None,
            startup: None,
            seed: 0,
            metric: "sharpe".into(),
            direction: Direction::Minimize,
            min_trades: 2,
            constraint: Some("fast_period < 20".into()),
            holdout: Some("0.25".into()),
            walk_forward: None,
            max_combinations: None,
        };
        let definition = ScheduleDefinition {
            name: Some("sweep".into()),
            cron: None,
            every_secs: Some(60),
            start_at_ms: 1_000,
            end_at_ms: None,
            priority: 3,
            submits: Submission::Optimization(optimization),
        };
        let id = t
            .store
            .create_schedule(&definition, Some(1_000))
            .await
            .unwrap();
        let record = t.store.get_schedule(id).await.unwrap().unwrap();
        assert_eq!(record.definition, definition);
        assert_eq!(record.definition.submits.kind(), "optimization");
        assert_eq!(record.definition.submits.backtest(), &backtest());
        assert_eq!(
            (record.last_backtest_id, record.last_optimization_id),
            (None, None)
        );
        let stored: String = redis::cmd("HGET")
            .arg(t.store.keys().schedule(id))
            .arg(fields::DEFINITION)
            .query_async(&mut t.store.connection())
            .await
            .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert!(stored["optimization"].is_object(), "{stored}");
        assert!(stored.get("backtest").is_none(), "{stored}");

        // A schedule stored before there were optimization schedules: its
        // backtest beside the timing, as it was written then.
        let old = serde_json::json!({
            "name": null, "cron": "0 2 * * *", "every_secs": null,
            "start_at_ms": 0, "end_at_ms": null, "priority": 5,
            "backtest": backtest(),
        });
        redis::cmd("HSET")
            .arg(t.store.keys().schedule(77))
            .arg(fields::DEFINITION)
            .arg(old.to_string())
            .arg(fields::LAST_BACKTEST_ID)
            .arg(12)
            .arg(fields::RUNS)
            .arg(1)
            .query_async::<()>(&mut t.store.connection())
            .await
            .unwrap();
        let record = t.store.get_schedule(77).await.unwrap().unwrap();
        assert_eq!(record.definition.submits, Submission::Backtest(backtest()));
        assert_eq!(record.definition.cron.as_deref(), Some("0 2 * * *"));
        assert_eq!(
            (
                record.last_backtest_id,
                record.last_optimization_id,
                record.runs
            ),
            (Some(12), None, 1)
        );
        // Without either it is not a schedule (the API refuses both).
        let mut neither = old;
        neither.as_object_mut().unwrap().remove("backtest");
        assert!(serde_json::from_value::<ScheduleDefinition>(neither).is_err());
    }
}
