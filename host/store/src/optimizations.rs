//! Optimization records: the definition, status, chunk results (each
//! chunk's rows written once, however often the chunk is delivered), and
//! the ranked table once every chunk is in.

use super::backtests::{
    BacktestDefinition, BacktestError, BacktestStatus, RecordKind, SweepRule, SweepStep,
};
use super::{now_ms, parse_field, Keys, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use stratbox_engine::optimize::{Bayes, DimensionSpec, Direction, Holdout, WalkForward};

/// Field names of an optimization record hash (`Keys::optimization`).
pub mod fields {
    /// The [`OptimizationDefinition`](super::OptimizationDefinition) as JSON.
    pub const DEFINITION: &str = "definition";
    /// `queued`, `running` (fanned out), `completed`, `failed`, `cancelled`.
    pub const STATUS: &str = "status";
    pub const COMBINATIONS: &str = "combinations";
    /// Number of chunk tasks.
    pub const CHUNKS: &str = "chunks";
    /// Chunks whose rows are in.
    pub const DONE: &str = "done";
    /// `{"code", "message"}` of a failed optimization.
    pub const ERROR: &str = "error";
    /// The whole ranked table as CSV.
    pub const TABLE: &str = "table";
    /// The first [`super::TOP_KEPT`] ranked rows as a JSON array.
    pub const TOP: &str = "top";
    pub const CREATED_AT_MS: &str = "created_at_ms";
    pub const FINISHED_AT_MS: &str = "finished_at_ms";
    /// The deflated Sharpe ratio of the winner, once completed (absent
    /// when undefined).
    pub const DEFLATED_SHARPE: &str = "deflated_sharpe";
    /// A walk-forward's report as JSON
    /// (`stratbox_engine::optimize::WalkForwardReport`), once completed.
    pub const WALK_FORWARD: &str = "walk_forward";
    /// A Bayesian search's trials so far, written with each round's
    /// submission and at completion: `{"done", "best"}` as JSON, `best`
    /// the ranked row (as in [`TOP`]) that ranks first so far, or null.
    pub const TRIALS: &str = "trials";
}

/// Ranked rows kept as JSON for `GET /optimizations/{id}?top=`.
pub const TOP_KEPT: usize = 100;

/// What an optimization runs: the backtest part (its `params` are the
/// fixed params as given) plus the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizationDefinition {
    pub backtest: BacktestDefinition,
    pub search_space: BTreeMap<String, DimensionSpec>,
    /// `grid`, `random` or `bayes`.
    pub method: String,
    /// `random`: the combinations drawn; `bayes`: the trials.
    #[serde(default)]
    pub samples: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    /// `bayes`: the search as submitted (its batch and startup pinned, so
    /// a later change of the defaults leaves a running search alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bayes: Option<Bayes>,
    pub metric: String,
    pub direction: Direction,
    #[serde(default)]
    pub min_trades: u64,
    #[serde(default)]
    pub constraint: Option<String>,
    #[serde(default)]
    pub holdout: Option<Holdout>,
    /// Each window's search a group of chunks (docs/optimization.md,
    /// "Walk-forward through the queue").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<WalkForward>,
    pub max_combinations: usize,
    /// Combinations per chunk task.
    pub chunk_size: usize,
    /// Candle series version seen at submission.
    pub candles_version: u64,
    pub priority: i64,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// What a client asks for, kept as asked by a schedule (checked again,
/// in full, at each submission).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizationRequest {
    /// The backtest part; its `params` are the fixed params.
    pub backtest: BacktestDefinition,
    /// Param name -> a list of values or `{min, max, step}`, as sent.
    pub search_space: BTreeMap<String, serde_json::Value>,
    /// `grid`, `random` or `bayes`.
    pub method: String,
    /// `random`: the combinations drawn; `bayes`: the trials.
    pub samples: Option<usize>,
    /// `bayes`: trials proposed at once and trials drawn at random first
    /// (`None`: the engine's defaults at submission). `u32`: schedules
    /// hold many requests, and no search runs 4 billion trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<u32>,
    pub seed: u64,
    pub metric: String,
    pub direction: Direction,
    pub min_trades: u64,
    pub constraint: Option<String>,
    /// A date (RFC 3339) or a fraction, as text.
    pub holdout: Option<String>,
    /// Boxed: most requests have none, and schedules hold many requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<Box<WalkForward>>,
    pub max_combinations: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizationRecord {
    pub id: u64,
    pub definition: OptimizationDefinition,
    pub status: BacktestStatus,
    /// Combinations (`bayes`: trials planned).
    pub combinations: usize,
    /// Chunk tasks submitted (`bayes`: so far, round by round).
    pub chunks: usize,
    pub done: usize,
    pub error: Option<BacktestError>,
    /// The fan-out task.
    pub task_id: Option<String>,
    /// Ranked rows (JSON array), once completed.
    pub top: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// The probability that the winner's Sharpe ratio is not luck, given
    /// the trials (`stratbox_engine::stats::DeflatedSharpe`).
    pub deflated_sharpe: Option<f64>,
    /// A walk-forward's report (JSON, as `stratbox optimize --walk-forward
    /// --json` prints it), once completed.
    pub walk_forward: Option<String>,
    /// A Bayesian search's trials so far (JSON, [`fields::TRIALS`]); `None`
    /// before its first round is in, and for sweeps.
    pub trials: Option<String>,
}

/// A chunk's rows in: KEYS[1] record, KEYS[2] results; ARGV[1] chunk,
/// ARGV[2] rows. Written once (HSETNX): a redelivered chunk is not counted
/// twice. Returns {status, done, chunks}; nothing is written to a
/// finished optimization.
static CHUNK_DONE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'status', 'chunks')
if not h[1] then return {'missing', 0, 0} end
if h[1] ~= 'queued' and h[1] ~= 'running' then
  return {h[1], tonumber(redis.call('HGET', KEYS[1], 'done') or '0'), tonumber(h[2] or '0')}
