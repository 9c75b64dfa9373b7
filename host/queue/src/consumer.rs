//! The worker side of the queue: one consumer per worker process.

use super::task::{Delivery, Outcome};
use super::{is_nogroup, Class, Queue, QueueError, GROUP};
use redis::aio::ConnectionManager;
use std::borrow::Cow;
use std::time::Duration;

/// A named member of the `workers` group. Its name is unique per process
/// (host, pid, boot id), so a restarted worker never inherits a dead one's
/// pending entries by accident: those go through the sweeper.
pub struct Consumer {
    queue: Queue,
    name: String,
    /// Carries only `XREADGROUP ... BLOCK`, which would stall every other
    /// command sharing a multiplexed socket.
    blocking: ConnectionManager,
}

/// A task a consumer holds: delivered to it and not yet acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub stream: String,
    pub entry_id: String,
    pub task_id: String,
    /// Where a result goes: the record's key and field (both empty when
    /// the result stays on the task hash).
    pub record: String,
    pub result_field: String,
    /// The hash holding the task: its record when the record hosts it,
    /// else empty (the task's own hash).
    pub home: String,
}

impl From<&Delivery> for Held {
    fn from(d: &Delivery) -> Self {
        Self {
            stream: d.stream.clone(),
            entry_id: d.entry_id.clone(),
            task_id: d.task_id.clone(),
            record: d.record.clone(),
            result_field: d.result_field.clone(),
            home: if d.hosted {
                d.record.clone()
            } else {
                String::new()
            },
        }
    }
}

/// What a keepalive learned.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeepaliveReport {
    /// Tasks another consumer has reclaimed (this one stalled too long).
    pub lost: Vec<String>,
    /// Tasks whose cancellation was requested.
    pub cancel: Vec<String>,
}

impl Consumer {
    pub async fn new(queue: Queue, url: &str, name: String) -> anyhow::Result<Self> {
        let blocking =
            stratbox_redis::connection::connect_blocking(url, queue.config().block).await?;
        Ok(Self {
            queue,
            name,
            blocking,
        })
    }

