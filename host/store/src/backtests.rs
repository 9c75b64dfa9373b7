//! Backtest records: what was asked, where it stands, and its report.
//!
//! The queue's Lua scripts also write these hashes (status, progress,
//! report, error, timestamps) atomically with task transitions, so the
//! field names are public in [`fields`] and values are plain strings.

use super::plugins::check_sha256;
use super::{now_ms, parse_field, Result, Store, StoreError};
use redis::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// Field names of a backtest record hash (`Keys::backtest`).
pub mod fields {
    /// The [`BacktestDefinition`](super::BacktestDefinition) as JSON.
    pub const DEFINITION: &str = "definition";
    /// One of `queued`, `running`, `completed`, `failed`, `cancelled`.
    pub const STATUS: &str = "status";
    /// 0..=1 as a decimal string.
    pub const PROGRESS: &str = "progress";
    /// The report JSON with its equity curve in columns
    /// (`engine::Report::into_compact_json`); read back byte for byte as
    /// `stratbox backtest --json` prints it.
    pub const REPORT: &str = "report";
    /// `{"code": ..., "message": ...}` of a failed run.
    pub const ERROR: &str = "error";
    pub const TASK_ID: &str = "task_id";
    pub const CREATED_AT_MS: &str = "created_at_ms";
    pub const STARTED_AT_MS: &str = "started_at_ms";
    pub const FINISHED_AT_MS: &str = "finished_at_ms";
}

/// What a backtest runs on: kept as submitted (params resolved), so it can
/// be run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestDefinition {
    pub strategy_sha256: String,
    #[serde(default)]
    pub strategy_id: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    pub symbol: String,
    /// Several symbols (docs/conventions/engine.md, "Several symbols"):
    /// the universe of a portfolio strategy, `symbol` being its first.
    /// Empty, and left out of the JSON, for one symbol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<String>,
    pub timeframe_secs: i64,
    pub start_ts: i64,
    pub end_ts: i64,
    pub initial_capital: f64,
    pub commission: f64,
    pub leverage: f64,
    #[serde(default)]
    pub slippage_bps: f64,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// `spot` (the default, left out of the JSON so older definitions
    /// read and write unchanged) or `linear_perpetual`.
    #[serde(default, skip_serializing_if = "is_spot")]
    pub market: stratbox_engine::Market,
    /// A constant funding rate per 8-hour settlement (perpetuals only),
    /// used when the symbol has no stored funding history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_rate: Option<f64>,
    /// This run's own limits (absent: the worker's defaults; left out of
    /// the JSON when none is set, so older definitions read and write
    /// unchanged).
    #[serde(default, skip_serializing_if = "TaskLimits::is_unset")]
    pub limits: TaskLimits,
}

/// Per-task limits of a strategy run, each bounded by the server's maximum
/// at submission (`stratbox_service::tasks::LimitCaps`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLimits {
    /// Fuel for the whole run (instead of the worker's base + per bar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Linear memory of the strategy instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Wall-clock limit of one attempt, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl TaskLimits {
    pub fn is_unset(&self) -> bool {
        *self == TaskLimits::default()
    }
}

fn is_spot(market: &stratbox_engine::Market) -> bool {
    *market == stratbox_engine::Market::Spot
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BacktestStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl BacktestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BacktestStatus::Queued => "queued",
            BacktestStatus::Running => "running",
            BacktestStatus::Completed => "completed",
            BacktestStatus::Failed => "failed",
            BacktestStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<BacktestStatus> {
        Some(match s {
            "queued" => BacktestStatus::Queued,
            "running" => BacktestStatus::Running,
            "completed" => BacktestStatus::Completed,
            "failed" => BacktestStatus::Failed,
            "cancelled" => BacktestStatus::Cancelled,
            _ => return None,
        })
    }

    /// Completed, failed or cancelled: nothing more happens unless the
    /// backtest is queued again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            BacktestStatus::Completed | BacktestStatus::Failed | BacktestStatus::Cancelled
        )
    }
}