end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
local done = redis.call('HLEN', KEYS[2])
redis.call('HSET', KEYS[1], 'done', done)
return {h[1], done, tonumber(h[2] or '0')}
",
    )
});

/// Ends a record still queued or running: KEYS[1] record, KEYS[2] results;
/// ARGV[1] status, ARGV[2] now, then field/value pairs. The results hash
/// goes (the table holds them now). Returns 1 when applied.
static FINISH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished_at_ms', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[1] == 'completed' then
  redis.call('HSET', KEYS[1], 'done', redis.call('HGET', KEYS[1], 'chunks'))
end
redis.call('DEL', KEYS[2])
return 1
",
    )
});

/// Marks a queued optimization running with its chunk count (the fan-out):
/// KEYS[1] record; ARGV[1] chunks. Returns the status found.
static FANNED_OUT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'chunks', ARGV[1])
end
return status
",
    )
});

impl Store {
    /// Records a new optimization, `queued`, with no task; returns its id.
    /// The queue path creates the record with its fan-out task instead,
    /// from [`Store::optimization_init_fields`].
    pub async fn create_optimization(
        &self,
        definition: &OptimizationDefinition,
        combinations: usize,
        chunks: usize,
    ) -> Result<u64> {
        let init = self.optimization_init_fields(definition, combinations, chunks)?;
        let id = self.allocate_optimization_id().await?;
        redis::pipe()
            .atomic()
            .hset_multiple(self.keys.optimization(id), &init)
            .ignore()
            .zadd(self.keys.optimizations(), id, id)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(id)
    }

    /// A fresh optimization id. One left unused (a submission refused
    /// after it) is a gap in the ids, never a record.
    pub async fn allocate_optimization_id(&self) -> Result<u64> {
        Ok(redis::cmd("INCR")
            .arg(self.keys.optimization_next_id())
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Every field a new optimization record starts with, `queued`. It
    /// joins [`Keys::optimizations`](super::Keys::optimizations) scored by
    /// its id.
    pub fn optimization_init_fields(
        &self,
        definition: &OptimizationDefinition,
        combinations: usize,
        chunks: usize,
    ) -> Result<Vec<(String, String)>> {
        let json = serde_json::to_string(definition)
            .map_err(|e| StoreError::invalid("definition", e.to_string()))?;
        Ok(vec![
            (fields::DEFINITION.into(), json),
            (
                fields::STATUS.into(),
                BacktestStatus::Queued.as_str().into(),
            ),
            (fields::COMBINATIONS.into(), combinations.to_string()),
            (fields::CHUNKS.into(), chunks.to_string()),
            (fields::DONE.into(), "0".into()),
            (fields::CREATED_AT_MS.into(), now_ms().to_string()),
        ])
    }

    /// The `limit` most recent optimizations, newest first.
    pub async fn list_optimizations(&self, limit: usize) -> Result<Vec<OptimizationRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let ids: Vec<u64> = redis::cmd("ZREVRANGE")
            .arg(self.keys.optimizations())
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut conn)
            .await?;
        // Read together: the multiplexed connection pipelines them.
        let records =
            futures_util::future::try_join_all(ids.into_iter().map(|id| self.get_optimization(id)))
                .await?;
        // An id whose record was removed by hand is skipped.
        Ok(records.into_iter().flatten().collect())
    }

