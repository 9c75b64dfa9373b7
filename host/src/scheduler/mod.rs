//! The scheduler loop: fires due schedules by submitting their backtest.
//! Any number of processes may run it (`stratbox serve` does by default,
//! `stratbox scheduler` alone): each firing is a submission guarded by a
//! compare-and-set on the schedule's `next_run_ms`, checked in the same
//! Redis script that queues the task, so an occurrence is submitted
//! exactly once, and a process that dies mid-way leaves it for the next.

pub mod when;

use std::time::Duration;

use crate::queue::{Guard, Queue, QueueError};
use crate::store::schedules::fields;
use crate::store::Store;
use crate::tasks::{self, SubmitError, SubmitOptions};
use when::{next_after_firing, When};

/// How often due schedules are looked for: the timing precision of a
/// firing (a per-second schedule fires within this of its second).
pub const TICK: Duration = Duration::from_millis(100);

/// What one look at a due schedule did.
#[derive(Debug, Clone, PartialEq)]
pub enum Firing {
    Submitted {
        backtest_id: u64,
        task_id: String,
    },
    /// Another process fired this occurrence first.
    TakenElsewhere,
    /// The definition no longer validates; the occurrence is skipped and
    /// the error kept on the schedule.
    Skipped(String),
    /// Paused, gone, or not due after all.
    NotDue,
}

/// Runs until `shutdown` resolves.
pub async fn run(store: Store, queue: Queue, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        let due = match store.due_schedules(now, 64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: cannot read due schedules");
                continue;
            }
        };
        for id in due {
            match fire(&store, &queue, id, now).await {
                Ok(Firing::Submitted {
                    backtest_id,
                    task_id,
                }) => {
                    tracing::info!(schedule = id, backtest_id, %task_id, "schedule fired")
                }
                Ok(Firing::Skipped(error)) => {
                    tracing::warn!(schedule = id, %error, "schedule occurrence skipped")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(schedule = id, error = %e, "scheduler: firing failed; retrying")
                }
            }
        }
    }
}

/// Fires schedule `id` if it is due at `now_ms`.
pub async fn fire(
    store: &Store,
    queue: &Queue,
    id: u64,
    now_ms: i64,
) -> Result<Firing, SubmitError> {
    let due_key = store.keys().schedules_due();
    let record = store.get_schedule(id).await?;
    // Paused and ended schedules have no next run.
    let next_run = record.as_ref().and_then(|r| r.next_run_ms);
    let (Some(record), Some(occurrence)) = (record, next_run.filter(|t| *t <= now_ms)) else {
        if next_run.is_none() {
            // Gone, paused or ended: out of the due set.
            let _: redis::RedisResult<()> = redis::cmd("ZREM")
                .arg(&due_key)
                .arg(id)
                .query_async(&mut store.connection())
                .await;
        }
        return Ok(Firing::NotDue);
    };
    let definition = &record.definition;
    let next = match When::of(definition) {
        Ok(when) => next_after_firing(
            &when,
            occurrence,
            now_ms,
            definition.start_at_ms,
            definition.end_at_ms,
        ),
        // Checked at creation; a stored timing that does not parse ends
        // the schedule after this run.
        Err(_) => None,
    };
    let options = SubmitOptions {
        priority: definition.priority,
        ..SubmitOptions::default()
    };
    let key = store.keys().schedule(id);
    let runs = record.runs + 1;
    let submitted = tasks::submit_backtest_guarded(
        store,
        queue,
        &definition.backtest,
        &options,
        |backtest_id| Guard {
            key,
            field: fields::NEXT_RUN_MS.to_string(),
            expect: occurrence.to_string(),
            set: vec![
                (
                    fields::NEXT_RUN_MS.into(),
                    next.map(|n| n.to_string()).unwrap_or_default(),
                ),
                (fields::LAST_RUN_MS.into(), occurrence.to_string()),
                (fields::LAST_BACKTEST_ID.into(), backtest_id.to_string()),
                (fields::RUNS.into(), runs.to_string()),
                (fields::LAST_ERROR.into(), String::new()),
            ],
            index: next.map(|n| (due_key.clone(), id.to_string(), n)),
        },
    )
    .await;
    match submitted {
        Ok((backtest_id, task_id)) => Ok(Firing::Submitted {
            backtest_id,
            task_id,
        }),
        Err(SubmitError::Queue(QueueError::GuardFailed(_))) => Ok(Firing::TakenElsewhere),
        // Redis trouble: the occurrence stays due and is tried again.
        Err(e @ (SubmitError::Store(_) | SubmitError::Queue(_))) => Err(e),
        Err(e) => {
            let error = e.to_string();
            store
                .skip_schedule_run(id, occurrence, next, &error)
                .await?;
            Ok(Firing::Skipped(error))
        }
    }
}