    /// `host-pid-bootid`: unique among live processes and across reboots.
    pub fn unique_name() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|b| {
                b.trim()
                    .chars()
                    .filter(|c| *c != '-')
                    .take(8)
                    .collect::<String>()
            })
            .unwrap_or_else(|_| "noboot".into());
        format!("{host}-{}-{boot}", std::process::id())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Takes up to `want` tasks without blocking: first entries idle past
    /// the visibility timeout when `reclaim` (dead workers' tasks), then
    /// new ones by priority with the starvation rule.
    pub async fn fetch(&self, want: usize, reclaim: bool) -> Result<Vec<Delivery>, QueueError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let config = self.queue.config();
        let min_idle = if reclaim {
            config.visibility_timeout.as_millis() as u64
        } else {
            0
        };
        let mut conn = self.queue.connection();
        let mut invocation = self.queue.scripts().fetch.prepare_invoke();
        invocation
            .arg(self.queue.keys().prefix())
            .arg(&self.name)
            .arg(want)
            .arg(min_idle)
            .arg(config.starvation_age.as_millis() as u64);
        let (flat, lost_group): (Vec<String>, i64) = match invocation.invoke_async(&mut conn).await
        {
            Err(e) if is_nogroup(&e) => {
                self.queue.ensure_groups().await?;
                invocation.invoke_async(&mut conn).await?
            }
            other => other?,
        };
        // A lane's stream without its group was skipped: made again for
        // the next fetch.
        if lost_group != 0 {
            self.queue.ensure_groups().await?;
        }
        parse_deliveries(&flat)
    }

    /// Waits up to `block` for new tasks on every class at once and takes
    /// up to `want`. Used only when a non-blocking fetch found nothing.
    ///
    /// While lanes or lane caps exist, a read of the streams themselves
    /// would pass over the caps and the turns, so it waits on the wake
    /// stream instead (rung by whatever adds entries or frees a capped
    /// lane's room) and then fetches.
    pub async fn fetch_blocking(
        &self,
        want: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let keys = self.queue.keys();
        let mut conn = self.queue.connection();
        let lanes: u64 = redis::cmd("EXISTS")
            .arg(keys.lanes())
            .arg(keys.lane_caps())
            .query_async(&mut conn)
            .await?;
        if lanes > 0 {
            return self.fetch_after_wake(want, block).await;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.name)
            .arg("COUNT")
            .arg(want.max(1))
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS");
        for class in Class::ALL {
            cmd.arg(keys.stream(class));
        }
        cmd.arg(">").arg(">").arg(">");
        let mut conn = self.blocking.clone();
        type Entries = Vec<(String, Vec<(String, Vec<(String, String)>)>)>;
        let reply: Option<Entries> = match cmd.query_async(&mut conn).await {
            Err(e) if is_nogroup(&e) => {
                self.queue.ensure_groups().await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        let Some(streams) = reply else {
            return Ok(Vec::new());
        };
        let mut invocation = self.queue.scripts().adopt.prepare_invoke();
        invocation.arg(keys.prefix()).arg(&self.name);
        let mut any = false;
        for (stream, entries) in &streams {
            for (entry_id, fields) in entries {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                };
                invocation
                    .arg(stream)
                    .arg(entry_id)
                    .arg(field("t"))
                    .arg(field("r"));
                any = true;
            }
        }
        if !any {
            return Ok(Vec::new());
        }
        let mut conn = self.queue.connection();
        let flat: Vec<String> = invocation.invoke_async(&mut conn).await?;
        parse_deliveries(&flat)
    }

    /// [`Consumer::fetch_blocking`] with lanes: the wake stream's last id
    /// is read before the fetch, so a ring after the fetch looked is not
    /// missed.
    async fn fetch_after_wake(
        &self,
        want: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let wake = self.queue.keys().wake();
        let mut conn = self.queue.connection();
        let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(&wake)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let since = last
            .into_iter()
            .next()
            .map_or("0-0".to_string(), |(id, _)| id);
        let fetched = self.fetch(want, false).await?;
        if !fetched.is_empty() {
            return Ok(fetched);
        }
        let mut blocking = self.blocking.clone();
        let _: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&wake)
            .arg(&since)
            .query_async(&mut blocking)
            .await?;
        self.fetch(want, false).await
    }

    /// Ends deliveries in one round trip. Returns (completed, duplicates):
    /// duplicates are deliveries of tasks that had already ended.
    ///
    /// A result bound for a record (a backtest's report, some KB) goes as
    /// a plain `HSETNX` in the same transaction, ahead of the script,
    /// which keeps it when this delivery wins and removes it when not.
    /// Passed to the script instead, Redis's Lua would hash every byte of
    /// it on the way in.
    pub async fn complete(&self, outcomes: &[(Held, Outcome)]) -> Result<(u64, u64), QueueError> {
        if outcomes.is_empty() {
            return Ok((0, 0));
        }
        let staged = |held: &Held, outcome: &Outcome| {
            matches!(outcome, Outcome::Completed { .. }) && !held.record.is_empty()
        };
        // The script's arguments, the same whichever way it is called.
        let ttl = self.queue.config().result_ttl.as_secs().to_string();
        let dlq_max = self.queue.config().dlq_max_len.to_string();
        let mut args: Vec<Cow<'_, str>> = vec![
            self.queue.keys().prefix().into(),
            self.name.as_str().into(),
            ttl.into(),
            dlq_max.into(),
        ];
        let mut stage = redis::pipe();
        stage.atomic();
        for (held, outcome) in outcomes {
            let (op, a, b, c, d): (&str, &str, &str, String, &str) = match outcome {
                Outcome::Completed { result } if staged(held, outcome) => {
                    let field = if held.result_field.is_empty() {
                        "result"
                    } else {
                        &held.result_field
                    };
                    stage
                        .cmd("HSETNX")
                        .arg(&held.record)
                        .arg(field)
                        .arg(result)
                        .ignore();
                    ("staged", &held.record, field, String::new(), "")
                }
                Outcome::Completed { result } => ("done", result, "", String::new(), ""),
                Outcome::Failed(e) => (
                    if e.timeout { "timeout" } else { "fail" },
                    &e.code,
                    &e.message,
                    e.to_json(),
                    if e.timeout {
                        "timeout"
                    } else if e.transient {
                        "transient"
                    } else {
                        "permanent"
                    },
                ),
                Outcome::Retry { error, delay_ms } => (
                    "retry",
                    &error.code,
                    &error.message,
                    delay_ms.to_string(),
                    "",
                ),
                Outcome::Cancelled => ("cancel", "", "", String::new(), ""),
                Outcome::Released => ("release", "", "", String::new(), ""),
                Outcome::Duplicate => ("dup", "", "", String::new(), ""),
            };
            args.extend([
                op.into(),
                held.stream.as_str().into(),
                held.entry_id.as_str().into(),
                held.task_id.as_str().into(),
                held.home.as_str().into(),
                a.into(),
            ]);
            // The common case, a completion, carries no error fields.
            if op != "done" {
                args.extend([b.into(), c.into(), d.into()]);
            }
        }
        let mut conn = self.queue.connection();
        let staged = stage.cmd_iter().next().is_some();
        if staged {
            let mut script = redis::cmd("EVAL");
            script
                .arg(super::scripts::COMPLETE_SOURCE)
                .arg(0)
                .arg(&args);
            stage.add_command(script);
        }
        // A stream that lost its group fails the script before it writes
        // (its staged results are set again, to the same values).
        let mut regrouped = false;
        loop {
            let result = if staged {
                stage
                    .query_async::<((u64, u64),)>(&mut conn)
                    .await
                    .map(|(counts,)| counts)
            } else {
                let mut invocation = self.queue.scripts().complete.prepare_invoke();
                invocation.arg(&args);
                invocation.invoke_async(&mut conn).await
            };
            match result {
                Err(e) if !regrouped && is_nogroup(&e) => {
                    self.queue.ensure_groups().await?;
                    regrouped = true;
                }
                other => return Ok(other?),
            }
        }
    }

    /// Refreshes the claims on `held` (so no sweeper takes them), writes
    /// the heartbeat, and reports lost tasks and cancel requests.
    pub async fn keepalive(
        &self,
        held: &[Held],
        heartbeat_json: &str,
    ) -> Result<KeepaliveReport, QueueError> {
        let mut invocation = self.queue.scripts().keepalive.prepare_invoke();
        invocation
            .arg(self.queue.keys().prefix())
            .arg(&self.name)
            .arg(self.queue.config().heartbeat_ttl.as_millis() as u64)
            .arg(heartbeat_json);
        for h in held {
            invocation.arg(&h.stream).arg(&h.entry_id).arg(&h.task_id);
        }
        let mut conn = self.queue.connection();
        let (lost, cancel): (Vec<String>, Vec<String>) =
            match invocation.invoke_async(&mut conn).await {
                Err(e) if is_nogroup(&e) => {
                    self.queue.ensure_groups().await?;
                    invocation.invoke_async(&mut conn).await?
                }
                other => other?,
            };
        Ok(KeepaliveReport { lost, cancel })
    }

    /// Deletes other consumers that are dead: nothing pending, idle past
    /// the visibility timeout and no heartbeat within it. Returns how many.
    pub async fn prune_dead(&self) -> Result<u64, QueueError> {
        let config = self.queue.config();
        let dead_after = config.visibility_timeout.max(config.heartbeat_ttl);
        let mut conn = self.queue.connection();
        let mut invocation = self.queue.scripts().prune.prepare_invoke();
        invocation
            .arg(self.queue.keys().prefix())
            .arg(&self.name)
            .arg(dead_after.as_millis() as u64)
            .arg(dead_after.as_millis() as u64);
        Ok(match invocation.invoke_async(&mut conn).await {
            Err(e) if is_nogroup(&e) => {
                self.queue.ensure_groups().await?;
                invocation.invoke_async(&mut conn).await?
            }
            other => other?,
        })
    }

    /// Clean exit: returns every entry still held to the queue (a task
    /// whose cancellation was asked for ends cancelled instead), leaves
    /// the group and removes the heartbeat. Returns how many went back.
    pub async fn leave(&self) -> Result<u64, QueueError> {
        let mut conn = self.queue.connection();
        let mut invocation = self.queue.scripts().release_all.prepare_invoke();
        invocation
            .arg(self.queue.keys().prefix())
            .arg(&self.name)
            .arg(self.queue.config().result_ttl.as_secs());
        Ok(match invocation.invoke_async(&mut conn).await {
            Err(e) if is_nogroup(&e) => {
                self.queue.ensure_groups().await?;
                invocation.invoke_async(&mut conn).await?
            }
            other => other?,
        })
    }
}

fn parse_deliveries(flat: &[String]) -> Result<Vec<Delivery>, QueueError> {
    if !flat.len().is_multiple_of(8) {
        return Err(QueueError::Reply(format!(
            "fetch returned {} fields, not a multiple of 8",
            flat.len()
        )));
    }
    let bad = |what: &str, value: &str| QueueError::Reply(format!("bad {what} `{value}`"));
    flat.chunks_exact(8)
        .map(|f| {
            let spec = super::task::PackedSpec::parse(&f[3]).ok_or_else(|| bad("spec", &f[3]))?;
            Ok(Delivery {
                stream: f[0].clone(),
                entry_id: f[1].clone(),
                task_id: f[2].clone(),
                kind: spec.kind,
                payload: f[4].clone(),
                attempt: f[5].parse().map_err(|_| bad("attempt", &f[5]))?,
                max_attempts: spec.max_attempts,
                timeout_ms: spec.timeout_ms,
                priority: spec.priority,
                record: f[6].clone(),
                hosted: f[7] == "1",
                result_field: spec.result_field,
                lane: spec.lane,
            })
        })
        .collect()
}
