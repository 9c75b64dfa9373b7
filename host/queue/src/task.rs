//! What the queue moves: task specs in, deliveries out, outcomes back.

use serde::Serialize;
use std::collections::BTreeMap;

/// Priority class; one stream each. `priority` numbers map onto them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    High,
    Normal,
    Low,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::High, Class::Normal, Class::Low];

    /// Celery-style numeric priority: 0..=3 low, 4..=6 normal (the default
    /// 5), 7 and above high. The old API sent 10 for "urgent".
    pub fn from_priority(priority: i64) -> Class {
        match priority {
            i64::MIN..=3 => Class::Low,
            4..=6 => Class::Normal,
            _ => Class::High,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::High => "high",
            Class::Normal => "normal",
            Class::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Default numeric priority (normal class).
pub const DEFAULT_PRIORITY: i64 = 5;

/// A task to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Names the handler, e.g. `backtest`.
    pub kind: String,
    /// Handler input, opaque to the queue (JSON by convention).
    pub payload: String,
    pub priority: i64,
    /// Overrides the queue's task timeout.
    pub timeout_ms: Option<u64>,
    /// Overrides the queue's attempt limit.
    pub max_attempts: Option<u32>,
    /// A hash that mirrors the task's lifecycle (`status`, `task_id`,
    /// `started_at_ms`, `finished_at_ms`, `progress`, `error`, and the
    /// result under `result_field`), written in the same script as the
    /// task itself, so the two never disagree.
    pub record: Option<Record>,
    /// A set the task's id is in while it may still run: whatever the set
    /// stands for (a plugin) is "in use" until the task ends. The scripts
    /// take the id out as the task ends (and put it back on a requeue),
    /// so the set stays as small as the live tasks (`Queue::holders`).
    pub holds: Option<String>,
    /// The fairness lane (a tenant) the task waits in: lanes take turns
    /// within a priority class and may be capped (`Queue::set_lane_cap`).
    /// `None` is the default lane, whose keys predate lanes. A name is
    /// 1 to 32 of `a-z`, `0-9`, `_`, `-` ([`valid_lane`]).
    pub lane: Option<String>,
}

/// Whether `lane` is a lane name: 1 to 32 of `a-z`, `0-9`, `_`, `-`
/// (it goes into key names and the packed spec).
pub fn valid_lane(lane: &str) -> bool {
    (1..=32).contains(&lane.len())
        && lane
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: String,
    pub result_field: String,
    /// Fields the record starts with, written by the submission itself,
    /// so a record and its task appear together or not at all. Without
    /// them the record exists and runs again: its last run's result,
    /// error and times are cleared.
    pub init: Vec<(String, String)>,
    /// A sorted set the record joins at submission, scored by the
    /// server's time in ms: (key, member).
    pub index: Option<(String, String)>,
    /// The record keeps the task's own fields too (spec, payload, attempts,
    /// worker...), so each step writes one hash instead of two. The
    /// record's `error` is then its JSON; the task's message is
    /// `task_error`. The task lives as long as the record (no TTL), and
    /// running the record again supersedes it: a queued or running one
    /// ends as cancelled. For records that belong to one task at a time.
    pub hosts_task: bool,
}

/// A condition on a submission: it happens only if a hash field still
/// holds `expect`, and moves the field on in the same step. Many
/// processes may try the same submission; one succeeds (the scheduler's
/// exactly-once firing). An empty `expect` also holds when the field is
/// absent, so a guard can create a record that must not exist yet, with
/// its task or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub key: String,
    pub field: String,
    pub expect: String,
    /// Fields of `key` written when the guard holds.
    pub set: Vec<(String, String)>,
    /// A sorted-set entry written too: (key, member, score).
    pub index: Option<(String, String, i64)>,
}

impl Record {
    pub fn new(key: String, result_field: &str) -> Self {
        Self {
            key,
            result_field: result_field.to_string(),
            init: Vec::new(),
            index: None,
            hosts_task: false,
        }
    }
}

impl TaskSpec {
    pub fn new(kind: &str, payload: String) -> Self {
        Self {
            kind: kind.to_string(),
            payload,
            priority: DEFAULT_PRIORITY,
            timeout_ms: None,
            max_attempts: None,
            record: None,
            holds: None,
            lane: None,
        }
    }
}

