//! `stratbox dlq` and `stratbox tasks`: the operator's view of a running
//! service, over its HTTP API (so they work wherever the API is reachable,
//! with its token, and change nothing the API would refuse).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{ApiArgs, Client};
use super::{CliError, CliResult};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead-lettered tasks, newest first: entry, task, kind, reason,
    /// attempts, when.
    List(DlqListArgs),
    /// Put dead letters back on their queue with fresh attempts: one entry,
    /// or every entry with --all.
    Requeue(DlqRequeueArgs),
    /// Delete every dead letter (needs --yes).
    Purge(DlqPurgeArgs),
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// At most this many entries (1 to 10,000).
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// The API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DlqRequeueArgs {
    /// The DLQ entry id (from `stratbox dlq list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    entry_id: Option<String>,
    /// Every entry.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct DlqPurgeArgs {
    /// Confirms deleting every dead letter.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// The queue at a glance: waiting and running per priority class,
    /// retries, DLQ, the oldest wait, and the tasks each worker runs.
    List(TasksListArgs),
    /// One task: status, kind, attempts, times, error and retries.
    Show(TaskArgs),
    /// Cancel a task: at once while queued, at the next epoch tick while
    /// running.
    Cancel(TaskArgs),
}

#[derive(Debug, Args)]
pub struct TasksListArgs {
    /// The API's JSON instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The task id (a UUID, from a submission or `stratbox tasks list`).
    task_id: String,
    /// The API's JSON instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

pub fn run_dlq(cmd: DlqCommand) -> CliResult {
    match cmd {
        DlqCommand::List(args) => {
            if !(1..=10_000).contains(&args.count) {
                return Err(CliError::input(anyhow!(
                    "--count {}: must be from 1 to 10,000",
                    args.count
                )));
            }
            let client = Client::new(&args.api)?;
            let reply = client.get(&format!("/api/v1/queue/dlq?count={}", args.count))?;
            if args.json {
                outln!("{reply}");
                return Ok(());
            }
            let entries = reply["entries"].as_array().cloned().unwrap_or_default();
            outln!(
                "{:<17} {:<36} {:<20} {:<18} {:>8}  error",
                "entry",
                "task",
                "kind",
                "reason",
                "attempts"
            );
            for e in &entries {
                let f = &e["fields"];
                let text = |name: &str| f[name].as_str().unwrap_or("-").to_string();
                outln!(
                    "{:<17} {:<36} {:<20} {:<18} {:>8}  {}",
                    e["entry_id"].as_str().unwrap_or("-"),
                    text("task_id"),
                    text("kind"),
                    text("reason"),
                    text("attempts"),
                    text("error")
                );
            }
            outln!("{} dead letters", entries.len());
            Ok(())
        }
        DlqCommand::Requeue(args) => {
            let client = Client::new(&args.api)?;
            let body = match &args.entry_id {
                Some(id) => json!({ "entry_id": id }),
                None => json!({}),
            };
            let reply = client.post_json("/api/v1/queue/dlq/requeue", &body)?;
            let requeued = reply["requeued"].as_u64().unwrap_or(0);
            if let (Some(id), 0) = (&args.entry_id, requeued) {
                return Err(CliError::input(anyhow!(
                    "DLQ entry {id}: not found (see `stratbox dlq list`)"
                )));
            }
            outln!("requeued {requeued}");
            Ok(())
        }
        DlqCommand::Purge(args) => {
            if !args.yes {
                return Err(CliError::input(anyhow!(
                    "--yes: purging deletes every dead letter for good; add --yes to do it"
                )));
            }
            let client = Client::new(&args.api)?;
            let reply = client.delete("/api/v1/queue/dlq")?;
            outln!("purged {}", reply["purged"].as_u64().unwrap_or(0));
            Ok(())
        }
    }
}

/// A task id is a UUID: anything else is refused before asking.
fn check_task_id(id: &str) -> Result<(), CliError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err(CliError::input(anyhow!(
            "TASK_ID `{id}`: expected a task id like 5fbbe693-79e6-4d0a-87e4-d9c3afaa3a7c"
        )))
    }
}

pub fn run_tasks(cmd: TasksCommand) -> CliResult {
    match cmd {
        TasksCommand::List(args) => {
            let client = Client::new(&args.api)?;
            let state = client.get("/api/v1/queue/state")?;
            if args.json {
                outln!("{state}");
                return Ok(());
            }
            let per_class = |v: &Value| {
                ["high", "normal", "low"]
                    .iter()
                    .map(|c| format!("{c} {}", v[c].as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            outln!("waiting   {}", per_class(&state["waiting"]));
            outln!("running   {}", per_class(&state["pending"]));
            outln!(
                "retrying  {}   dead letters {}   oldest wait {}",
                state["delayed"].as_u64().unwrap_or(0),
                state["dlq"].as_u64().unwrap_or(0),
                state["oldest_wait_ms"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"))
            );
            for w in state["workers"].as_array().into_iter().flatten() {
                let running: Vec<&str> = w["running"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                outln!(
                    "worker {} ({} slots): {}",
                    w["consumer"].as_str().unwrap_or("-"),
                    w["slots"].as_u64().unwrap_or(0),
                    if running.is_empty() {
                        "idle".to_string()
                    } else {
                        running.join(" ")
                    }
                );
            }
            Ok(())
        }
        TasksCommand::Show(args) => {
            check_task_id(&args.task_id)?;
            let client = Client::new(&args.api)?;
            let task = client.get(&format!("/api/v1/queue/tasks/{}", args.task_id))?;
            if args.json {
                outln!("{task}");
                return Ok(());
            }
            for key in [
                "task_id",
                "kind",
                "status",
                "priority",
                "attempts",
                "max_attempts",
                "worker",
                "progress",
                "error_code",
                "error",
            ] {
                let value = &task[key];
                if !value.is_null() {
                    let shown = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string);
                    outln!("{key:<13} {shown}");
                }
            }
            for retry in task["retries"].as_array().into_iter().flatten() {
                outln!("retry         {}", retry.as_str().unwrap_or("-"));
            }
            Ok(())
        }
        TasksCommand::Cancel(args) => {
            check_task_id(&args.task_id)?;
            let client = Client::new(&args.api)?;
            let reply = client.delete(&format!("/api/v1/queue/tasks/{}", args.task_id))?;
            if args.json {
                outln!("{reply}");
            } else {
                outln!(
                    "{} {}",
                    args.task_id,
                    reply["status"].as_str().unwrap_or("cancelled")
                );
            }
            Ok(())
        }
    }
}
