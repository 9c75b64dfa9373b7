//! Retention: finished backtest and optimization records deleted past a
//! count or an age, oldest first, in bounded steps (docs/http-api.md,
//! "Retention"). Unset, nothing is deleted.

use std::time::{Duration, Instant};

use anyhow::Context;
use stratbox_store::backtests::{SweepRule, SweepStep};
use stratbox_store::{now_ms, Quota, Store};

/// Between two sweeps: records pile up for at most this long past the
/// policy, and a sweep that finds nothing costs two round trips.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Records a sweep step looks at (each a Lua call): 100 finished
/// backtests go in about a millisecond, so Redis is never held longer.
pub const DEFAULT_BATCH: usize = 100;

/// Left to other clients between two steps of a sweep.
const PAUSE: Duration = Duration::from_millis(1);

pub const MAX_AGE_VAR: &str = "STRATBOX_RETENTION_MAX_AGE_DAYS";
pub const MAX_COUNT_VAR: &str = "STRATBOX_RETENTION_MAX_COUNT";
pub const INTERVAL_VAR: &str = "STRATBOX_RETENTION_INTERVAL_MS";

/// Which finished records are kept. Both unset: all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Records created longer ago go.
    pub max_age: Option<Duration>,
    /// Of each kind (backtests, optimizations), the newest this many
    /// are kept; queued and running ones count, and are never deleted.
    pub max_count: Option<usize>,
}

impl RetentionPolicy {
    /// From `STRATBOX_RETENTION_MAX_AGE_DAYS` (a positive number, `0.5`
    /// is twelve hours) and `STRATBOX_RETENTION_MAX_COUNT` (at least 1);
    /// unset or empty: no limit.
    pub fn from_env() -> anyhow::Result<RetentionPolicy> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<RetentionPolicy> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let max_age = set(MAX_AGE_VAR)
            .map(|v| {
                let days: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|d: &f64| *d > 0.0)
                    .with_context(|| {
                        format!("{MAX_AGE_VAR} is `{v}`, not a positive number of days")
                    })?;
                Duration::try_from_secs_f64(days * 86_400.0)
                    .with_context(|| format!("{MAX_AGE_VAR} is `{v}`: too many days"))
            })
            .transpose()?;
        let max_count = set(MAX_COUNT_VAR)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{MAX_COUNT_VAR} is `{v}`, not a count of at least 1"))
            })
            .transpose()?;
        Ok(RetentionPolicy { max_age, max_count })
    }

    /// A tenant's policy: its quota's retention where it sets one, the
    /// server's otherwise.
    pub fn for_tenant(&self, quota: &Quota) -> RetentionPolicy {
        RetentionPolicy {
            max_age: quota
                .retention_max_age_days
                .map(|days| Duration::from_secs(days.saturating_mul(86_400)))
                .or(self.max_age),
            max_count: quota
                .retention_max_count
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .or(self.max_count),
        }
    }

    /// Nothing is ever deleted (today's behaviour when unset).
    pub fn keeps_all(&self) -> bool {
        self.max_age.is_none() && self.max_count.is_none()
    }

    fn rule(&self, now_ms: i64) -> SweepRule {
        SweepRule {
            keep: self.max_count,
            created_before_ms: self.max_age.map(|age| {
                now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
            }),
        }
    }
}

/// `STRATBOX_RETENTION_INTERVAL_MS` (at least 1), else [`DEFAULT_INTERVAL`].
pub fn interval_from_env() -> anyhow::Result<Duration> {
    match std::env::var(INTERVAL_VAR) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .with_context(|| format!("{INTERVAL_VAR} is `{v}`, not a number of ms of at least 1")),
        _ => Ok(DEFAULT_INTERVAL),
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub backtests_deleted: usize,
    pub optimizations_deleted: usize,
    /// Records the policy reached that were queued or running: kept.
    pub kept_live: usize,
    /// Lua calls made.
    pub steps: usize,
    pub elapsed: Duration,
}

