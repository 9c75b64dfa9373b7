//! A task queue on Redis Streams, generic over task kinds: submission,
//! priorities, at-least-once delivery with idempotent completion, retries
//! through a delayed set, a dead-letter stream, reclaim of dead workers'
//! entries, cancellation, shared counters and heartbeats.
//!
//! Every state change is one Lua script, so a task, its record and the
//! counters never disagree, and a batch of tasks costs one round trip.
#![forbid(unsafe_code)]

pub mod config;
pub mod consumer;
pub mod keys;
pub mod metrics;
mod scripts;
pub mod task;
#[cfg(test)]
mod tests;

pub use config::QueueConfig;
pub use consumer::Consumer;
pub use keys::{QueueKeys, GROUP};
pub use task::{
    Class, Delivery, Guard, Outcome, Record, TaskError, TaskInfo, TaskSpec, TaskStatus,
};

use redis::aio::ConnectionManager;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The submission's guard did not hold: another process went first.
    #[error("guard on {0} did not hold; nothing was submitted")]
    GuardFailed(String),
}

/// The five counters of the old service, plus what the queue adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub tasks_submitted: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_timeout: i64,
    pub active_tasks: i64,
    #[serde(skip)]
    pub extra: BTreeMap<String, i64>,
}

/// Depth and health of the queue at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Waiting (not yet delivered) entries per class.
    pub waiting: BTreeMap<&'static str, u64>,
    /// Delivered, not yet acknowledged entries per class.
    pub pending: BTreeMap<&'static str, u64>,
    /// Retries waiting for their backoff.
    pub delayed: u64,
    pub dlq: u64,
    pub live_workers: u64,
}

/// One dead-lettered task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DlqEntry {
    pub entry_id: String,
    pub fields: BTreeMap<String, String>,
}

/// What a cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelState {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; its worker stops it and marks it cancelled.
    Cancelling,
    /// It had already finished (with this status).
    AlreadyFinished(TaskStatus),
    NotFound,
}

/// Producer-side handle, also the base of a [`Consumer`]. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    keys: QueueKeys,
    config: QueueConfig,
    scripts: Arc<scripts::Scripts>,
}

impl Queue {
    pub async fn connect(url: &str, prefix: &str, config: QueueConfig) -> anyhow::Result<Self> {
        let conn = stratbox_redis::connection::connect(url).await?;
        let queue = Self::new(conn, prefix, config)?;
        queue.ensure_groups().await?;
        Ok(queue)
    }

