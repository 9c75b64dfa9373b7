//! Reading tasks back: one by id, the holders of a resource, and the hash
//! each task lives in.

use std::collections::BTreeMap;

use super::{task, Queue, QueueError, TaskInfo, TaskStatus};

impl Queue {
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
    /// ([`Record::hosts_task`](crate::Record::hosts_task)). An id its
    /// record no longer hosts gets its own key, which does not exist.
    pub(crate) async fn homes(&self, task_ids: &[String]) -> Result<Vec<String>, QueueError> {
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
            lane: text("lane"),
            payload: text("payload").unwrap_or_default(),
            result: text("result"),
            fields,
        }))
    }
}
