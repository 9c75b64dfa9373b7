//! Tenants' quotas at submission (docs/tenants.md): over one is a 429
//! naming it, with `Retry-After`, and nothing is queued. The running cap
//! is the queue's (a lane cap, applied as workers fetch).

use stratbox_service::tasks::LimitCaps;
use stratbox_store::{Quota, TaskLimits};

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
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub tasks: u64,
    pub results: u64,
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
    let Some(quota) = scope.quota().await? else {
        return Ok(());
    };
    if let Some(limits) = limits {
        bound_limits(&quota, limits)?;
    }
    if let Some(max) = quota.max_queued {
        let (waiting, _) = state.queue.lane_depth(Some(tenant.as_str())).await?;
        if waiting + admission.tasks > max {
            return Err(over(
                "max_queued",
                format!(
                    "{waiting} tasks waiting and {} more asked, the most is {max}",
                    admission.tasks
                ),
                RETRY_QUEUED_SECS,
            ));
        }
    }
    if let (Some(max), true) = (quota.max_results, admission.results > 0) {
        let stored = scope.store.result_count().await?;
        if stored + admission.results > max {
            return Err(over(
                "max_results",
                format!("{stored} results stored, the most is {max}; delete some"),
                RETRY_RESULTS_SECS,
            ));
        }
    }
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