    /// Marks the fan-out: queued becomes running. Returns the status the
    /// record had (`None`: no record).
    pub async fn mark_fanned_out(&self, id: u64, chunks: usize) -> Result<Option<BacktestStatus>> {
        let status: String = FANNED_OUT
            .key(self.keys.optimization(id))
            .arg(chunks)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(BacktestStatus::parse(&status))
    }

    /// The status alone (one field read), `None` without a record.
    pub async fn optimization_status(&self, id: u64) -> Result<Option<BacktestStatus>> {
        let status: Option<String> = redis::cmd("HGET")
            .arg(self.keys.optimization(id))
            .arg(fields::STATUS)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(status.as_deref().and_then(BacktestStatus::parse))
    }

    /// Whether chunk tasks were submitted (their records exist: the queue
    /// writes them in the same script as the tasks, all or none).
    pub async fn chunks_submitted(&self, id: u64) -> Result<bool> {
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.keys.optimization_chunk(id, 0))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(exists)
    }

    /// Whether chunk `chunk`'s rows are already in.
    pub async fn chunk_result_exists(&self, id: u64, chunk: usize) -> Result<bool> {
        let exists: bool = redis::cmd("HEXISTS")
            .arg(self.keys.optimization_results(id))
            .arg(chunk)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(exists)
    }

    /// Stores a chunk's rows once. Returns (status, done, chunks).
    pub async fn put_chunk_result(
        &self,
        id: u64,
        chunk: usize,
        rows: &str,
    ) -> Result<(String, usize, usize)> {
        let reply: (String, usize, usize) = CHUNK_DONE
            .key(self.keys.optimization(id))
            .key(self.keys.optimization_results(id))
            .arg(chunk)
            .arg(rows)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(reply)
    }

    /// Every chunk's rows, by chunk number.
    pub async fn chunk_results(&self, id: u64) -> Result<BTreeMap<usize, String>> {
        let key = self.keys.optimization_results(id);
        let all: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .await?;
        all.into_iter()
            .map(|(k, v)| Ok((parse_field(&key, "chunk", &k)?, v)))
            .collect()
    }

    /// Writes the table and marks the optimization completed, unless it has
    /// already ended (a second reducer, a cancel). `true` when applied.
    pub async fn complete_optimization(
        &self,
        id: u64,
        csv: &str,
        top: &str,
        deflated_sharpe: Option<f64>,
        trials: Option<&str>,
    ) -> Result<bool> {
        // `Display` of an f64 reads back to the same bits.
        let dsr = deflated_sharpe.map(|v| v.to_string());
        let mut extra = vec![(fields::TABLE, csv), (fields::TOP, top)];
        if let Some(dsr) = dsr.as_deref() {
            extra.push((fields::DEFLATED_SHARPE, dsr));
        }
        if let Some(trials) = trials {
            extra.push((fields::TRIALS, trials));
        }
        self.finish(id, BacktestStatus::Completed, &extra).await
    }

    /// [`Store::complete_optimization`] of a walk-forward: the table, top
    /// rows and deflated Sharpe of its last window, and its report.
    pub async fn complete_walk_forward(
        &self,
        id: u64,
        csv: &str,
        top: &str,
        deflated_sharpe: Option<f64>,
        report: &str,
    ) -> Result<bool> {
        let dsr = deflated_sharpe.map(|v| v.to_string());
        let mut extra = vec![
            (fields::TABLE, csv),
            (fields::TOP, top),
            (fields::WALK_FORWARD, report),
        ];
        if let Some(dsr) = dsr.as_deref() {
            extra.push((fields::DEFLATED_SHARPE, dsr));
        }
        self.finish(id, BacktestStatus::Completed, &extra).await
    }

    /// Marks a queued or running optimization failed.
    pub async fn fail_optimization(&self, id: u64, code: &str, message: &str) -> Result<bool> {
        let error = serde_json::json!({"code": code, "message": message}).to_string();
        self.finish(id, BacktestStatus::Failed, &[(fields::ERROR, &error)])
            .await
    }

    /// Marks a queued or running optimization cancelled.
    pub async fn cancel_optimization_record(&self, id: u64) -> Result<bool> {
        self.finish(id, BacktestStatus::Cancelled, &[]).await
    }

    async fn finish(
        &self,
        id: u64,
        status: BacktestStatus,
        extra: &[(&str, &str)],
    ) -> Result<bool> {
        let mut call = FINISH.prepare_invoke();
        call.key(self.keys.optimization(id))
            .key(self.keys.optimization_results(id))
            .arg(status.as_str())
            .arg(now_ms());
        for (field, value) in extra {
            call.arg(*field).arg(*value);
        }
        let applied: i64 = call.invoke_async(&mut self.conn.clone()).await?;
        Ok(applied == 1)
    }

    /// The task ids of the fan-out and of every chunk submitted so far.
    pub async fn optimization_task_ids(&self, id: u64, chunks: usize) -> Result<Vec<String>> {
        let mut pipe = redis::pipe();
        pipe.hget(self.keys.optimization_fanout(id), "task_id");
        for chunk in 0..chunks {
            pipe.hget(self.keys.optimization_chunk(id, chunk), "task_id");
        }
        let ids: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// The ranked table as CSV, once completed.
    pub async fn optimization_table(&self, id: u64) -> Result<Option<String>> {
        let table: Option<String> = redis::cmd("HGET")
            .arg(self.keys.optimization(id))
            .arg(fields::TABLE)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(table)
    }

    /// The record, its status settled: a fan-out or chunk task that ended
    /// failed (in the DLQ) fails the optimization, here if nobody did yet.
    pub async fn get_optimization(&self, id: u64) -> Result<Option<OptimizationRecord>> {
        let key = self.keys.optimization(id);
        let mut conn = self.conn.clone();
        let wanted = [
            fields::DEFINITION,
            fields::STATUS,
            fields::COMBINATIONS,
            fields::CHUNKS,
            fields::DONE,
            fields::ERROR,
            fields::TOP,
            fields::CREATED_AT_MS,
            fields::FINISHED_AT_MS,
            fields::DEFLATED_SHARPE,
            fields::WALK_FORWARD,
            fields::TRIALS,
        ];
        let (values, fanout): (Vec<Option<String>>, Vec<Option<String>>) = redis::pipe()
            .cmd("HMGET")
            .arg(&key)
            .arg(&wanted[..])
            .cmd("HMGET")
            .arg(self.keys.optimization_fanout(id))
            .arg(&["task_id", "status", "error"][..])
            .query_async(&mut conn)
            .await?;
        let get = |i: usize| values.get(i).cloned().flatten();
        let Some(definition) = get(0) else {
            return Ok(None);
        };
        let definition: OptimizationDefinition = serde_json::from_str(&definition)
            .map_err(|e| StoreError::corrupt(&key, format!("definition: {e}")))?;
        let int = |i: usize, name: &str| -> Result<Option<i64>> {
            get(i).map(|v| parse_field(&key, name, &v)).transpose()
        };
        let status = get(1)
            .as_deref()
            .and_then(BacktestStatus::parse)
            .ok_or_else(|| StoreError::corrupt(&key, "no valid status"))?;
        let chunks = int(3, fields::CHUNKS)?.unwrap_or(0) as usize;
        let record = OptimizationRecord {
            id,
            definition,
            status,
            combinations: int(2, fields::COMBINATIONS)?.unwrap_or(0) as usize,
            chunks,
            done: int(4, fields::DONE)?.unwrap_or(0) as usize,
            error: get(5).and_then(|e| serde_json::from_str(&e).ok()),
            task_id: fanout.first().cloned().flatten(),
            top: get(6),
            created_at_ms: int(7, fields::CREATED_AT_MS)?.unwrap_or(0),
            finished_at_ms: int(8, fields::FINISHED_AT_MS)?,
            deflated_sharpe: get(9)
                .map(|v| parse_field(&key, fields::DEFLATED_SHARPE, &v))
                .transpose()?,
            walk_forward: get(10),
            trials: get(11),
        };
        if status.is_terminal() {
            return Ok(Some(record));
        }
        // A task in the DLQ never finishes: the optimization cannot either.
        let mut failed: Option<(String, String)> = None;
        if fanout.get(1).cloned().flatten().as_deref() == Some("failed") {
            failed = Some((
                "fanout".into(),
                fanout.get(2).cloned().flatten().unwrap_or_default(),
            ));
        } else if chunks > 0 {
            let mut pipe = redis::pipe();
            for chunk in 0..chunks {
                pipe.cmd("HMGET")
                    .arg(self.keys.optimization_chunk(id, chunk))
                    .arg(&["status", "error"][..]);
            }
            let states: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
            failed = states.iter().enumerate().find_map(|(chunk, s)| {
                (s.first().cloned().flatten().as_deref() == Some("failed")).then(|| {
                    (
                        format!("chunk {chunk}"),
                        s.get(1).cloned().flatten().unwrap_or_default(),
                    )
                })
            });
        }
        if let Some((what, error)) = failed {
            let inner: Option<BacktestError> = serde_json::from_str(&error).ok();
            let message = match &inner {
                Some(e) => format!("{what} failed: {}: {}", e.code, e.message),
                None => format!("{what} failed: {error}"),
            };
            self.fail_optimization(id, "chunk_failed", &message).await?;
            return Box::pin(self.get_optimization(id)).await;
        }
        Ok(Some(record))
    }
}

