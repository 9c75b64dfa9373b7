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

    /// The class stream of a lane: the default lane's (`None`) is
    /// [`QueueKeys::stream`]; lane `l`'s are `{prefix}:lane:{l}:tasks`
    /// (normal), `{prefix}:lane:{l}:tasks:high`, `{prefix}:lane:{l}:tasks:low`.
    pub fn lane_stream(&self, class: Class, lane: Option<&str>) -> String {
        let Some(lane) = lane else {
            return self.stream(class);
        };
        match class {
            Class::Normal => format!("{}:lane:{lane}:tasks", self.prefix),
            other => format!("{}:lane:{lane}:tasks:{}", self.prefix, other.as_str()),
        }
    }

    /// `{prefix}:queue:lanes`: every named lane tasks were submitted to.
    pub fn lanes(&self) -> String {
        format!("{}:queue:lanes", self.prefix)
    }

    /// `{prefix}:queue:lanes:waiting`: named lanes that may have entries
    /// not yet delivered; a fetch drops those it finds empty.
    pub fn lanes_waiting(&self) -> String {
        format!("{}:queue:lanes:waiting", self.prefix)
    }

    /// `{prefix}:queue:lane_caps`: lane name (`""` for the default lane)
    /// to the most tasks it may run at once.
    pub fn lane_caps(&self) -> String {
        format!("{}:queue:lane_caps", self.prefix)
    }

    /// `{prefix}:queue:lane_turn`: a counter that rotates the lane a
    /// fetch serves first.
    pub fn lane_turn(&self) -> String {
        format!("{}:queue:lane_turn", self.prefix)
    }

    /// `{prefix}:queue:wake`: a one-entry stream rung when entries are
    /// added or a capped lane frees room; blocked fetches wait on it
    /// while lanes or caps exist.
    pub fn wake(&self) -> String {
        format!("{}:queue:wake", self.prefix)
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
