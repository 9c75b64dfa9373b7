//! Task run times, as a histogram every worker adds to (in `complete.lua`)
//! and any process reads.

use std::collections::BTreeMap;

use super::{Queue, QueueError};

/// Upper bounds of the duration buckets, in milliseconds: from a few-bar
/// backtest (ms) to an hour-long sweep. `lua/prelude.lua` holds the same
/// list (a test checks), since the script picks the bucket.
pub const DURATION_BOUNDS_MS: [u64; 18] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 1_800_000, 3_600_000,
];

/// How a task's last run ended, as the histogram labels it.
pub const OUTCOMES: [&str; 3] = ["completed", "failed", "timeout"];

/// Run times of the tasks that ended one way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    /// Per bucket (not cumulative); the last one is above every bound.
    pub buckets: [u64; DURATION_BOUNDS_MS.len() + 1],
    pub count: u64,
    pub sum_ms: u64,
}

impl Durations {
    /// Cumulative counts paired with their bound (`None` = `+Inf`), as
    /// Prometheus histograms expose them.
    pub fn cumulative(&self) -> Vec<(Option<u64>, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                (DURATION_BOUNDS_MS.get(i).copied(), total)
            })
            .collect()
    }
}

impl Queue {
    /// The duration histogram per outcome (every outcome present).
    pub async fn durations(&self) -> Result<BTreeMap<&'static str, Durations>, QueueError> {
        let mut conn = self.connection();
        let fields: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg(self.keys().durations())
            .query_async(&mut conn)
            .await?;
        let mut out: BTreeMap<&'static str, Durations> = OUTCOMES
            .iter()
            .map(|o| (*o, Durations::default()))
            .collect();
        for (field, n) in fields {
            let Some((outcome, part)) = field.split_once(':') else {
                continue;
            };
            let Some(histogram) = out.get_mut(outcome) else {
                continue;
            };
            match part {
                "count" => histogram.count = n,
                "sum_ms" => histogram.sum_ms = n,
                bucket => {
                    // Lua counts buckets from 1.
                    let index = bucket.parse::<usize>().ok().and_then(|b| b.checked_sub(1));
                    if let Some(slot) = index.and_then(|i| histogram.buckets.get_mut(i)) {
                        *slot = n;
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_has_the_same_bounds() {
        let prelude = include_str!("lua/prelude.lua");
        let list = DURATION_BOUNDS_MS.map(|b| b.to_string()).join(", ");
        assert!(
            prelude.contains(&format!("local DURATION_BOUNDS_MS = {{{list}}}")),
            "prelude.lua bounds differ from DURATION_BOUNDS_MS"
        );
    }

    #[test]
    fn cumulative_counts_end_at_the_total() {
        let mut d = Durations::default();
        d.buckets[0] = 2;
        d.buckets[3] = 1;
        d.buckets[DURATION_BOUNDS_MS.len()] = 4;
        let c = d.cumulative();
        assert_eq!(c[0], (Some(5), 2));
        assert_eq!(c[2], (Some(25), 2));
        assert_eq!(c[3], (Some(50), 3));
        assert_eq!(c[DURATION_BOUNDS_MS.len()], (None, 7));
    }
}

/// What waits, for a scaler: how many tasks and how long the oldest one
/// has waited (from its stream entry id, on the server's clock).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub waiting: u64,
    pub oldest_wait_ms: Option<u64>,
    /// Tasks running now (the shared `active_tasks` counter).
    pub active: u64,
    /// Tasks that ended so far (completed, failed or timed out): the
    /// difference of two readings is the drain rate.
    pub finished: u64,
}

impl Queue {
    /// The backlog in one round trip per class stream of every lane.
    pub async fn backlog(&self) -> Result<Backlog, QueueError> {
        use super::keys::GROUP;
        use super::task::Class;
        let mut conn = self.connection();
        // `lag` of XINFO GROUPS is often unknown once entries are deleted;
        // length minus pending is not.
        let stats = self.stats().await?;
        let mut backlog = Backlog {
            waiting: stats.waiting.values().sum(),
            ..Backlog::default()
        };
        let lanes = std::iter::once(None).chain(stats.lanes.keys().map(|l| Some(l.as_str())));
        let now_ms: u64 = {
            let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
            secs * 1000 + micros / 1000
        };
        for (lane, class) in lanes.flat_map(|lane| Class::ALL.map(|class| (lane, class))) {
            let stream = self.keys().lane_stream(class, lane);
            // The group's last delivered id: entries after it wait.
            let groups: Vec<std::collections::HashMap<String, redis::Value>> =
                match redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&stream)
                    .query_async(&mut conn)
                    .await
                {
                    Ok(groups) => groups,
                    // No stream yet: nothing waits in this class.
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e.into()),
                };
            let Some(group) = groups.iter().find(|g| {
                matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == GROUP.as_bytes())
            }) else {
                continue;
            };
            let last = match group.get("last-delivered-id") {
                Some(redis::Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
                _ => "0-0".to_string(),
            };
            if stats.waiting.get(class.as_str()).copied().unwrap_or(0) == 0 {
                continue;
            }
            let first: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(format!("({last}"))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await?;
            if let Some((id, _)) = first.first() {
                let added_ms: u64 = id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(now_ms);
                let wait = now_ms.saturating_sub(added_ms);
                backlog.oldest_wait_ms = Some(backlog.oldest_wait_ms.map_or(wait, |w| w.max(wait)));
            }
        }
        let counters = self.counters().await?;
        backlog.active = counters.active_tasks.max(0) as u64;
        backlog.finished =
            (counters.tasks_completed + counters.tasks_failed + counters.tasks_timeout).max(0)
                as u64;
        Ok(backlog)
    }
}

/// One minute of the queue's history: tasks that ended in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Minute {
    /// Start of the minute, unix ms.
    pub at_ms: i64,
    pub completed: u64,
    /// Failed for good, timeouts included.
    pub failed: u64,
    /// Mean run time of those tasks, ms.
    pub mean_run_ms: Option<f64>,
    /// Mean wait from submission to the start of their last run, ms.
    pub mean_wait_ms: Option<f64>,
}

impl Queue {
    /// The last `minutes` minutes (oldest first, the current one last),
    /// from the per-minute totals `complete.lua` keeps for two hours.
    pub async fn history(&self, minutes: usize) -> Result<Vec<Minute>, QueueError> {
        let mut conn = self.connection();
        let (secs, _): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        let now_minute = secs / 60;
        let first = now_minute - minutes as i64 + 1;
        let mut read = redis::pipe();
        for m in first..=now_minute {
            read.cmd("HGETALL")
                .arg(format!("{}:queue:minute:{m}", self.keys().prefix()));
        }
        let replies: Vec<BTreeMap<String, u64>> = if minutes == 0 {
            Vec::new()
        } else {
            read.query_async(&mut conn).await?
        };
        Ok((first..=now_minute)
            .zip(replies)
            .map(|(m, fields)| {
                let get = |name: &str| fields.get(name).copied().unwrap_or(0);
                let ended = get("completed") + get("failed");
                let mean = |total: f64| (ended > 0).then(|| total / ended as f64);
                Minute {
                    at_ms: m * 60_000,
                    completed: get("completed"),
                    failed: get("failed"),
                    mean_run_ms: mean(get("run_ms") as f64),
                    mean_wait_ms: mean(get("wait_us") as f64 / 1000.0),
                }
            })
            .collect())
    }
}