/// What every optimization key starts with: [`Keys::optimization`] and its
/// sub-keys append the id (the delete script builds them so; checked in
/// the tests).
fn optimization_prefix(keys: &Keys) -> String {
    let mut key = keys.optimization(0);
    key.pop();
    key
}

impl Store {
    /// Deletes a finished optimization: its record, results, fan-out and
    /// chunk records, index entry and their `homes` entries
    /// (`homes_key`: `QueueKeys::task_homes`), in one step. `Busy` while
    /// queued or running (cancel it first), or `stopping` while a task it
    /// queued is (its end would write the task's record again);
    /// `NotFound` without a record.
    pub async fn delete_optimization(&self, id: u64, homes_key: &str) -> Result<()> {
        let (prefix, index) = (optimization_prefix(&self.keys), self.keys.optimizations());
        match self
            .delete_record(RecordKind::Optimization, &prefix, &index, homes_key, id)
            .await
        {
            // Running with a task in the DLQ is failed once read (see
            // `get_optimization`): settle it and try again.
            Err(StoreError::Busy { .. }) if self.settled_terminal(id).await? => {
                self.delete_record(RecordKind::Optimization, &prefix, &index, homes_key, id)
                    .await
            }
            other => other,
        }
    }

    /// One bounded step of a retention sweep over the optimizations (see
    /// [`Store::sweep_backtests`]). A record kept as queued or running is
    /// settled here, so one whose chunk failed goes at the next sweep.
    pub async fn sweep_optimizations(
        &self,
        homes_key: &str,
        rule: SweepRule,
        start: usize,
        most: usize,
    ) -> Result<SweepStep> {
        let (prefix, index) = (optimization_prefix(&self.keys), self.keys.optimizations());
        let step = self
            .sweep_records(
                RecordKind::Optimization,
                &prefix,
                &index,
                homes_key,
                rule,
                start,
                most,
            )
            .await?;
        for id in &step.kept {
            self.settled_terminal(*id).await?;
        }
        Ok(step)
    }