/// A task's immutable fields as the task hash keeps them: one field,
/// `spec` = `created_us priority class timeout_ms max_attempts kind[
/// result_field][ @lane]` (the Lua prelude's `parse_spec` reads the
/// same). One field rather than seven: the hot path writes and reads it
/// per task. A spec without `@lane` (all of them before lanes) is the
/// default lane's; no kind or result field starts with `@`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedSpec {
    /// Server time of the submission (µs), set by the submit script.
    pub created_us: i64,
    pub priority: i64,
    pub class: Class,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub kind: String,
    /// The record's field that takes the result; empty without a record.
    pub result_field: String,
    /// `None`: the default lane.
    pub lane: Option<String>,
}

impl PackedSpec {
    /// Everything after `created_us`, which only the server knows.
    pub fn tail(&self) -> String {
        let mut s = format!(
            "{} {} {} {} {}",
            self.priority,
            self.class.as_str(),
            self.timeout_ms,
            self.max_attempts,
            self.kind
        );
        if !self.result_field.is_empty() {
            s.push(' ');
            s.push_str(&self.result_field);
        }
        if let Some(lane) = &self.lane {
            s.push_str(" @");
            s.push_str(lane);
        }
        s
    }

    pub fn parse(s: &str) -> Option<PackedSpec> {
        let (s, lane) = match s.split_once(" @") {
            Some((rest, lane)) if valid_lane(lane) => (rest, Some(lane.to_string())),
            Some(_) => return None,
            None => (s, None),
        };
        let mut it = s.split(' ');
        let spec = PackedSpec {
            created_us: it.next()?.parse().ok()?,
            priority: it.next()?.parse().ok()?,
            class: Class::parse(it.next()?)?,
            timeout_ms: it.next()?.parse().ok()?,
            max_attempts: it.next()?.parse().ok()?,
            kind: it.next().filter(|k| !k.is_empty())?.to_string(),
            result_field: it.next().unwrap_or("").to_string(),
            lane,
        };
        it.next().is_none().then_some(spec)
    }

    /// The one-field-each names it stands for (the layout before `spec`).
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("created_us".to_string(), self.created_us.to_string()),
            ("priority".to_string(), self.priority.to_string()),
            ("class".to_string(), self.class.as_str().to_string()),
            ("timeout_ms".to_string(), self.timeout_ms.to_string()),
            ("max_attempts".to_string(), self.max_attempts.to_string()),
            ("kind".to_string(), self.kind.clone()),
        ];
        if !self.result_field.is_empty() {
            f.push(("result_field".to_string(), self.result_field.clone()));
        }
        if let Some(lane) = &self.lane {
            f.push(("lane".to_string(), lane.clone()));
        }
        f
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// A task as stored: definition, lifecycle and result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInfo {
    pub task_id: String,
    pub kind: String,
    pub status: TaskStatus,
    pub priority: i64,
    pub attempts: u32,
    pub max_attempts: u32,
    pub worker: Option<String>,
    pub created_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub next_attempt_at_ms: Option<i64>,
    pub progress: Option<f64>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// Each retry: `attempt:delay_ms:error_code`.
    pub retries: Vec<String>,
    /// The task's lane; absent for the default lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    #[serde(skip)]
    pub payload: String,
    #[serde(skip)]
    pub result: Option<String>,
    #[serde(skip)]
    pub fields: BTreeMap<String, String>,
}

/// A task handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub stream: String,
    pub entry_id: String,
    pub task_id: String,
    pub kind: String,
    pub payload: String,
    /// This delivery's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub priority: i64,
    /// The key of the record the result goes to, or empty.
    pub record: String,
    /// The record hosts the task ([`Record::hosts_task`]).
    pub hosted: bool,
    /// The record's field for the result (empty: `result`).
    pub result_field: String,
    /// The lane the task waited in (a tenant's); `None`: the default lane.
    pub lane: Option<String>,
}

/// Why a task failed, and whether running it again could help.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// Machine-readable, e.g. `fuel_exhausted`, `plugin_not_found`.
    pub code: String,
    pub message: String,
    pub transient: bool,
    /// Counted in `tasks_timeout` rather than `tasks_failed`.
    pub timeout: bool,
}