/// Deletes the finished backtests and optimizations of `store` that
/// `policy` does not keep, oldest first, `batch` records looked at per
/// step. `homes_key`: the queue's `QueueKeys::task_homes` (the queue's
/// prefix, which may not be the store's).
pub async fn sweep(
    store: &Store,
    homes_key: &str,
    policy: &RetentionPolicy,
    batch: usize,
) -> anyhow::Result<SweepReport> {
    let started = Instant::now();
    let mut report = SweepReport::default();
    if policy.keeps_all() {
        return Ok(report);
    }
    let rule = policy.rule(now_ms());
    let batch = batch.max(1);
    for optimizations in [false, true] {
        // Records kept by earlier steps sit at the head of the index.
        let mut start = 0;
        loop {
            let step: SweepStep = if optimizations {
                store
                    .sweep_optimizations(homes_key, rule, start, batch)
                    .await
            } else {
                store.sweep_backtests(homes_key, rule, start, batch).await
            }
            .context("retention sweep")?;
            report.steps += 1;
            report.kept_live += step.kept.len();
            start += step.kept.len();
            if optimizations {
                report.optimizations_deleted += step.deleted;
            } else {
                report.backtests_deleted += step.deleted;
            }
            if step.done {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// `{prefix}:retention:lock`: held (SET NX PX) for an interval by the
/// process that sweeps, so one sweep runs per interval however many
/// processes loop.
pub fn lock_key(store: &Store) -> String {
    format!("{}:retention:lock", store.keys().prefix())
}

/// Sweeps every `interval`, when this process takes the lock; forever.
/// A failed sweep is logged and tried again at the next interval.
pub async fn run_loop(
    store: Store,
    homes_key: String,
    policy: RetentionPolicy,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let holder = format!("pid {}", std::process::id());
    loop {
        tick.tick().await;
        let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(lock_key(&store))
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(lease)
            .query_async(&mut store.connection())
            .await;
        match taken {
            Ok(Some(_)) => {}
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot take the lock");
                continue;
            }
        }
        sweep_logged(&store, &homes_key, &policy).await;
        match store.list_tenants().await {
            Ok(tenants) => {
                for (tenant, quota) in tenants {
                    let tenant_store = store.for_tenant(&tenant);
                    sweep_logged(&tenant_store, &homes_key, &policy.for_tenant(&quota)).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention: cannot list tenants"),
        }
    }
}

async fn sweep_logged(store: &Store, homes_key: &str, policy: &RetentionPolicy) {
    let tenant = store.tenant().map(|t| t.to_string()).unwrap_or_default();
    match sweep(store, homes_key, policy, DEFAULT_BATCH).await {
        Ok(r) if r.backtests_deleted + r.optimizations_deleted > 0 => tracing::info!(
            %tenant,
            backtests = r.backtests_deleted,
            optimizations = r.optimizations_deleted,
            kept_live = r.kept_live,
            steps = r.steps,
            ms = r.elapsed.as_millis() as u64,
            "retention: deleted"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(%tenant, error = format!("{e:#}"), "retention: sweep failed"),
    }
}

/// The loop of [`RetentionPolicy::from_env`] (tenants' quotas may
/// override it) on the queue of prefix `queue_prefix`, spawned on the
/// current runtime. A bad variable is an error naming it.
pub fn spawn_from_env(
    store: &Store,
    queue_prefix: &str,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let policy = RetentionPolicy::from_env()?;
    let interval = interval_from_env()?;
    // Tenants may set a retention of their own: the loop runs anyway (a
    // lock attempt and a tenant list a minute when nothing is due).
    let homes = stratbox_queue::QueueKeys::new(queue_prefix).task_homes();
    tracing::info!(?policy, ?interval, "retention on");
    Ok(tokio::spawn(run_loop(
        store.clone(),
        homes,
        policy,
        interval,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(vars: &[(&str, &str)]) -> anyhow::Result<RetentionPolicy> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RetentionPolicy::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_policy_is_read_and_bad_values_name_their_variable() {
        assert_eq!(policy(&[]).unwrap(), RetentionPolicy::default());
        assert!(policy(&[]).unwrap().keeps_all());
        assert!(policy(&[(MAX_COUNT_VAR, " "), (MAX_AGE_VAR, "")])
            .unwrap()
            .keeps_all());
        let p = policy(&[(MAX_AGE_VAR, "30"), (MAX_COUNT_VAR, "10000")]).unwrap();
        assert_eq!(p.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(p.max_count, Some(10_000));
        assert_eq!(
            policy(&[(MAX_AGE_VAR, "0.5")]).unwrap().max_age,
            Some(Duration::from_secs(43_200))
        );
        for (name, bad) in [
            (MAX_AGE_VAR, "0"),
            (MAX_AGE_VAR, "-1"),
            (MAX_AGE_VAR, "NaN"),
            (MAX_AGE_VAR, "1e300"),
            (MAX_AGE_VAR, "ten"),
            (MAX_COUNT_VAR, "0"),
            (MAX_COUNT_VAR, "-5"),
            (MAX_COUNT_VAR, "1.5"),
        ] {
            let e = policy(&[(name, bad)]).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(bad), "{name}={bad}: {e}");
        }
    }

    #[test]
    fn the_rule_counts_age_back_from_now() {
        let p = RetentionPolicy {
            max_age: Some(Duration::from_secs(2)),
            max_count: Some(7),
        };
        assert_eq!(
            p.rule(10_000),
            SweepRule {
                keep: Some(7),
                created_before_ms: Some(8_000)
            }
        );
        let none = RetentionPolicy::default().rule(10_000);
        assert_eq!(none, SweepRule::default());
    }

    #[tokio::test]
    async fn a_sweep_keeps_the_newest_and_the_live_and_the_lock_is_shared() {
        use stratbox_store::test_support::TestRedis;
        use stratbox_store::BacktestStatus;
        let t = TestRedis::start("retention-sweep").await;
        let s = &t.store;
        let def: stratbox_store::BacktestDefinition = serde_json::from_value(serde_json::json!({
            "strategy_sha256": "ab".repeat(32), "symbol": "X", "timeframe_secs": 60,
            "start_ts": 0, "end_ts": 1, "initial_capital": 1.0, "commission": 0.0,
            "leverage": 1.0}))
        .unwrap();
        let ids = s.create_backtests(&vec![def; 250]).await.unwrap();
        for id in &ids {
            let status = if *id == 1 {
                BacktestStatus::Running
            } else {
                BacktestStatus::Completed
            };
            s.set_backtest_status(*id, status).await.unwrap();
        }
        let homes = "q:queue:homes";
        let p = RetentionPolicy {
            max_age: None,
            max_count: Some(100),
        };
        let r = sweep(s, homes, &p, 40).await.unwrap();
        assert_eq!((r.backtests_deleted, r.kept_live), (149, 1), "{r:?}");
        // 150 past the count, 40 a step: 4 steps, then 1 for optimizations.
        assert_eq!(r.steps, 5, "{r:?}");
        let left = s.list_backtests(500).await.unwrap();
        assert_eq!(left.len(), 101);
        assert_eq!(left.last().unwrap().id, 1, "the running one stays");
        // Nothing more to do; by age, everything finished goes.
        let r = sweep(s, homes, &p, 40).await.unwrap();
        assert_eq!(r.backtests_deleted, 0);
        let p = RetentionPolicy {
            max_age: Some(Duration::from_millis(1)),
            max_count: None,
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = sweep(s, homes, &p, 1_000).await.unwrap();
        assert_eq!((r.backtests_deleted, r.kept_live), (100, 1), "{r:?}");

        // The loop sweeps once an interval, whoever holds the lock.
        for id in s
            .create_backtests(&vec![left[0].definition.clone(); 5])
            .await
            .unwrap()
        {
            s.set_backtest_status(id, BacktestStatus::Failed)
                .await
                .unwrap();
        }
        let mut conn = s.connection();
        let _: () = redis::cmd("SET")
            .arg(lock_key(s))
            .arg("another process")
            .arg("PX")
            .arg(400)
            .query_async(&mut conn)
            .await
            .unwrap();
        let p = RetentionPolicy {
            max_age: None,
            max_count: Some(2),
        };
        let looping = tokio::spawn(run_loop(
            s.clone(),
            homes.into(),
            p,
            Duration::from_millis(50),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(s.list_backtests(10).await.unwrap().len(), 6, "locked out");
        let started = Instant::now();
        // 1 (running) and the 2 newest.
        while s.list_backtests(10).await.unwrap().len() > 3 {
            assert!(started.elapsed() < Duration::from_secs(5), "never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        looping.abort();
    }

    #[tokio::test]
    async fn the_loop_sweeps_each_tenant_by_its_own_quota() {
        use stratbox_store::test_support::TestRedis;
        use stratbox_store::{BacktestStatus, TenantName};
        let t = TestRedis::start("retention-tenants").await;
        let def: stratbox_store::BacktestDefinition = serde_json::from_value(serde_json::json!({
            "strategy_sha256": "ab".repeat(32), "symbol": "X", "timeframe_secs": 60,
            "start_ts": 0, "end_ts": 1, "initial_capital": 1.0, "commission": 0.0,
            "leverage": 1.0}))
        .unwrap();
        let tenant = |name: &str| name.parse::<TenantName>().unwrap();
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let acme_quota = Quota {
            retention_max_count: Some(2),
            ..Quota::default()
        };
        t.store.set_quota(&acme, &acme_quota).await.unwrap();
        t.store.set_quota(&globex, &Quota::default()).await.unwrap();
        for store in [
            &t.store,
            &t.store.for_tenant(&acme),
            &t.store.for_tenant(&globex),
        ] {
            for id in store.create_backtests(&vec![def.clone(); 8]).await.unwrap() {
                store
                    .set_backtest_status(id, BacktestStatus::Completed)
                    .await
                    .unwrap();
            }
        }
        // The server keeps 5; acme's quota keeps 2.
        let server = RetentionPolicy {
            max_age: None,
            max_count: Some(5),
        };
        assert_eq!(server.for_tenant(&acme_quota).max_count, Some(2));
        assert_eq!(server.for_tenant(&Quota::default()), server);
        let looping = tokio::spawn(run_loop(
            t.store.clone(),
            "q:queue:homes".into(),
            server,
            Duration::from_millis(50),
        ));
        let count = |store: Store| async move { store.list_backtests(100).await.unwrap().len() };
        let started = Instant::now();
        loop {
            let counts = (
                count(t.store.clone()).await,
                count(t.store.for_tenant(&acme)).await,
                count(t.store.for_tenant(&globex)).await,
            );
            if counts == (5, 2, 5) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{counts:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        looping.abort();
    }
}