impl std::fmt::Display for BacktestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` field of a failed backtest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRecord {
    pub id: u64,
    pub definition: BacktestDefinition,
    pub status: BacktestStatus,
    pub progress: f64,
    /// The report JSON exactly as stored (never re-serialized).
    pub report: Option<String>,
    pub error: Option<BacktestError>,
    pub task_id: Option<String>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// Sets fields of a record that exists: KEYS[1] record; ARGV pairs.
/// Returns 0 when there is no record (nothing is created).
static SET_IF_EXISTS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
",
    )
});

/// Moves a record to ARGV[1] at time ARGV[2] (ms). Refused (0): running
/// after anything but queued, and terminal after terminal, so a late or
/// repeated delivery cannot undo an outcome. Queued again clears the last
/// run. -1: no record.
static SET_STATUS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return -1 end
local new, now = ARGV[1], ARGV[2]
local terminal = {completed = true, failed = true, cancelled = true}
if new == 'running' and current ~= 'queued' and current ~= 'running' then return 0 end
if terminal[new] and terminal[current] then return 0 end
redis.call('HSET', KEYS[1], 'status', new)
if new == 'queued' then
  redis.call('HSET', KEYS[1], 'progress', '0')
  redis.call('HDEL', KEYS[1], 'report', 'error', 'started_at_ms', 'finished_at_ms')
elseif new == 'running' then
  if current == 'queued' then redis.call('HSET', KEYS[1], 'started_at_ms', now) end
else
  redis.call('HSET', KEYS[1], 'finished_at_ms', now)
end
return 1
",
    )
});

/// The ids (with scores) of the ARGV[1] newest backtests, plus any that tie
/// with the last of them: Redis orders equal scores by member text ("9"
/// after "10"), so the caller sorts by (score, id) and cuts.
static RECENT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = tonumber(ARGV[1])
local last = redis.call('ZREVRANGE', KEYS[1], n - 1, n - 1, 'WITHSCORES')
if #last == 0 then return redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES') end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', last[2], 'WITHSCORES')
",
    )
});

/// Sets progress ARGV[i] on record KEYS[i] while it is queued or running
/// (a late update must not touch a finished record).
static SET_PROGRESS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
for i = 1, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', KEYS[i], 'progress', ARGV[i])
  end
end
return 0
",
    )
});

fn check_definition(def: &BacktestDefinition) -> Result<()> {
    check_sha256(&def.strategy_sha256)?;
    for (field, value) in [
        ("initial_capital", def.initial_capital),
        ("commission", def.commission),
        ("leverage", def.leverage),
        ("slippage_bps", def.slippage_bps),
        ("funding_rate", def.funding_rate.unwrap_or(0.0)),
    ] {
        if !value.is_finite() {
            return Err(StoreError::invalid(
                field,
                format!("{value} is not a finite number"),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Records a new backtest, `queued`; returns its id.
    pub async fn create_backtest(&self, definition: &BacktestDefinition) -> Result<u64> {
        let ids = self
            .create_backtests(std::slice::from_ref(definition))
            .await?;
        ids.first()
            .copied()
            .ok_or_else(|| StoreError::invalid("definition", "no id handed out"))
    }

    /// Records many backtests (no task) in one atomic round trip. The
    /// queue path creates records with their tasks instead, from
    /// [`Store::backtest_init_fields`].
    pub async fn create_backtests(&self, definitions: &[BacktestDefinition]) -> Result<Vec<u64>> {
        let mut records = Vec::with_capacity(definitions.len());
        for definition in definitions {
            records.push(self.backtest_init_fields(definition)?);
        }
        let ids = self.allocate_backtest_ids(definitions.len()).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (id, fields) in ids.iter().zip(&records) {
            pipe.cmd("HSET")
                .arg(self.keys.backtest(*id))
                .arg(fields)
                .arg(fields::STATUS)
                .arg(BacktestStatus::Queued.as_str())
                .arg(fields::PROGRESS)
                .arg("0")
                .ignore()
                .cmd("ZADD")
                .arg(self.keys.backtests())
                .arg(now_ms())
                .arg(*id)
                .ignore();
        }
        if !ids.is_empty() {
            pipe.query_async::<()>(&mut self.conn.clone()).await?;
        }
        Ok(ids)
    }

    /// The fields a new backtest record starts with (its definition and
    /// creation time); the status fields come with its task.
    pub fn backtest_init_fields(
        &self,
        definition: &BacktestDefinition,
    ) -> Result<Vec<(String, String)>> {
        check_definition(definition)?;
        let json = serde_json::to_string(definition)
            .map_err(|e| StoreError::invalid("definition", e.to_string()))?;
        Ok(vec![
            (fields::DEFINITION.to_string(), json),
            (fields::CREATED_AT_MS.to_string(), now_ms().to_string()),
        ])
    }

    /// `n` fresh backtest ids. They come from blocks this process reserves
    /// with one `INCRBY`, so most submissions need no round trip for their
    /// id. Ids are unique, increasing within a process; across processes
    /// they interleave, and a restart leaves a gap (at most a block).
    pub async fn allocate_backtest_ids(&self, n: usize) -> Result<Vec<u64>> {
        /// Ids reserved at once: at 5,000 submissions/s, one INCRBY per
        /// 13 ms.
        const BLOCK: u64 = 64;
        let mut reserved = self.backtest_ids.lock().await;
        let mut ids: Vec<u64> = Vec::with_capacity(n);
        while ids.len() < n {
            if reserved.is_empty() {
                let want = (n - ids.len()) as u64;
                let size = want.max(BLOCK);
                let last: u64 = redis::cmd("INCRBY")
                    .arg(self.keys.backtest_next_id())
                    .arg(size)
                    .query_async(&mut self.conn.clone())
                    .await?;
                *reserved = last + 1 - size..last + 1;
            }
            let take = (n - ids.len()).min(reserved.end.saturating_sub(reserved.start) as usize);
            ids.extend(reserved.start..reserved.start + take as u64);
            reserved.start += take as u64;
        }
        Ok(ids)
    }

    pub async fn get_backtest(&self, id: u64) -> Result<Option<BacktestRecord>> {
        let values: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.backtest(id))
            .query_async(&mut self.conn.clone())
            .await?;
        self.parse_backtest(id, values)
    }

    /// The `limit` most recently created backtests, newest first.
    pub async fn list_backtests(&self, limit: usize) -> Result<Vec<BacktestRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut scored: Vec<(u64, f64)> = RECENT
            .key(self.keys.backtests())
            .arg(limit)
            .invoke_async(&mut conn)
            .await?;
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        scored.truncate(limit);
        let ids: Vec<u64> = scored.into_iter().map(|(id, _)| id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for id in &ids {
            read.cmd("HGETALL").arg(self.keys.backtest(*id));
        }
        let replies: Vec<Value> = read.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, reply) in ids.into_iter().zip(replies) {
            let values: HashMap<String, String> =
                redis::from_redis_value(reply).map_err(redis::RedisError::from)?;
            if let Some(record) = self.parse_backtest(id, values)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub async fn set_backtest_task(&self, id: u64, task_id: &str) -> Result<()> {
        let set: i64 = SET_IF_EXISTS
            .key(self.keys.backtest(id))
            .arg(fields::TASK_ID)
            .arg(task_id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if set == 0 {
            return Err(StoreError::not_found(format!("backtest {id}")));
        }
        Ok(())
    }

    /// Moves a backtest to `status`, stamping started/finished times.
    /// `false` when refused: `running` unless queued (or already running),
    /// or a terminal status over a terminal one. `queued` always applies
    /// and clears the previous run's report, error and times.
    pub async fn set_backtest_status(&self, id: u64, status: BacktestStatus) -> Result<bool> {
        let applied: i64 = SET_STATUS
            .key(self.keys.backtest(id))
            .arg(status.as_str())
            .arg(now_ms())
            .invoke_async(&mut self.conn.clone())
            .await?;
        match applied {
            -1 => Err(StoreError::not_found(format!("backtest {id}"))),
            n => Ok(n == 1),
        }
    }

    /// Progress of many backtests in one round trip (clamped to 0..=1);
    /// records already finished, or missing, are left alone.
    pub async fn set_progress(&self, updates: &[(u64, f64)]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut call = SET_PROGRESS.prepare_invoke();
        for (id, _) in updates {
            call.key(self.keys.backtest(*id));
        }
        for (id, progress) in updates {
            if progress.is_nan() {
                return Err(StoreError::invalid(
                    "progress",
                    format!("NaN for backtest {id}"),
                ));
            }
            call.arg(progress.clamp(0.0, 1.0).to_string());
        }
        call.invoke_async::<()>(&mut self.conn.clone()).await?;
        Ok(())
    }

    fn parse_backtest(
        &self,
        id: u64,
        mut values: HashMap<String, String>,
    ) -> Result<Option<BacktestRecord>> {
        if values.is_empty() {
            return Ok(None);
        }
        let key = self.keys.backtest(id);
        let mut take = |name: &str| values.remove(name);
        let required = |name: &str, v: Option<String>| {
            v.ok_or_else(|| StoreError::corrupt(&key, format!("field {name} is missing")))
        };
        let definition = required(fields::DEFINITION, take(fields::DEFINITION))?;
        let definition: BacktestDefinition = serde_json::from_str(&definition)
            .map_err(|e| StoreError::corrupt(&key, format!("field definition: {e}")))?;
        let status = required(fields::STATUS, take(fields::STATUS))?;
        let status = BacktestStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(&key, format!("unknown status `{status}`")))?;
        let progress = match take(fields::PROGRESS) {
            Some(p) => parse_field::<f64>(&key, fields::PROGRESS, &p)?,
            None => 0.0,
        };
        let error = match take(fields::ERROR) {
            Some(e) => Some(
                serde_json::from_str::<BacktestError>(&e)
                    .map_err(|err| StoreError::corrupt(&key, format!("field error: {err}")))?,
            ),
            None => None,
        };
        let created = required(fields::CREATED_AT_MS, take(fields::CREATED_AT_MS))?;
        let optional_ms = |name: &str, v: Option<String>| -> Result<Option<i64>> {
            v.map(|v| parse_field::<i64>(&key, name, &v)).transpose()
        };
        Ok(Some(BacktestRecord {
            id,
            definition,
            status,
            progress,
            report: take(fields::REPORT)
                .map(|stored| expand_report(&key, stored))
                .transpose()?,
            error,
            task_id: take(fields::TASK_ID),
            created_at_ms: parse_field(&key, fields::CREATED_AT_MS, &created)?,
            started_at_ms: optional_ms(fields::STARTED_AT_MS, take(fields::STARTED_AT_MS))?,
            finished_at_ms: optional_ms(fields::FINISHED_AT_MS, take(fields::FINISHED_AT_MS))?,
        }))
    }
}

/// A stored report as `stratbox backtest --json` prints it (see
/// [`fields::REPORT`]).
fn expand_report(key: &str, stored: String) -> Result<String> {
    match stratbox_engine::expand_compact_json(&stored) {
        Ok(std::borrow::Cow::Borrowed(_)) => Ok(stored),
        Ok(std::borrow::Cow::Owned(expanded)) => Ok(expanded),
        Err(e) => Err(StoreError::corrupt(key, e.to_string())),
    }
}

/// One line a strategy logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

/// A run's strategy log, bounded as the sandbox bounds it (lines, bytes
/// per line and in all), kept for the run that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyLog {
    /// The task (run) that logged: a later run of the same backtest
    /// makes this log stale.
    pub task_id: String,
    pub lines: Vec<LogEntry>,
    /// Lines past the sandbox's limit, not kept.
    pub dropped: u64,
}

impl Store {
    /// Keeps a run's log beside its record (written only by runs that
    /// logged, so a quiet backtest costs no round trip).
    pub async fn put_backtest_log(&self, id: u64, log: &StrategyLog) -> Result<()> {
        let json =
            serde_json::to_string(log).map_err(|e| StoreError::invalid("log", e.to_string()))?;
        let () = redis::cmd("SET")
            .arg(self.keys.backtest_log(id))
            .arg(json)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The log of the backtest's current run: `None` when that run logged
    /// nothing (or has not run), or the log stored belongs to an earlier
    /// run.
    pub async fn backtest_log(
        &self,
        id: u64,
        task_id: Option<&str>,
    ) -> Result<Option<StrategyLog>> {
        let key = self.keys.backtest_log(id);
        let raw: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn.clone())
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let log: StrategyLog =
            serde_json::from_str(&raw).map_err(|e| StoreError::corrupt(&key, e.to_string()))?;
        Ok((Some(log.task_id.as_str()) == task_id).then_some(log))
    }
}

/// Deleting a record with everything kept for it, shared by backtests and
/// optimizations. ARGV[1] the kind (`backtest`, `optimization`), ARGV[2]
/// what its record keys start with, ARGV[3] its index, ARGV[4] the
/// queue's `homes` hash (the queue's prefix may differ from the store's).
const DROP_LUA: &str = r"
local KIND, PRE, INDEX, HOMES = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function busy(status) return status == 'queued' or status == 'running' end
-- The queue's entry for the task `rec` hosts (see the queue's prelude).
local function unhome(rec)
  local tid = redis.call('HGET', rec, 'task_id')
  if tid and redis.call('HGET', HOMES, tid) == rec then redis.call('HDEL', HOMES, tid) end
end
-- A hosted task's retries list lives beside its record.
local function drop_backtest(id)
  local rec = PRE .. id
  unhome(rec)
  redis.call('DEL', rec, rec .. ':log', rec .. ':retries')
  redis.call('ZREM', INDEX, id)
end
-- The record, its results, fan-out and chunk records (and any chunk
-- past `chunks`, so nothing of it can be left).
local function drop_optimization(id)
  local rec = PRE .. id
  local keys = {rec, rec .. ':results', rec .. ':fanout', rec .. ':retries'}
  unhome(rec)
  unhome(rec .. ':fanout')
  local chunks = tonumber(redis.call('HGET', rec, 'chunks') or '0') or 0
  local k = 0
  while k < chunks or redis.call('EXISTS', rec .. ':chunk:' .. k) == 1 do
    local ck = rec .. ':chunk:' .. k
    unhome(ck)
    keys[#keys + 1] = ck
    k = k + 1
  end
  for first = 1, #keys, 1000 do
    redis.call('DEL', unpack(keys, first, math.min(first + 999, #keys)))
  end
  redis.call('ZREM', INDEX, id)
end
local function drop(id)
  if KIND == 'backtest' then drop_backtest(id) else drop_optimization(id) end
end
-- What keeps record `id` (its status), or nil. An optimization cancelled
-- while a task of its own ran is `stopping` until that task ends: its
-- end writes to the task's record, which would come back.
local function live(id, status)
  if busy(status) then return status end
  if KIND ~= 'optimization' then return nil end
  local rec = PRE .. id
  if busy(redis.call('HGET', rec .. ':fanout', 'status')) then return 'stopping' end
  local chunks = tonumber(redis.call('HGET', rec, 'chunks') or '0') or 0
  for k = 0, chunks - 1 do
    if busy(redis.call('HGET', rec .. ':chunk:' .. k, 'status')) then return 'stopping' end
  end
  return nil
end
";

/// Deletes record ARGV[5] unless it is queued or running (or
/// `stopping`, see `live`). Returns `deleted`, `missing` (its index and
/// log entries, if any, are gone too) or the status that kept it.
static DELETE_ONE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        &[
            DROP_LUA,
            r"
local rec = PRE .. ARGV[5]
local kept = live(ARGV[5], redis.call('HGET', rec, 'status'))
if kept then return kept end
local existed = redis.call('EXISTS', rec)
drop(ARGV[5])
if existed == 1 then return 'deleted' end
return 'missing'
",
        ]
        .concat(),
    )
});

/// One bounded step of a sweep: looks at most ARGV[8] index entries from
/// rank ARGV[7] (oldest first) and deletes the finished ones past the
/// ARGV[5] newest (-1: any count) or created before ARGV[6] ms (-1: any
/// age), stopping at the first entry neither rule reaches. Returns
/// {deleted, 1 when nothing more is to be done, then the ids kept
/// because they were queued or running}. Ties within a millisecond go
/// in the index's order (by id as text).
static SWEEP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        &[
            DROP_LUA,
            r"
local keep, cutoff = tonumber(ARGV[5]), tonumber(ARGV[6])
local start, most = tonumber(ARGV[7]), tonumber(ARGV[8])
local over = 0
if keep >= 0 then over = math.max(redis.call('ZCARD', INDEX) - keep, 0) end
local entries = redis.call('ZRANGE', INDEX, start, start + most - 1, 'WITHSCORES')
local deleted, done, kept = 0, 0, {}
if #entries < 2 * most then done = 1 end
for j = 1, #entries, 2 do
  local id, rank = entries[j], start + (j - 1) / 2
  local h = redis.call('HMGET', PRE .. id, 'status', 'created_at_ms')
  -- Backtests are scored by creation time, optimizations by id.
  local created = tonumber(h[2] or '')
  if not created and KIND == 'backtest' then created = tonumber(entries[j + 1]) end
  local old = cutoff >= 0 and (created or 0) < cutoff
  if rank >= over and not old then
    done = 1
    break
  end
  if live(id, h[1]) then
    kept[#kept + 1] = id
  else
    drop(id)
    deleted = deleted + 1
  end
end
return {deleted, done, unpack(kept)}
",
        ]
        .concat(),
    )
});

/// Which finished records a sweep deletes, oldest first: those past the
/// `keep` newest, and those created before `created_before_ms`. Neither
/// set: none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepRule {
    pub keep: Option<usize>,
    pub created_before_ms: Option<i64>,
}

/// What one bounded sweep call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStep {
    pub deleted: usize,
    /// Records the rule reached that were queued or running, so kept:
    /// the next call starts past them (`start` + their count).
    pub kept: Vec<u64>,
    /// Nothing further is for the rule to delete.
    pub done: bool,
}

/// The kinds of record [`DROP_LUA`] knows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordKind {
    Backtest,
    Optimization,
}

impl RecordKind {
    fn as_str(self) -> &'static str {
        match self {
            RecordKind::Backtest => "backtest",
            RecordKind::Optimization => "optimization",
        }
    }
}

impl Store {
    /// Deletes a finished backtest: its record, log, index entry and the
    /// queue's `homes` entry of the task it hosts (`homes_key`:
    /// `QueueKeys::task_homes` of the queue it was submitted to), in one
    /// step. `Busy` while queued or running (cancel its task first),
    /// `NotFound` when there is no record.
    pub async fn delete_backtest(&self, id: u64, homes_key: &str) -> Result<()> {
        let (prefix, index) = (self.keys.backtest_prefix(), self.keys.backtests());
        self.delete_record(RecordKind::Backtest, &prefix, &index, homes_key, id)
            .await
    }

    /// One bounded step of a retention sweep over the backtests: at most
    /// `most` index entries looked at, from rank `start` (the records
    /// kept by earlier steps of the same sweep).
    pub async fn sweep_backtests(
        &self,
        homes_key: &str,
        rule: SweepRule,
        start: usize,
        most: usize,
    ) -> Result<SweepStep> {
        let (prefix, index) = (self.keys.backtest_prefix(), self.keys.backtests());
        self.sweep_records(
            RecordKind::Backtest,
            &prefix,
            &index,
            homes_key,
            rule,
            start,
            most,
        )
        .await
    }

    pub(crate) async fn delete_record(
        &self,
        kind: RecordKind,
        prefix: &str,
        index: &str,
        homes_key: &str,
        id: u64,
    ) -> Result<()> {
        let reply: String = DELETE_ONE
            .arg(kind.as_str())
            .arg(prefix)
            .arg(index)
            .arg(homes_key)
            .arg(id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let what = format!("{} {id}", kind.as_str());
        match reply.as_str() {
            "deleted" => Ok(()),
            "missing" => Err(StoreError::not_found(what)),
            _ => Err(StoreError::Busy {
                what,
                status: reply,
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sweep_records(
        &self,
        kind: RecordKind,
        prefix: &str,
        index: &str,
        homes_key: &str,
        rule: SweepRule,
        start: usize,
        most: usize,
    ) -> Result<SweepStep> {
        if (rule.keep.is_none() && rule.created_before_ms.is_none()) || most == 0 {
            return Ok(SweepStep {
                done: true,
                ..SweepStep::default()
            });
        }
        let reply: Vec<u64> = SWEEP
            .arg(kind.as_str())
            .arg(prefix)
            .arg(index)
            .arg(homes_key)
            .arg(rule.keep.map_or(-1, |k| k as i64))
            .arg(rule.created_before_ms.unwrap_or(-1).max(-1))
            .arg(start)
            .arg(most)
            .invoke_async(&mut self.conn.clone())
            .await?;
        let (deleted, done) = match reply.get(..2) {
            Some([deleted, done]) => (*deleted as usize, *done == 1),
            _ => return Err(StoreError::corrupt(index, "sweep replied without counts")),
        };
        Ok(SweepStep {
            deleted,
            kept: reply[2..].to_vec(),
            done,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_support::TestRedis;

    fn definition(symbol: &str) -> BacktestDefinition {
        BacktestDefinition {
            strategy_sha256: "ab".repeat(32),
            strategy_id: Some(1),
            name: Some("EMA Crossover".into()),
            symbol: symbol.into(),
            symbols: Vec::new(),
            timeframe_secs: 3_600,
            start_ts: 1_704_067_200,
            end_ts: 1_735_603_200,
            initial_capital: 10_000.0,
            commission: 0.0006,
            leverage: 1.0,
            slippage_bps: 0.0,
            params: [("fast_period".to_string(), serde_json::json!(12))].into(),
            market: Default::default(),
            funding_rate: None,
            limits: TaskLimits::default(),
        }
    }

    #[test]
    fn market_and_funding_rate_are_left_out_when_default() {
        let spot = definition("BTCUSDT");
        let json = serde_json::to_string(&spot).unwrap();
        assert!(
            !json.contains("market") && !json.contains("funding_rate") && !json.contains("limits"),
            "{json}"
        );
        // A definition written before the fields existed reads as spot.
        let back: BacktestDefinition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spot);
        let perp = BacktestDefinition {
            market: stratbox_engine::Market::LinearPerpetual,
            funding_rate: Some(0.0001),
            ..definition("BTCUSDT")
        };
        let json = serde_json::to_string(&perp).unwrap();
        assert!(
            json.ends_with(r#""market":"linear_perpetual","funding_rate":0.0001}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<BacktestDefinition>(&json).unwrap(),
            perp
        );
        // Limits: only those set are written.
        let limited = BacktestDefinition {
            limits: TaskLimits {
                fuel: Some(5_000),
                memory_mib: None,
                timeout_ms: Some(1_500),
            },
            ..definition("BTCUSDT")
        };
        let json = serde_json::to_string(&limited).unwrap();
        assert!(
            json.ends_with(r#""limits":{"fuel":5000,"timeout_ms":1500}}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<BacktestDefinition>(&json).unwrap(),
            limited
        );
    }

    async fn hset(t: &TestRedis, id: u64, field: &str, value: &str) {
        let _: () = redis::cmd("HSET")
            .arg(t.store.keys().backtest(id))
            .arg(field)
            .arg(value)
            .query_async(&mut t.store.connection())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn create_get_and_lifecycle() {
        let t = TestRedis::start("backtests").await;
        let s = &t.store;
        assert_eq!(s.get_backtest(1).await.unwrap(), None);
        let before = now_ms();
        let id = s.create_backtest(&definition("BTCUSDT")).await.unwrap();
        assert_eq!(id, 1);
        let r = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(r.definition, definition("BTCUSDT"));
        assert_eq!((r.status, r.progress), (BacktestStatus::Queued, 0.0));
        assert_eq!((r.report, r.error, r.task_id), (None, None, None));
        assert!(r.created_at_ms >= before && r.created_at_ms <= now_ms());

        s.set_backtest_task(id, "task-uuid").await.unwrap();
        assert!(matches!(
            s.set_backtest_task(99, "x").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(
            s.get_backtest(99).await.unwrap().is_none(),
            "nothing created"
        );

        assert!(s
            .set_backtest_status(id, BacktestStatus::Running)
            .await
            .unwrap());
        s.set_progress(&[(id, 0.25), (99, 0.5)]).await.unwrap();
        let r = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(r.task_id.as_deref(), Some("task-uuid"));
        assert_eq!((r.status, r.progress), (BacktestStatus::Running, 0.25));
        assert!(r.started_at_ms.is_some() && r.finished_at_ms.is_none());
        assert!(
            s.get_backtest(99).await.unwrap().is_none(),
            "progress creates nothing"
        );
        s.set_progress(&[(id, 7.0)]).await.unwrap();
        assert_eq!(s.get_backtest(id).await.unwrap().unwrap().progress, 1.0);
        assert!(s.set_progress(&[(id, f64::NAN)]).await.is_err());

        // The queue's completion writes the report as given: byte-identical.
        let report = r#"{"final_equity":10123.450000000001,"trades":[],"x":1e-7}"#;
        hset(&t, id, fields::REPORT, report).await;
        assert!(s
            .set_backtest_status(id, BacktestStatus::Completed)
            .await
            .unwrap());
        let r = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(r.report.as_deref(), Some(report));
        assert_eq!(r.status, BacktestStatus::Completed);
        assert!(r.finished_at_ms.is_some());
        // A late delivery changes nothing.
        assert!(!s
            .set_backtest_status(id, BacktestStatus::Running)
            .await
            .unwrap());
        assert!(!s
            .set_backtest_status(id, BacktestStatus::Failed)
            .await
            .unwrap());
        s.set_progress(&[(id, 0.5)]).await.unwrap();
        let after = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(
            (after.status, after.progress),
            (BacktestStatus::Completed, 1.0)
        );
        // Queued again: a fresh run.
        assert!(s
            .set_backtest_status(id, BacktestStatus::Queued)
            .await
            .unwrap());
        let r = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.progress, r.report),
            (BacktestStatus::Queued, 0.0, None)
        );
        assert_eq!((r.started_at_ms, r.finished_at_ms), (None, None));
        assert!(matches!(
            s.set_backtest_status(99, BacktestStatus::Running).await,
            Err(StoreError::NotFound { .. })
        ));

        hset(
            &t,
            id,
            fields::ERROR,
            r#"{"code":"fuel_exhausted","message":"out of fuel"}"#,
        )
        .await;
        assert!(s
            .set_backtest_status(id, BacktestStatus::Failed)
            .await
            .unwrap());
        let r = s.get_backtest(id).await.unwrap().unwrap();
        assert_eq!(
            r.error,
            Some(BacktestError {
                code: "fuel_exhausted".into(),
                message: "out of fuel".into()
            })
        );
        hset(&t, id, fields::STATUS, "exploded").await;
        let e = s.get_backtest(id).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Corrupt { ref key, .. } if key == "test-backtests:backtest:1"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn list_is_newest_first() {
        let t = TestRedis::start("backtest-list").await;
        assert!(t.store.list_backtests(10).await.unwrap().is_empty());
        for i in 0..12 {
            t.store
                .create_backtest(&definition(&format!("S{i}")))
                .await
                .unwrap();
        }
        let list = t.store.list_backtests(5).await.unwrap();
        let ids: Vec<u64> = list.iter().map(|r| r.id).collect();
        assert_eq!(ids, [12, 11, 10, 9, 8]);
        assert_eq!(list[0].definition.symbol, "S11");
        assert_eq!(t.store.list_backtests(100).await.unwrap().len(), 12);
        // All in one millisecond: still by id, though "9" sorts after "12".
        for id in 1..=12u64 {
            let _: () = redis::cmd("ZADD")
                .arg(t.store.keys().backtests())
                .arg(1_000)
                .arg(id)
                .query_async(&mut t.store.connection())
                .await
                .unwrap();
        }
        let ids: Vec<u64> = t
            .store
            .list_backtests(5)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [12, 11, 10, 9, 8]);
        let ids: Vec<u64> = t
            .store
            .list_backtests(12)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, (1..=12).rev().collect::<Vec<_>>());
        assert!(t.store.list_backtests(0).await.unwrap().is_empty());
    }

    /// Every key under `pattern` (SCAN, as an operator would look).
    pub(crate) async fn scan(t: &TestRedis, pattern: &str) -> Vec<String> {
        let mut conn = t.store.connection();
        let mut cursor = 0u64;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.extend(keys);
            if next == 0 {
                out.sort();
                return out;
            }
            cursor = next;
        }
    }

    /// A task hosted by record `id`, as the queue leaves it: `task_id` on
    /// the record, `homes` naming the record, a retries list beside it.
    async fn host(t: &TestRedis, homes: &str, id: u64, task_id: &str) {
        let rec = t.store.keys().backtest(id);
        hset(t, id, fields::TASK_ID, task_id).await;
        let mut conn = t.store.connection();
        redis::pipe()
            .hset(homes, task_id, &rec)
            .rpush(format!("{rec}:retries"), "1:200:redis_error")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_removes_everything_of_a_finished_backtest_only() {
        let t = TestRedis::start("backtest-delete").await;
        let s = &t.store;
        // The queue's prefix is not the store's.
        let homes = "other-queue:queue:homes";
        let a = s.create_backtest(&definition("A")).await.unwrap();
        let b = s.create_backtest(&definition("B")).await.unwrap();
        host(&t, homes, a, "task-a").await;
        host(&t, homes, b, "task-b").await;
        // A task `a` hosted before its current run, now hosted elsewhere.
        let mut conn = s.connection();
        let _: () = redis::cmd("HSET")
            .arg(homes)
            .arg("task-old")
            .arg(s.keys().backtest(b))
            .query_async(&mut conn)
            .await
            .unwrap();
        let log = StrategyLog {
            task_id: "task-a".into(),
            lines: vec![],
            dropped: 0,
        };
        s.put_backtest_log(a, &log).await.unwrap();
        let all_of_a = scan(&t, &format!("{}*", s.keys().backtest(a))).await;
        assert_eq!(all_of_a.len(), 3, "{all_of_a:?}");

        for state in [BacktestStatus::Queued, BacktestStatus::Running] {
            hset(&t, a, fields::STATUS, state.as_str()).await;
            let e = s.delete_backtest(a, homes).await.unwrap_err();
            assert!(
                matches!(e, StoreError::Busy { ref status, .. } if status == state.as_str()),
                "{e}"
            );
            assert_eq!(e.to_string(), format!("backtest {a} is {state}"));
            assert_eq!(
                scan(&t, &format!("{}*", s.keys().backtest(a))).await,
                all_of_a
            );
        }
        assert!(s
            .set_backtest_status(a, BacktestStatus::Completed)
            .await
            .unwrap());
        s.delete_backtest(a, homes).await.unwrap();
        assert!(scan(&t, &format!("{}*", s.keys().backtest(a)))
            .await
            .is_empty());
        let listed: Vec<u64> = s
            .list_backtests(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, [b]);
        let homes_left: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(homes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            homes_left.keys().collect::<Vec<_>>(),
            ["task-b", "task-old"],
            "only a's own entry goes"
        );
        assert!(matches!(
            s.delete_backtest(a, homes).await,
            Err(StoreError::NotFound { .. })
        ));
        // An index entry left without its record goes too, still a 404.
        let _: () = redis::cmd("ZADD")
            .arg(s.keys().backtests())
            .arg(1)
            .arg(77)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(matches!(
            s.delete_backtest(77, homes).await,
            Err(StoreError::NotFound { .. })
        ));
        let left: Vec<u64> = redis::cmd("ZRANGE")
            .arg(s.keys().backtests())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, [b]);
    }

    #[tokio::test]
    async fn a_sweep_deletes_finished_records_oldest_first_in_bounded_steps() {
        let t = TestRedis::start("backtest-sweep").await;
        let s = &t.store;
        let homes = "q:queue:homes";
        let ids = s
            .create_backtests(&vec![definition("X"); 30])
            .await
            .unwrap();
        for id in &ids {
            host(&t, homes, *id, &format!("task-{id}")).await;
            let status = match id {
                2 => BacktestStatus::Running,
                3 => BacktestStatus::Queued,
                5 => BacktestStatus::Failed,
                _ => BacktestStatus::Completed,
            };
            hset(&t, *id, fields::STATUS, status.as_str()).await;
        }
        // Created an hour apart, oldest first.
        let mut conn = s.connection();
        for id in &ids {
            let at = 1_000_000 + *id as i64 * 3_600_000;
            hset(&t, *id, fields::CREATED_AT_MS, &at.to_string()).await;
            let _: () = redis::cmd("ZADD")
                .arg(s.keys().backtests())
                .arg(at)
                .arg(*id)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let remaining = |t: &TestRedis| {
            let keys = t.store.keys().clone();
            let mut conn = t.store.connection();
            async move {
                let ids: Vec<u64> = redis::cmd("ZRANGE")
                    .arg(keys.backtests())
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                ids
            }
        };
        // Nothing asked: nothing goes.
        let step = s
            .sweep_backtests(homes, SweepRule::default(), 0, 100)
            .await
            .unwrap();
        assert!(step.done && step.deleted == 0);
        // Keep the 20 newest, 4 entries a step.
        let rule = SweepRule {
            keep: Some(20),
            created_before_ms: None,
        };
        let (mut start, mut steps, mut deleted) = (0, 0, 0);
        loop {
            let step = s.sweep_backtests(homes, rule, start, 4).await.unwrap();
            assert!(step.deleted <= 4);
            start += step.kept.len();
            deleted += step.deleted;
            steps += 1;
            if step.done {
                break;
            }
        }
        assert_eq!((deleted, start), (8, 2), "2 and 3 kept");
        assert!(steps >= 3, "{steps}");
        let left = remaining(&t).await;
        assert_eq!(left[..2], [2, 3]);
        assert_eq!(left[2..], (11..=30).collect::<Vec<_>>()[..]);
        let homes_left: u64 = redis::cmd("HLEN")
            .arg(homes)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(homes_left, 22);
        assert!(scan(&t, &format!("{}*", s.keys().backtest(5)))
            .await
            .is_empty());
        // Created before the 16th: 11 to 15 go (the count alone keeps them).
        let rule = SweepRule {
            keep: None,
            created_before_ms: Some(1_000_000 + 16 * 3_600_000),
        };
        let step = s.sweep_backtests(homes, rule, 0, 100).await.unwrap();
        assert_eq!(
            (step.deleted, step.kept.clone(), step.done),
            (5, vec![2, 3], true)
        );
        let left = remaining(&t).await;
        assert_eq!(left[2..], (16..=30).collect::<Vec<_>>()[..]);
        // Both rules: either reaches a record.
        let rule = SweepRule {
            keep: Some(10),
            created_before_ms: Some(1_000_000 + 23 * 3_600_000),
        };
        let step = s.sweep_backtests(homes, rule, 2, 100).await.unwrap();
        assert_eq!((step.deleted, step.done), (7, true));
        let left = remaining(&t).await;
        assert_eq!(
            left[2..],
            (23..=30).collect::<Vec<_>>()[..],
            "past 10 or too old"
        );
    }

    #[tokio::test]
    async fn refuses_non_finite_numbers() {
        let t = TestRedis::start("backtest-invalid").await;
        let mut d = definition("X");
        d.leverage = f64::INFINITY;
        let e = t.store.create_backtest(&d).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { ref field, .. } if field == "leverage"),
            "{e}"
        );
    }

    #[test]
    fn status_names() {
        for s in [
            BacktestStatus::Queued,
            BacktestStatus::Running,
            BacktestStatus::Completed,
            BacktestStatus::Failed,
            BacktestStatus::Cancelled,
        ] {
            assert_eq!(BacktestStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(BacktestStatus::parse("Queued"), None);
        // Definitions stored by older writers lack the optional fields.
        let d: BacktestDefinition = serde_json::from_str(
            r#"{"strategy_sha256":"x","symbol":"B","timeframe_secs":60,"start_ts":0,
                "end_ts":1,"initial_capital":1,"commission":0,"leverage":1}"#,
        )
        .unwrap();
        assert_eq!(
            (d.strategy_id, d.slippage_bps, d.params.len()),
            (None, 0.0, 0)
        );
    }
}