impl TaskError {
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            transient: false,
            timeout: false,
        }
    }

    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            transient: true,
            timeout: false,
        }
    }

    /// The error as the `error` JSON of a record: `{"code", "message"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({"code": self.code, "message": self.message}).to_string()
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How a delivery ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed {
        result: String,
    },
    /// Permanent, or out of attempts: to the dead-letter stream.
    Failed(TaskError),
    /// Back to the queue after `delay_ms`.
    Retry {
        error: TaskError,
        delay_ms: u64,
    },
    Cancelled,
    /// Not the task's fault (shutdown): back to the queue now, and the
    /// attempt is not counted.
    Released,
    /// A second delivery of a task this worker ran under another entry:
    /// acknowledged if the task has ended, else left alone. Never an
    /// outcome of the task.
    Duplicate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_priorities_map_onto_three_classes() {
        let classes: Vec<Class> = [-5, 0, 3, 4, 5, 6, 7, 10, 255]
            .into_iter()
            .map(Class::from_priority)
            .collect();
        use Class::*;
        assert_eq!(
            classes,
            [Low, Low, Low, Normal, Normal, Normal, High, High, High]
        );
        assert_eq!(Class::from_priority(DEFAULT_PRIORITY), Normal);
        for class in Class::ALL {
            assert_eq!(Class::parse(class.as_str()), Some(class));
        }
    }

    #[test]
    fn statuses_round_trip_and_know_when_they_are_final() {
        for status in [
            TaskStatus::Queued,
            TaskStatus::Running,
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ] {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert!(!TaskStatus::Running.is_final() && TaskStatus::Cancelled.is_final());
        assert_eq!(TaskStatus::parse("done"), None);
    }

    #[test]
    fn specs_round_trip_through_their_packed_form() {
        let mut spec = PackedSpec {
            created_us: 1_795_863_551_933_650,
            priority: -2,
            class: Class::Low,
            timeout_ms: 600_000,
            max_attempts: 3,
            kind: "optimization_chunk".into(),
            result_field: String::new(),
            lane: None,
        };
        let packed = |s: &PackedSpec| format!("{} {}", s.created_us, s.tail());
        assert_eq!(
            packed(&spec),
            "1795863551933650 -2 low 600000 3 optimization_chunk"
        );
        assert_eq!(PackedSpec::parse(&packed(&spec)), Some(spec.clone()));
        spec.result_field = "report".into();
        assert_eq!(PackedSpec::parse(&packed(&spec)), Some(spec.clone()));
        // What the Lua fallback packs for a task of the old layout without a record.
        let old = PackedSpec::parse("17 5 normal 0 3 noop ").unwrap();
        assert_eq!((old.kind.as_str(), old.result_field.as_str()), ("noop", ""));
        for bad in [
            "",
            "1 5 normal 0 3",
            "x 5 normal 0 3 noop",
            "1 5 urgent 0 3 noop",
            "1 5 normal 0 3 a b c",
        ] {
            assert_eq!(PackedSpec::parse(bad), None, "{bad}");
        }
        let fields: BTreeMap<String, String> = spec.fields().into_iter().collect();
        assert_eq!(fields["kind"], "optimization_chunk");
        assert_eq!(fields["created_us"], "1795863551933650");
        assert_eq!(fields["result_field"], "report");
        assert!(!fields.contains_key("lane"));
    }

    #[test]
    fn a_lane_rides_at_the_end_of_the_spec_and_old_specs_are_the_default_lane() {
        let mut spec = PackedSpec::parse("17 5 normal 0 3 noop").unwrap();
        assert_eq!(spec.lane, None);
        spec.lane = Some("tenant-7".into());
        assert_eq!(spec.tail(), "5 normal 0 3 noop @tenant-7");
        let packed = format!("17 {}", spec.tail());
        assert_eq!(PackedSpec::parse(&packed), Some(spec.clone()));
        spec.result_field = "report".into();
        let packed = format!("17 {}", spec.tail());
        assert_eq!(packed, "17 5 normal 0 3 noop report @tenant-7");
        assert_eq!(PackedSpec::parse(&packed), Some(spec.clone()));
        let fields: BTreeMap<String, String> = spec.fields().into_iter().collect();
        assert_eq!(fields["lane"], "tenant-7");
        assert_eq!(fields["result_field"], "report");
        for bad in ["17 5 normal 0 3 noop @", "17 5 normal 0 3 noop @Bad"] {
            assert_eq!(PackedSpec::parse(bad), None, "{bad}");
        }
        assert!(valid_lane("a") && valid_lane("a_b-9") && valid_lane(&"x".repeat(32)));
        for bad in ["", "A", "a b", "a:b", "a@b", "é", &"x".repeat(33)] {
            assert!(!valid_lane(bad), "{bad}");
        }
    }

    #[test]
    fn task_errors_serialise_as_the_record_error_shape() {
        let e = TaskError::permanent("fuel_exhausted", "used \"all\" fuel");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["code"], "fuel_exhausted");
        assert_eq!(json["message"], "used \"all\" fuel");
        assert!(!e.transient && TaskError::transient("x", "y").transient);
    }
}
