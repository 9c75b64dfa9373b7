//! Every Redis key the queue uses; docs/queue.md ("Keys") lists the
//! same names.

use super::task::Class;

/// Consumer group every worker reads through.
pub const GROUP: &str = "workers";

#[derive(Debug, Clone)]
pub struct QueueKeys {
    prefix: String,
}

impl QueueKeys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:tasks` (normal), `{prefix}:tasks:high`, `{prefix}:tasks:low`.
    pub fn stream(&self, class: Class) -> String {
        match class {
            Class::Normal => format!("{}:tasks", self.prefix),
            other => format!("{}:tasks:{}", self.prefix, other.as_str()),
        }
    }

    /// `{prefix}:tasks:dlq`: one entry per task that failed for good.
    pub fn dlq(&self) -> String {
        format!("{}:tasks:dlq", self.prefix)
    }

    /// `{prefix}:tasks:delayed`: retries waiting for their backoff, scored
    /// by the time (ms) they become due.
    pub fn delayed(&self) -> String {
        format!("{}:tasks:delayed", self.prefix)
    }

    /// `{prefix}:task:{id}`: the task's definition, status and result.
    pub fn task(&self, task_id: &str) -> String {
        format!("{}:task:{}", self.prefix, task_id)
    }

    /// `{prefix}:queue:homes`: the record (value) that hosts each task
    /// (field) submitted with [`Record::hosts_task`](super::Record): such a
    /// task keeps its fields in the record, not in a hash of its own.
    pub fn task_homes(&self) -> String {
        format!("{}:queue:homes", self.prefix)
    }

    /// `{prefix}:queue:counters`: tasks_submitted, tasks_completed, ...
    pub fn counters(&self) -> String {
        format!("{}:queue:counters", self.prefix)
    }

    /// `{prefix}:queue:durations`: the task duration histogram, fields
    /// `{outcome}:{bucket}`, `{outcome}:count`, `{outcome}:sum_ms`.
    pub fn durations(&self) -> String {
        format!("{}:queue:durations", self.prefix)
    }

    /// `{prefix}:workers`: consumer names scored by their last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// `{prefix}:worker:{consumer}`: a worker's heartbeat, with a TTL.
    pub fn worker(&self, consumer: &str) -> String {
        format!("{}:worker:{}", self.prefix, consumer)
    }

    /// `{prefix}:cancel`: pub/sub channel carrying ids of tasks to stop.
    pub fn cancel_channel(&self) -> String {
        format!("{}:cancel", self.prefix)
    }
}
