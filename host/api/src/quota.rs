//! Tenants' quotas at submission (docs/tenants.md): over one is a 429
//! naming it, with `Retry-After`, and nothing is queued. The running cap
//! is the queue's (a lane cap, applied as workers fetch).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stratbox_service::tasks::LimitCaps;
use stratbox_store::{Quota, TaskLimits, TenantName};

use super::auth::Scope;
use super::{ApiResult, AppError, AppState};

/// Queued tasks drain as workers take them: worth a retry soon.
const RETRY_QUEUED_SECS: u64 = 5;
/// Stored results go when the tenant deletes some or retention runs.
const RETRY_RESULTS_SECS: u64 = 60;
/// A per-task limit above the quota will not pass later either; the
/// header is still there, as for every quota.
const RETRY_LIMITS_SECS: u64 = 3_600;

fn over(quota: &str, message: String, retry_after_secs: u64) -> AppError {
    AppError::QuotaExceeded {
        quota: quota.into(),
        message,
        retry_after_secs,
    }
}

/// What a submission adds: tasks to the queue, records to the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    pub tasks: u64,
    pub results: u64,
}

/// How long this process trusts a quota it read: a change through
/// another API process applies within it; through this one, at once.
const QUOTA_TTL: Duration = Duration::from_secs(5);
/// How long a usage read (queued tasks, stored results) stands in for a
/// fresh one, plus what this process admitted since. Refusals always
/// come from a fresh read, so a stale one never refuses by mistake; other
/// API processes' admissions within it may overshoot the quota.
const USAGE_TTL: Duration = Duration::from_millis(250);

/// Per tenant: its quota, and its usage as last read plus what this
/// process admitted since.
#[derive(Default)]
pub struct QuotaCache {
    entries: Mutex<HashMap<TenantName, Entry>>,
}

struct Entry {
    quota: Option<Quota>,
    quota_read: Instant,
    /// (when, queued, results) of the last read.
    usage: Option<(Instant, u64, u64)>,
    admitted: Admission,
}

impl QuotaCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantName, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A quota was set here: read it again next time.
    pub fn forget(&self, tenant: &TenantName) {
        self.lock().remove(tenant);
    }

    async fn quota(&self, scope: &Scope, tenant: &TenantName) -> ApiResult<Option<Quota>> {
        if let Some(e) = self.lock().get(tenant) {
            if e.quota_read.elapsed() < QUOTA_TTL {
                return Ok(e.quota.clone());
            }
        }
        let quota = scope.quota().await?;
        self.lock().insert(
            tenant.clone(),
            Entry {
                quota: quota.clone(),
                quota_read: Instant::now(),
                usage: None,
                admitted: Admission::default(),
            },
        );
        Ok(quota)
    }

    /// True (and `asked` counted) when usage as recently read, plus this
    /// process's admissions since, leaves room for `asked`.
    fn estimate_admits(&self, tenant: &TenantName, quota: &Quota, asked: Admission) -> bool {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(tenant) else {
            return false;
        };
        let Some((read, queued, results)) = e.usage else {
            return false;
        };
        let fits = read.elapsed() < USAGE_TTL
            && fits(
                quota,
                queued + e.admitted.tasks,
                results + e.admitted.results,
                asked,
            )
            .is_ok();
        if fits {
            e.admitted.tasks += asked.tasks;
            e.admitted.results += asked.results;
        }
        fits
    }

    fn record(&self, tenant: &TenantName, queued: u64, results: u64, admitted: Admission) {
        if let Some(e) = self.lock().get_mut(tenant) {
            e.usage = Some((Instant::now(), queued, results));
            e.admitted = admitted;
        }
    }
}

/// Whether `asked` fits beside `queued` and `results`; the refusal names
/// the quota.
fn fits(quota: &Quota, queued: u64, results: u64, asked: Admission) -> ApiResult<()> {
    if let Some(max) = quota.max_queued {
        if queued + asked.tasks > max {
            return Err(over(
                "max_queued",
                format!(
                    "{queued} tasks waiting and {} more asked, the most is {max}",
                    asked.tasks
                ),
                RETRY_QUEUED_SECS,
            ));
        }
    }
    if let (Some(max), true) = (quota.max_results, asked.results > 0) {
        if results + asked.results > max {
            return Err(over(
                "max_results",
                format!("{results} results stored, the most is {max}; delete some"),
                RETRY_RESULTS_SECS,
            ));
        }
    }
    Ok(())
}