    async fn settled_terminal(&self, id: u64) -> Result<bool> {
        Ok(self
            .get_optimization(id)
            .await?
            .is_some_and(|r| r.status.is_terminal()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;

    fn definition() -> OptimizationDefinition {
        OptimizationDefinition {
            backtest: BacktestDefinition {
                strategy_sha256: "ab".repeat(32),
                strategy_id: Some(1),
                name: None,
                symbol: "BTCUSDT".into(),
                symbols: Vec::new(),
                timeframe_secs: 3600,
                start_ts: 0,
                end_ts: 100,
                initial_capital: 10_000.0,
                commission: 0.0006,
                leverage: 1.0,
                slippage_bps: 0.0,
                params: BTreeMap::new(),
                market: Default::default(),
                funding_rate: None,
                limits: Default::default(),
            },
            search_space: BTreeMap::new(),
            method: "grid".into(),
            samples: None,
            seed: 0,
            bayes: None,
            metric: "sharpe".into(),
            direction: Direction::Maximize,
            min_trades: 0,
            constraint: None,
            holdout: None,
            walk_forward: None,
            max_combinations: 100,
            chunk_size: 10,
            candles_version: 1,
            priority: 5,
            timeout_ms: None,
            max_attempts: None,
        }
    }

    #[test]
    fn a_definition_without_bayes_reads_as_before_and_with_it_round_trips() {
        let plain = definition();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("bayes"), "{json}");
        assert_eq!(
            serde_json::from_str::<OptimizationDefinition>(&json).unwrap(),
            plain
        );
        let mut bayes = definition();
        bayes.method = "bayes".into();
        bayes.bayes = Some(Bayes::new(150, 8, 16, 3, 20_000).unwrap());
        let json = serde_json::to_string(&bayes).unwrap();
        assert_eq!(
            serde_json::from_str::<OptimizationDefinition>(&json).unwrap(),
            bayes
        );
    }

    #[tokio::test]
    async fn recent_optimizations_are_listed_newest_first() {
        let t = TestRedis::start("opt-list").await;
        assert!(t.store.list_optimizations(5).await.unwrap().is_empty());
        for combinations in 1..=4 {
            t.store
                .create_optimization(&definition(), combinations, 1)
                .await
                .unwrap();
        }
        let list = t.store.list_optimizations(3).await.unwrap();
        let seen: Vec<(u64, usize)> = list.iter().map(|r| (r.id, r.combinations)).collect();
        assert_eq!(seen, [(4, 4), (3, 3), (2, 2)]);
        assert_eq!(t.store.list_optimizations(10).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_chunk_counts_once_and_the_table_ends_it() {
        let t = TestRedis::start("opt-chunks").await;
        let id = t
            .store
            .create_optimization(&definition(), 25, 3)
            .await
            .unwrap();
        let r = t.store.get_optimization(id).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.done, r.chunks, r.combinations),
            (BacktestStatus::Queued, 0, 3, 25)
        );
        assert_eq!(
            t.store.mark_fanned_out(id, 3).await.unwrap(),
            Some(BacktestStatus::Queued)
        );
        assert_eq!(
            t.store.mark_fanned_out(id, 3).await.unwrap(),
            Some(BacktestStatus::Running)
        );
        assert!(!t.store.chunk_result_exists(id, 1).await.unwrap());
        let (s, done, chunks) = t.store.put_chunk_result(id, 1, "[1]").await.unwrap();
        assert_eq!((s.as_str(), done, chunks), ("running", 1, 3));
        // Redelivered: not counted again, first rows kept.
        let (_, done, _) = t.store.put_chunk_result(id, 1, "[other]").await.unwrap();
        assert_eq!(done, 1);
        assert!(t.store.chunk_result_exists(id, 1).await.unwrap());
        t.store.put_chunk_result(id, 0, "[0]").await.unwrap();
        let (_, done, _) = t.store.put_chunk_result(id, 2, "[2]").await.unwrap();
        assert_eq!(done, 3);
        let results = t.store.chunk_results(id).await.unwrap();
        assert_eq!(
            results.into_iter().collect::<Vec<_>>(),
            [(0, "[0]".to_string()), (1, "[1]".into()), (2, "[2]".into())]
        );
        assert!(t
            .store
            .complete_optimization(id, "csv", "[]", Some(0.8125), Some(r#"{"done":3}"#))
            .await
            .unwrap());
        // A second reducer changes nothing; a late chunk is not written.
        assert!(!t
            .store
            .complete_optimization(id, "other", "[]", None, Some(r#"{"done":4}"#))
            .await
            .unwrap());
        let (s, done, _) = t.store.put_chunk_result(id, 2, "[late]").await.unwrap();
        assert_eq!((s.as_str(), done), ("completed", 3));
        assert!(t.store.chunk_results(id).await.unwrap().is_empty());
        let r = t.store.get_optimization(id).await.unwrap().unwrap();
        assert_eq!((r.status, r.done), (BacktestStatus::Completed, 3));
        assert_eq!(r.deflated_sharpe, Some(0.8125), "the first reducer's");
        assert_eq!(r.trials.as_deref(), Some(r#"{"done":3}"#));
        assert_eq!(
            t.store.optimization_table(id).await.unwrap().as_deref(),
            Some("csv")
        );
        assert!(!t.store.cancel_optimization_record(id).await.unwrap());
        assert!(t.store.get_optimization(999).await.unwrap().is_none());
    }

    #[test]
    fn every_optimization_key_starts_with_the_prefix_and_id() {
        let keys = Keys::new("p:tenant:acme");
        let prefix = optimization_prefix(&keys);
        assert_eq!(prefix, "p:tenant:acme:optimization:");
        assert_eq!(keys.optimization(12), format!("{prefix}12"));
        assert_eq!(keys.optimization_results(12), format!("{prefix}12:results"));
        assert_eq!(keys.optimization_fanout(12), format!("{prefix}12:fanout"));
        assert_eq!(
            keys.optimization_chunk(12, 3),
            format!("{prefix}12:chunk:3")
        );
    }

    /// What the queue leaves of an optimization's tasks: fan-out and
    /// chunk records naming their tasks, results, a `homes` entry each
    /// (none today, as they keep hashes of their own; a hosting one
    /// would), and a stray chunk past `chunks`.
    async fn leave_tasks(t: &TestRedis, homes: &str, id: u64, chunks: usize) {
        let k = t.store.keys();
        let mut pipe = redis::pipe();
        let mut records = vec![k.optimization_fanout(id)];
        records.extend((0..=chunks).map(|c| k.optimization_chunk(id, c)));
        for (n, rec) in records.iter().enumerate() {
            let task = format!("task-{id}-{n}");
            pipe.hset(rec, "task_id", &task)
                .hset(rec, "status", "completed")
                .hset(homes, &task, rec);
        }
        pipe.hset(k.optimization_results(id), 0, "[]")
            .hset(k.optimization(id), "task_id", format!("task-{id}-own"))
            .hset(homes, format!("task-{id}-own"), k.optimization(id));
        pipe.query_async::<()>(&mut t.store.connection())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_leaves_nothing_of_a_finished_optimization() {
        let t = TestRedis::start("opt-delete").await;
        let s = &t.store;
        let homes = "elsewhere:queue:homes";
        let a = s.create_optimization(&definition(), 25, 3).await.unwrap();
        let b = s.create_optimization(&definition(), 25, 3).await.unwrap();
        leave_tasks(&t, homes, a, 3).await;
        leave_tasks(&t, homes, b, 3).await;
        let pattern = format!("{}*", s.keys().optimization(a));
        // `optimization:1*` would also match an id 10 or more.
        assert!(b < 10);
        let before = crate::backtests::tests::scan(&t, &pattern).await;
        assert_eq!(before.len(), 7, "{before:?}");
        s.mark_fanned_out(a, 3).await.unwrap();
        let e = s.delete_optimization(a, homes).await.unwrap_err();
        assert!(matches!(e, StoreError::Busy { .. }), "{e}");
        assert_eq!(e.to_string(), format!("optimization {a} is running"));
        assert_eq!(crate::backtests::tests::scan(&t, &pattern).await, before);
        assert!(s.cancel_optimization_record(a).await.unwrap());
        // Cancelled, a chunk task still stopping: its end would write
        // its record again.
        let chunk = s.keys().optimization_chunk(a, 2);
        let mut conn = s.connection();
        for (status, deleted) in [("running", false), ("cancelled", true)] {
            redis::cmd("HSET")
                .arg(&chunk)
                .arg("status")
                .arg(status)
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
            let e = s.delete_optimization(a, homes).await;
            if deleted {
                e.unwrap();
            } else {
                let e = e.unwrap_err();
                assert_eq!(e.to_string(), format!("optimization {a} is stopping"));
            }
        }
        assert!(crate::backtests::tests::scan(&t, &pattern).await.is_empty());
        let homes_left: Vec<String> = redis::cmd("HKEYS")
            .arg(homes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(homes_left.len(), 6, "b's: {homes_left:?}");
        assert!(homes_left
            .iter()
            .all(|t| t.starts_with(&format!("task-{b}-"))));
        let listed: Vec<u64> = s
            .list_optimizations(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, [b]);
        assert!(matches!(
            s.delete_optimization(a, homes).await,
            Err(StoreError::NotFound { .. })
        ));
        // Running with a chunk in the DLQ is failed: deleted.
        s.mark_fanned_out(b, 3).await.unwrap();
        redis::cmd("HSET")
            .arg(s.keys().optimization_chunk(b, 1))
            .arg("status")
            .arg("failed")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        s.delete_optimization(b, homes).await.unwrap();
        let left =
            crate::backtests::tests::scan(&t, &format!("{}:optimization:*", s.keys().prefix()))
                .await;
        assert_eq!(left, [s.keys().optimization_next_id()]);
        let homes_left: u64 = redis::cmd("HLEN")
            .arg(homes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(homes_left, 0);
    }

    #[tokio::test]
    async fn a_sweep_keeps_the_newest_optimizations_and_settles_the_stuck() {
        let t = TestRedis::start("opt-sweep").await;
        let s = &t.store;
        let homes = "q:queue:homes";
        for _ in 0..6 {
            let id = s.create_optimization(&definition(), 4, 2).await.unwrap();
            leave_tasks(&t, homes, id, 2).await;
            s.mark_fanned_out(id, 2).await.unwrap();
            if id != 2 {
                s.complete_optimization(id, "csv", "[]", None, None)
                    .await
                    .unwrap();
            }
        }
        // 2 is running, its chunk in the DLQ: kept now, settled failed.
        redis::cmd("HSET")
            .arg(s.keys().optimization_chunk(2, 0))
            .arg("status")
            .arg("failed")
            .query_async::<()>(&mut s.connection())
            .await
            .unwrap();
        let rule = SweepRule {
            keep: Some(2),
            created_before_ms: None,
        };
        let step = s.sweep_optimizations(homes, rule, 0, 100).await.unwrap();
        assert_eq!(
            (step.deleted, step.kept.clone(), step.done),
            (3, vec![2], true)
        );
        assert_eq!(
            s.optimization_status(2).await.unwrap(),
            Some(BacktestStatus::Failed)
        );
        let step = s.sweep_optimizations(homes, rule, 0, 100).await.unwrap();
        assert_eq!((step.deleted, step.done), (1, true));
        let ids: Vec<u64> = s
            .list_optimizations(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [6, 5]);
        for id in 1..=4 {
            let pattern = format!("{}*", s.keys().optimization(id));
            assert!(crate::backtests::tests::scan(&t, &pattern).await.is_empty());
        }
        // By age: created_at_ms, read from each record.
        let rule = SweepRule {
            keep: None,
            created_before_ms: Some(now_ms() + 1),
        };
        let step = s.sweep_optimizations(homes, rule, 0, 1).await.unwrap();
        assert_eq!((step.deleted, step.done), (1, false));
        let step = s.sweep_optimizations(homes, rule, 0, 1).await.unwrap();
        assert_eq!(step.deleted, 1);
        assert!(s.list_optimizations(10).await.unwrap().is_empty());
        let left =
            crate::backtests::tests::scan(&t, &format!("{}:optimization:*", s.keys().prefix()))
                .await;
        assert_eq!(left, [s.keys().optimization_next_id()]);
        let homes_left: u64 = redis::cmd("HLEN")
            .arg(homes)
            .query_async(&mut s.connection())
            .await
            .unwrap();
        assert_eq!(homes_left, 0);
    }

    #[tokio::test]
    async fn a_failed_chunk_task_fails_the_optimization_on_read() {
        let t = TestRedis::start("opt-failed").await;
        let id = t
            .store
            .create_optimization(&definition(), 25, 2)
            .await
            .unwrap();
        t.store.mark_fanned_out(id, 2).await.unwrap();
        // What the queue writes when the chunk lands in the DLQ.
        let mut conn = t.store.connection();
        redis::cmd("HSET")
            .arg(t.store.keys().optimization_chunk(id, 1))
            .arg("status")
            .arg("failed")
            .arg("error")
            .arg(r#"{"code":"fuel_exhausted","message":"out of fuel"}"#)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let r = t.store.get_optimization(id).await.unwrap().unwrap();
        assert_eq!(r.status, BacktestStatus::Failed);
        let e = r.error.unwrap();
        assert_eq!(e.code, "chunk_failed");
        assert_eq!(e.message, "chunk 1 failed: fuel_exhausted: out of fuel");
        let (s, _, _) = t.store.put_chunk_result(id, 0, "[0]").await.unwrap();
        assert_eq!(s, "failed");
    }
}
