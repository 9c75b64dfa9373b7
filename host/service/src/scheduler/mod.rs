//! The scheduler loop: fires due schedules by submitting their backtest
//! or optimization.
//! Any number of processes may run it (`stratbox serve` does by default,
//! `stratbox scheduler` alone): each firing is a submission guarded by a
//! compare-and-set on the schedule's `next_run_ms`, checked in the same
//! Redis script that queues the task (and, for an optimization, creates
//! its record), so an occurrence is submitted exactly once, and a process
//! that dies mid-way leaves it for the next.

pub mod crontab;
pub mod when;

use std::time::Duration;

use crate::tasks::{self, optimization, SubmitError, SubmitOptions};
use std::collections::BTreeMap;
use stratbox_queue::{Guard, Queue, QueueError};
use stratbox_store::schedules::{fields, Submission};
use stratbox_store::{Store, TenantName};
use when::{next_after_firing, When};

/// How often due schedules are looked for: the timing precision of a
/// firing (a per-second schedule fires within this of its second).
pub const TICK: Duration = Duration::from_millis(100);

/// What one look at a due schedule did.
#[derive(Debug, Clone, PartialEq)]
pub enum Firing {
    Backtest {
        backtest_id: u64,
        task_id: String,
    },
    /// The optimization's record and fan-out task, created together.
    Optimization {
        optimization_id: u64,
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

/// Runs until `shutdown` resolves: the install's schedules and every
/// tenant's, each submitted in its tenant's store.
pub async fn run(store: Store, queue: Queue, shutdown: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut tenants: BTreeMap<TenantName, Store> = BTreeMap::new();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let now = stratbox_redis::clock::now_ms();
        fire_due(&store, &queue, now).await;
        match store.list_tenants().await {
            Ok(list) => {
                for (tenant, _) in list {
                    let tenant_store = tenants
                        .entry(tenant.clone())
                        .or_insert_with(|| store.for_tenant(&tenant));
                    fire_due(tenant_store, &queue, now).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduler: cannot list tenants"),
        }
    }
}

async fn fire_due(store: &Store, queue: &Queue, now: i64) {
    let tenant = store.tenant().map(|t| t.to_string()).unwrap_or_default();
    let due = match store.due_schedules(now, 64).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "scheduler: cannot read due schedules");
            return;
        }
    };
    for id in due {
        match fire(store, queue, id, now).await {
            Ok(Firing::Backtest {
                backtest_id,
                task_id,
            }) => {
                tracing::info!(%tenant, schedule = id, backtest_id, %task_id, "schedule fired")
            }
            Ok(Firing::Optimization {
                optimization_id,
                task_id,
            }) => {
                tracing::info!(%tenant, schedule = id, optimization_id, %task_id, "schedule fired")
            }
            Ok(Firing::Skipped(error)) => {
                tracing::warn!(%tenant, schedule = id, %error, "schedule occurrence skipped")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%tenant, schedule = id, error = %e, "scheduler: firing failed; retrying")
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
    let runs = record.runs + 1;
    // The compare-and-set on this occurrence; `id_field` keeps what it
    // submitted.
    let guard = |id_field: &str, submitted: u64| Guard {
        key: store.keys().schedule(id),
        field: fields::NEXT_RUN_MS.to_string(),
        expect: occurrence.to_string(),
        set: vec![
            (
                fields::NEXT_RUN_MS.into(),
                next.map(|n| n.to_string()).unwrap_or_default(),
            ),
            (fields::LAST_RUN_MS.into(), occurrence.to_string()),
            (id_field.into(), submitted.to_string()),
            (fields::RUNS.into(), runs.to_string()),
            (fields::LAST_ERROR.into(), String::new()),
        ],
        index: next.map(|n| (due_key.clone(), id.to_string(), n)),
    };
    let submitted = match &definition.submits {
        Submission::Backtest(backtest) => {
            tasks::submit_backtest_guarded(store, queue, backtest, &options, |backtest_id| {
                guard(fields::LAST_BACKTEST_ID, backtest_id)
            })
            .await
            .map(|(backtest_id, task_id)| Firing::Backtest {
                backtest_id,
                task_id,
            })
        }
        Submission::Optimization(request) => optimization::submit_optimization_guarded(
            store,
            queue,
            request,
            &options,
            |optimization_id| guard(fields::LAST_OPTIMIZATION_ID, optimization_id),
        )
        .await
        .map(|(optimization_id, task_id)| Firing::Optimization {
            optimization_id,
            task_id,
        }),
    };
    match submitted {
        Ok(firing) => Ok(firing),
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

#[cfg(test)]
mod tests {
    //! Firings against a private Redis; no worker runs, so what is
    //! submitted stays queued (the runs are in `tests/e2e/scheduler.rs`).

    use super::*;
    use std::collections::BTreeMap;
    use stratbox_engine::optimize::Direction;
    use stratbox_queue::QueueConfig;
    use stratbox_store::schedules::ScheduleDefinition;
    use stratbox_store::test_support::TestRedis;
    use stratbox_store::{BacktestDefinition, BacktestStatus, OptimizationRequest};

    const HOUR: i64 = 3600;
    const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
    const MINUTE_MS: i64 = 60_000;

    struct Fx {
        redis: TestRedis,
        queue: Queue,
        sha: String,
    }

    /// A stored strategy with two int params (the bytes are never run
    /// here) and 300 hourly bars.
    async fn setup(name: &str) -> Fx {
        let redis = TestRedis::start(name).await;
        let prefix = redis.store.keys().prefix().to_string();
        let queue = Queue::connect(&redis.server.url(), &prefix, QueueConfig::default())
            .await
            .unwrap();
        let sha = redis.fake_strategy().await.sha256;
        let data = stratbox_engine::candles::synth(300, 7, HOUR, START, 42_000.0);
        redis
            .store
            .import_candles("BTCUSDT", HOUR, &data)
            .await
            .unwrap();
        Fx { redis, queue, sha }
    }

    fn sweep(sha: &str, space: serde_json::Value) -> OptimizationRequest {
        OptimizationRequest {
            backtest: BacktestDefinition {
                strategy_sha256: sha.to_string(),
                strategy_id: None,
                name: None,
                symbol: "BTCUSDT".into(),
                symbols: Vec::new(),
                timeframe_secs: HOUR,
                start_ts: START,
                end_ts: START + 250 * HOUR,
                initial_capital: 10_000.0,
                commission: 0.0006,
                leverage: 1.0,
                slippage_bps: 0.0,
                params: BTreeMap::new(),
                market: Default::default(),
                funding_rate: None,
                limits: Default::default(),
            },
            search_space: serde_json::from_value(space).unwrap(),
            method: "grid".into(),
            samples: None,
            batch: None,
            startup: None,
            seed: 0,
            metric: "sharpe".into(),
            direction: Direction::Maximize,
            min_trades: 0,
            constraint: Some("fast_period < slow_period".into()),
            holdout: None,
            walk_forward: None,
            max_combinations: None,
        }
    }

    /// A schedule of `request` every minute, due at `at_ms`.
    async fn schedule(fx: &Fx, request: OptimizationRequest, at_ms: i64) -> u64 {
        let definition = ScheduleDefinition {
            name: None,
            cron: None,
            every_secs: Some(60),
            start_at_ms: at_ms,
            end_at_ms: None,
            priority: 8,
            submits: Submission::Optimization(request),
        };
        fx.redis
            .store
            .create_schedule(&definition, Some(at_ms))
            .await
            .unwrap()
    }

    async fn queued_tasks(fx: &Fx) -> i64 {
        fx.queue.counters().await.unwrap().tasks_submitted
    }

    async fn optimization_keys(fx: &Fx) -> Vec<String> {
        let pattern = format!("{}:optimization:*", fx.redis.store.keys().prefix());
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut fx.redis.store.connection())
            .await
            .unwrap();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn racing_firings_of_one_occurrence_create_one_optimization_with_its_task() {
        let fx = setup("scheduler-opt-race").await;
        let at = 1_000 * START + 5_000;
        let space = serde_json::json!({"fast_period": [5, 10], "slow_period": [20, 30]});
        let id = schedule(&fx, sweep(&fx.sha, space), at).await;
        // A second process: its own connections.
        let url = fx.redis.server.url();
        let prefix = fx.redis.store.keys().prefix().to_string();
        let other_store = Store::connect(&url, &prefix).await.unwrap();
        let other_queue = Queue::connect(&url, &prefix, QueueConfig::default())
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            fire(&fx.redis.store, &fx.queue, id, at + 10),
            fire(&other_store, &other_queue, id, at + 10)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (fired, other) = match (&a, &b) {
            (Firing::Optimization { .. }, _) => (a, b),
            _ => (b, a),
        };
        let Firing::Optimization {
            optimization_id,
            task_id,
        } = fired
        else {
            panic!("nothing fired: {fired:?}, {other:?}");
        };
        // The loser met the moved guard, or read the schedule after it moved.
        assert!(
            matches!(other, Firing::TakenElsewhere | Firing::NotDue),
            "{other:?}"
        );
        assert_eq!(queued_tasks(&fx).await, 1, "one fan-out task");
        let record = fx
            .redis
            .store
            .get_optimization(optimization_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, BacktestStatus::Queued);
        assert_eq!(record.task_id.as_deref(), Some(task_id.as_str()));
        // 2 x 2 with fast < slow everywhere: 4 combinations, one a chunk.
        assert_eq!((record.combinations, record.chunks), (4, 4));
        assert_eq!(record.definition.priority, 8);
        let task = fx.queue.task(&task_id).await.unwrap().unwrap();
        assert_eq!((task.kind.as_str(), task.priority), ("optimization", 8));
        let listed: Vec<u64> = fx
            .redis
            .store
            .list_optimizations(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, [optimization_id]);
        let s = fx.redis.store.get_schedule(id).await.unwrap().unwrap();
        assert_eq!(s.last_optimization_id, Some(optimization_id));
        assert_eq!(s.last_backtest_id, None);
        assert_eq!((s.runs, s.last_run_ms), (1, Some(at)));
        assert_eq!(s.next_run_ms, Some(at + MINUTE_MS));
        // Only the winner's record and its fan-out record exist: the
        // loser's id, if it took one, is a gap.
        let store = &fx.redis.store;
        let mut expected = vec![
            store.keys().optimization(optimization_id),
            store.keys().optimization_fanout(optimization_id),
            store.keys().optimization_next_id(),
        ];
        expected.sort();
        assert_eq!(optimization_keys(&fx).await, expected);
        // Fired again for the same occurrence: not due any more.
        let again = fire(store, &fx.queue, id, at + 10).await.unwrap();
        assert_eq!(again, Firing::NotDue);
        // The next occurrence is a second optimization.
        let next = fire(store, &fx.queue, id, at + MINUTE_MS).await.unwrap();
        let Firing::Optimization {
            optimization_id: second,
            ..
        } = next
        else {
            panic!("{next:?}");
        };
        assert!(second > optimization_id);
        assert_eq!(store.list_optimizations(10).await.unwrap().len(), 2);
        let s = store.get_schedule(id).await.unwrap().unwrap();
        assert_eq!((s.runs, s.last_optimization_id), (2, Some(second)));
    }

    #[tokio::test]
    async fn a_refused_guard_leaves_no_optimization_record_and_no_task() {
        let fx = setup("scheduler-opt-guard").await;
        let store = &fx.redis.store;
        let space = serde_json::json!({"fast_period": [5, 10]});
        let key = store.keys().schedule(1);
        let () = redis::cmd("HSET")
            .arg(&key)
            .arg(fields::NEXT_RUN_MS)
            .arg("2000")
            .query_async(&mut store.connection())
            .await
            .unwrap();
        // Another process moved the occurrence on already.
        let refused = optimization::submit_optimization_guarded(
            store,
            &fx.queue,
            &sweep(&fx.sha, space),
            &SubmitOptions::default(),
            |id| Guard {
                key: key.clone(),
                field: fields::NEXT_RUN_MS.into(),
                expect: "1000".into(),
                set: vec![(fields::LAST_OPTIMIZATION_ID.into(), id.to_string())],
                index: None,
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&refused, SubmitError::Queue(QueueError::GuardFailed(k)) if *k == key),
            "{refused}"
        );
        assert_eq!(queued_tasks(&fx).await, 0);
        assert!(store.list_optimizations(10).await.unwrap().is_empty());
        assert_eq!(
            optimization_keys(&fx).await,
            [store.keys().optimization_next_id()],
            "an id was taken, nothing else written"
        );
        let last: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(fields::LAST_OPTIMIZATION_ID)
            .query_async(&mut store.connection())
            .await
            .unwrap();
        assert_eq!(last, None);
    }

    #[tokio::test]
    async fn an_optimization_that_no_longer_validates_is_skipped_with_its_reason() {
        let fx = setup("scheduler-opt-skip").await;
        let at = 1_000 * START;
        // Stored when the strategy had this param (its schema has changed).
        let space = serde_json::json!({"fast_period": [5, 10], "gone": [1, 2]});
        let id = schedule(&fx, sweep(&fx.sha, space), at).await;
        let firing = fire(&fx.redis.store, &fx.queue, id, at).await.unwrap();
        let Firing::Skipped(error) = firing else {
            panic!("{firing:?}");
        };
        assert!(error.contains("search_space.gone"), "{error}");
        let s = fx.redis.store.get_schedule(id).await.unwrap().unwrap();
        assert_eq!(s.last_error.as_deref(), Some(error.as_str()));
        assert_eq!((s.runs, s.last_optimization_id), (0, None));
        assert_eq!(s.next_run_ms, Some(at + MINUTE_MS));
        assert_eq!(queued_tasks(&fx).await, 0);
        assert!(optimization_keys(&fx).await.is_empty(), "not even an id");
    }
}