/// Refuses what the caller's quota does not allow, and bounds the run's
/// limits by it: a limit the request leaves out becomes the quota's
/// (within the server's maximum), one above it is refused.
pub async fn admit(
    state: &AppState,
    scope: &Scope,
    admission: Admission,
    limits: Option<&mut TaskLimits>,
) -> ApiResult<()> {
    let Some(tenant) = scope.tenant() else {
        return Ok(());
    };
    let Some(quota) = state.quotas.quota(scope, tenant).await? else {
        return Ok(());
    };
    if let Some(limits) = limits {
        bound_limits(&quota, limits)?;
    }
    let counted =
        quota.max_queued.is_some() || quota.max_results.is_some() && admission.results > 0;
    if !counted || state.quotas.estimate_admits(tenant, &quota, admission) {
        return Ok(());
    }
    // Both reads at once: one round trip on the multiplexed connection.
    let (depth, results) = tokio::join!(
        state.queue.lane_depth(Some(tenant.as_str())),
        scope.store.result_count()
    );
    let (queued, results) = (depth?.0, results?);
    fits(&quota, queued, results, admission)?;
    state.quotas.record(tenant, queued, results, admission);
    Ok(())
}

/// Bounds a stored run's limits by the caller's quota, as `admit` does,
/// for what runs later (a schedule's occurrences).
pub async fn bound_by_quota(scope: &Scope, limits: &mut TaskLimits) -> ApiResult<()> {
    match scope.quota().await? {
        Some(quota) => bound_limits(&quota, limits),
        None => Ok(()),
    }
}

fn bound_limits(quota: &Quota, limits: &mut TaskLimits) -> ApiResult<()> {
    let caps = LimitCaps::from_env();
    let fields = [
        (
            "fuel",
            "max_fuel",
            &mut limits.fuel,
            quota.max_fuel,
            caps.max_fuel,
        ),
        (
            "memory_mib",
            "max_memory_mib",
            &mut limits.memory_mib,
            quota.max_memory_mib,
            caps.max_memory_mib,
        ),
        (
            "timeout_ms",
            "max_timeout_ms",
            &mut limits.timeout_ms,
            quota.max_timeout_ms,
            caps.max_timeout_ms,
        ),
    ];
    for (field, name, value, max, server_max) in fields {
        let Some(max) = max else { continue };
        match *value {
            Some(v) if v > max => {
                return Err(over(
                    name,
                    format!("{field} {v} is above the tenant's {max}"),
                    RETRY_LIMITS_SECS,
                ))
            }
            Some(_) => {}
            None => *value = Some(max.min(server_max)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded_and_filled_by_the_quota() {
        let quota = Quota {
            max_fuel: Some(1_000),
            max_timeout_ms: Some(50),
            ..Quota::default()
        };
        let mut limits = TaskLimits::default();
        bound_limits(&quota, &mut limits).unwrap();
        assert_eq!(limits.fuel, Some(1_000));
        assert_eq!(limits.timeout_ms, Some(50));
        assert_eq!(limits.memory_mib, None, "no quota, the server's default");

        let mut limits = TaskLimits {
            fuel: Some(1_001),
            ..TaskLimits::default()
        };
        match bound_limits(&quota, &mut limits).unwrap_err() {
            AppError::QuotaExceeded { quota, .. } => assert_eq!(quota, "max_fuel"),
            other => panic!("{other:?}"),
        }
        // A quota above the server's maximum fills in the server's.
        let huge = Quota {
            max_fuel: Some(u64::MAX),
            ..Quota::default()
        };
        let mut limits = TaskLimits::default();
        bound_limits(&huge, &mut limits).unwrap();
        assert_eq!(limits.fuel, Some(LimitCaps::from_env().max_fuel));
    }
}