    pub fn new(conn: ConnectionManager, prefix: &str, config: QueueConfig) -> anyhow::Result<Self> {
        config
            .check()
            .map_err(|e| anyhow::anyhow!("queue settings: {e}"))?;
        Ok(Self {
            conn,
            keys: QueueKeys::new(prefix),
            config,
            scripts: Arc::new(scripts::Scripts::new()),
        })
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates the streams and the consumer group if missing (after a
    /// flush, or on first use). Reading from id 0 delivers entries added
    /// before the group existed.
    pub async fn ensure_groups(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        for class in Class::ALL {
            let result: Result<(), redis::RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.keys.stream(class))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match result {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Submits tasks atomically (all or none) in one round trip and
    /// returns their ids (uuid v4) in order.
    pub async fn submit(&self, specs: &[TaskSpec]) -> Result<Vec<String>, QueueError> {
        self.submit_guarded(specs, &[]).await
    }

    /// [`Queue::submit`], only if every guard holds (checked and moved on
    /// in the same script); `GuardFailed` naming the first that does not.
    pub async fn submit_guarded(
        &self,
        specs: &[TaskSpec],
        guards: &[Guard],
    ) -> Result<Vec<String>, QueueError> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(specs.len());
        let mut invocation = scripts::evalsha(&self.scripts.submit);
        invocation.arg(self.keys.prefix()).arg("");
        invocation.arg(guards.len());
        for g in guards {
            let (index_key, member, score) = match &g.index {
                Some((key, member, score)) => (key.as_str(), member.as_str(), *score),
                None => ("", "", 0),
            };
            invocation
                .arg(&g.key)
                .arg(&g.field)
                .arg(&g.expect)
                .arg(index_key)
                .arg(member)
                .arg(score)
                .arg(g.set.len());
            for (name, value) in &g.set {
                invocation.arg(name).arg(value);
            }
        }
        for spec in specs {
            if spec.kind.is_empty() || spec.kind.contains(char::is_whitespace) {
                return Err(QueueError::Invalid {
                    field: "kind",
                    message: "must be one word, not empty".into(),
                });
            }
            if spec.max_attempts == Some(0) {
                return Err(QueueError::Invalid {
                    field: "max_attempts",
                    message: "must be at least 1".into(),
                });
            }
            // A v4 uuid from the thread's generator: `new_v4` asks the
            // kernel for every id (a syscall per task in bulk submission).
            let id = uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string();
            let timeout_ms = spec
                .timeout_ms
                .unwrap_or(self.config.task_timeout.as_millis() as u64);
            let class = Class::from_priority(spec.priority);
            let mut packed = task::PackedSpec {
                created_us: 0,
                priority: spec.priority,
                class,
                timeout_ms,
                max_attempts: spec.max_attempts.unwrap_or(self.config.max_attempts),
                kind: spec.kind.clone(),
                result_field: String::new(),
            };
            let (record_key, index, init) = match &spec.record {
                Some(r) => {
                    if r.result_field.contains(char::is_whitespace) {
                        return Err(QueueError::Invalid {
                            field: "result_field",
                            message: "must not contain whitespace".into(),
                        });
                    }
                    packed.result_field = r.result_field.clone();
                    (r.key.as_str(), r.index.as_ref(), r.init.as_slice())
                }
                None => ("", None, &[][..]),
            };
            invocation
                .arg(&id)
                .arg(class.as_str())
                .arg(packed.tail())
                .arg(&spec.payload)
                .arg(spec.holds.as_deref().unwrap_or(""))
                .arg(record_key);
            if !record_key.is_empty() {
                // The record's initial fields, then its new run's, which win.
                // A record with initial fields is a new one: nothing of an
                // earlier run to clear.
                invocation
                    .arg(index.map_or("", |(key, _)| key.as_str()))
                    .arg(index.map_or("", |(_, member)| member.as_str()))
                    .arg(if init.is_empty() { "" } else { "1" })
                    .arg(if spec.record.as_ref().is_some_and(|r| r.hosts_task) {
                        "1"
                    } else {
                        ""
                    })
                    .arg(init.len() + 3);
                for (name, value) in init {
                    invocation.arg(name).arg(value);
                }
                invocation
                    .arg("task_id")
                    .arg(&id)
                    .arg("status")
                    .arg("queued")
                    .arg("progress")
                    .arg("0");
            }
            ids.push(id);
        }
        let mut conn = self.conn.clone();
        let script = &self.scripts.submit;
        let submitted: i64 = match scripts::run(&mut conn, script, &invocation).await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_groups().await?;
                scripts::run(&mut conn, script, &invocation).await?
            }
            other => other?,
        };
        if submitted < 0 {
            let failed = guards.get((-submitted - 1) as usize);
            return Err(QueueError::GuardFailed(
                failed.map(|g| g.key.clone()).unwrap_or_default(),
            ));
        }
        if submitted as usize != ids.len() {
            return Err(QueueError::Reply(format!(
                "submitted {submitted} of {} tasks",
                ids.len()
            )));
        }
        Ok(ids)
    }

    pub async fn submit_one(&self, spec: TaskSpec) -> Result<String, QueueError> {
        let mut ids = self.submit(std::slice::from_ref(&spec)).await?;
        ids.pop()
            .ok_or_else(|| QueueError::Reply("no task id returned".into()))
    }

    /// Tasks in the `holds` set that may still run (queued, delayed or
    /// running). Those that ended, or whose hash expired, leave the set
    /// here. A task in the DLQ no longer holds: requeued after its
    /// resource is gone, it fails again, saying so.
    pub async fn holders(&self, holds: &str) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(holds)
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(members);
        }
        let mut read = redis::pipe();
        for home in self.homes(&members).await? {
            read.cmd("HGET").arg(home).arg("status");
        }
        let statuses: Vec<Option<String>> = read.query_async(&mut conn).await?;
        let (live, ended): (Vec<_>, Vec<_>) = members
            .into_iter()
            .zip(statuses)
            .partition(|(_, status)| matches!(status.as_deref(), Some("queued" | "running")));
        if !ended.is_empty() {
            let ended: Vec<String> = ended.into_iter().map(|(id, _)| id).collect();
            let _: i64 = redis::cmd("SREM")
                .arg(holds)
                .arg(&ended)
                .query_async(&mut conn)
                .await?;
        }
        let mut live: Vec<String> = live.into_iter().map(|(id, _)| id).collect();
        live.sort_unstable();
        Ok(live)
    }

    /// The hash holding each task: its own, or the record that hosts it
    /// ([`Record::hosts_task`]). An id its record no longer hosts gets its
    /// own key, which does not exist.
    async fn homes(&self, task_ids: &[String]) -> Result<Vec<String>, QueueError> {
        if task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.homes.prepare_invoke();
        invocation.arg(self.keys.prefix()).arg("").arg(task_ids);
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    /// The task as stored, or `None` for an unknown (or expired) id.
    pub async fn task(&self, task_id: &str) -> Result<Option<TaskInfo>, QueueError> {
        let mut conn = self.conn.clone();
        let (key, mut fields, retries): (String, BTreeMap<String, String>, Vec<String>) = self
            .scripts
            .read_task
            .arg(self.keys.prefix())
            .arg("")
            .arg(task_id)
            .invoke_async(&mut conn)
            .await?;
        let hosted = key != self.keys.task(task_id);
        if fields.is_empty() {
            return Ok(None);
        }
        if hosted {
            // The record's `error` is its JSON; the task's message is apart.
            fields.remove("error");
            if let Some(message) = fields.remove("task_error") {
                fields.insert("error".into(), message);
            }
        }
        // The packed spec reads as the fields it stands for.
        if let Some(spec) = fields.get("spec").and_then(|s| task::PackedSpec::parse(s)) {
            fields.extend(spec.fields());
        }
        let text = |name: &str| fields.get(name).filter(|v| !v.is_empty()).cloned();
        let int = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let status = fields
            .get("status")
            .and_then(|s| TaskStatus::parse(s))
            .ok_or_else(|| QueueError::Reply(format!("task {task_id} has no valid status")))?;
        Ok(Some(TaskInfo {
            task_id: task_id.to_string(),
            kind: text("kind").unwrap_or_default(),
            status,
            priority: int("priority").unwrap_or(task::DEFAULT_PRIORITY),
            attempts: int("attempts").unwrap_or(0) as u32,
            max_attempts: int("max_attempts").unwrap_or(0) as u32,
            worker: text("worker"),
            // Kept in microseconds (for latency); shown in ms like the rest.
            created_at_ms: int("created_us").map(|us| us / 1000),
            started_at_ms: int("started_us").map(|us| us / 1000),
            finished_at_ms: int("finished_at_ms"),
            next_attempt_at_ms: int("next_attempt_at_ms"),
            // Completion does not write it: a completed task has run to the end.
            progress: if status == TaskStatus::Completed {
                Some(1.0)
            } else {
                fields.get("progress").and_then(|v| v.parse().ok())
            },
            error_code: text("error_code"),
            error: text("error"),
            retries,
            payload: text("payload").unwrap_or_default(),
            result: text("result"),
            fields,
        }))
    }

    /// Cancels a queued task at once, or asks a running one to stop.
    pub async fn cancel(&self, task_id: &str) -> Result<CancelState, QueueError> {
        let mut conn = self.conn.clone();
        let state: String = self
            .scripts
            .cancel
            .arg(self.keys.prefix())
            .arg("")
            .arg(task_id)
            .arg(self.config.result_ttl.as_secs())
            .invoke_async(&mut conn)
            .await?;
        Ok(match state.as_str() {
            "cancelled" => CancelState::Cancelled,
            "cancelling" => CancelState::Cancelling,
            "missing" => CancelState::NotFound,
            other => match other.strip_prefix("final:").and_then(TaskStatus::parse) {
                Some(status) => CancelState::AlreadyFinished(status),
                None => return Err(QueueError::Reply(format!("cancel answered `{other}`"))),
            },
        })
    }

    /// Shared counters (every API instance and worker writes the same hash).
    pub async fn counters(&self) -> Result<Counters, QueueError> {
        let mut conn = self.conn.clone();
        let all: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.keys.counters())
            .query_async(&mut conn)
            .await?;
        let get = |name: &str| all.get(name).copied().unwrap_or(0);
        Ok(Counters {
            tasks_submitted: get("tasks_submitted"),
            tasks_completed: get("tasks_completed"),
            tasks_failed: get("tasks_failed"),
            tasks_timeout: get("tasks_timeout"),
            active_tasks: get("active_tasks").max(0),
            extra: all,
        })
    }

    /// Waiting and pending entries per class, delayed retries, DLQ length
    /// and live workers, in one round trip.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for class in Class::ALL {
            let stream = self.keys.stream(class);
            pipe.cmd("XLEN").arg(&stream);
            pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
        }
        pipe.cmd("ZCARD").arg(self.keys.delayed());
        pipe.cmd("XLEN").arg(self.keys.dlq());
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        pipe.cmd("ZCOUNT")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf");
        let replies: Vec<redis::Value> = match pipe.query_async(&mut conn).await {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_groups().await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let int = |v: &redis::Value| -> u64 {
            match v {
                redis::Value::Int(n) => (*n).max(0) as u64,
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => (*n).max(0) as u64,
                    _ => 0,
                },
                _ => 0,
            }
        };
        let mut stats = QueueStats::default();
        for (i, class) in Class::ALL.into_iter().enumerate() {
            let len = int(&replies[2 * i]);
            let pending = int(&replies[2 * i + 1]);
            stats
                .waiting
                .insert(class.as_str(), len.saturating_sub(pending));
            stats.pending.insert(class.as_str(), pending);
        }
        stats.delayed = int(&replies[6]);
        stats.dlq = int(&replies[7]);
        stats.live_workers = int(&replies[8]);
        Ok(stats)
    }

    /// Newest dead-lettered tasks first.
    pub async fn dlq(&self, count: usize) -> Result<Vec<DlqEntry>, QueueError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
            .arg(self.keys.dlq())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(entries
            .into_iter()
            .map(|(entry_id, fields)| DlqEntry { entry_id, fields })
            .collect())
    }

    /// Requeues one DLQ entry (by entry id) or all (`None`) with fresh
    /// attempts; returns how many tasks went back.
    pub async fn requeue(&self, entry_id: Option<&str>) -> Result<u64, QueueError> {
        if let Some(id) = entry_id {
            let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
            let digits =
                |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
            if !(digits(ms) && digits(seq)) {
                return Err(QueueError::Invalid {
                    field: "entry_id",
                    message: format!("`{id}` is not a stream entry id like 1718000000000-0"),
                });
            }
        }
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .requeue
            .arg(self.keys.prefix())
            .arg("")
            .arg(entry_id.unwrap_or("all"))
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Deletes every DLQ entry; their tasks expire after the result TTL.
    pub async fn purge_dlq(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg(self.keys.dlq())
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await?;
        let task_ids: Vec<String> = entries
            .iter()
            .filter_map(|(_, fields)| fields.get("task_id").cloned())
            .collect();
        let mut homes = self.homes(&task_ids).await?.into_iter();
        let mut pipe = redis::pipe();
        pipe.atomic();
        // Exactly the entries read: one dead-lettered meanwhile stays.
        for (entry_id, fields) in &entries {
            if let Some(task_id) = fields.get("task_id") {
                let ttl = self.config.result_ttl.as_secs() as i64;
                let home = homes.next().unwrap_or_else(|| self.keys.task(task_id));
                pipe.expire(format!("{home}:retries"), ttl).ignore();
                // A hosted task lives as long as its record.
                if home == self.keys.task(task_id) {
                    pipe.expire(home, ttl).ignore();
                }
            }
            pipe.xdel(self.keys.dlq(), &[entry_id]).ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        Ok(entries.len() as u64)
    }

    /// Live workers' heartbeats (JSON each), by consumer name.
    pub async fn workers(&self) -> Result<BTreeMap<String, String>, QueueError> {
        let mut conn = self.conn.clone();
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        let names: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut get = redis::cmd("MGET");
        for name in &names {
            get.arg(self.keys.worker(name));
        }
        let beats: Vec<Option<String>> = get.query_async(&mut conn).await?;
        Ok(names
            .into_iter()
            .zip(beats)
            .filter_map(|(name, beat)| beat.map(|b| (name, b)))
            .collect())
    }

    /// Writes the progress (0..=1) of running tasks, and of their records,
    /// in one round trip. A task that has finished keeps its final value.
    pub async fn report_progress(&self, items: &[(String, f64)]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.progress.prepare_invoke();
        invocation.arg(self.keys.prefix()).arg("");
        for (task_id, progress) in items {
            invocation
                .arg(task_id)
                .arg(format!("{:.4}", progress.clamp(0.0, 1.0)));
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Moves due retries back to their streams; returns how many moved.
    pub async fn promote_due(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .promote
            .arg(self.keys.prefix())
            .arg("")
            .arg(1000)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub(crate) fn scripts(&self) -> &scripts::Scripts {
        &self.scripts
    }
}

pub use stratbox_redis::clock::now_ms;
