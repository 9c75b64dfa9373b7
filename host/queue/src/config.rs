//! Every queue timing in one place, each with the reason for its default.
//! Each can be overridden by a flag or environment variable of `stratbox
//! worker` (host/cli/src/settings.rs reads these defaults for its help).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// A pending entry idle this long belongs to a dead worker and may be
    /// reclaimed. Live workers refresh their claims every `keepalive`, so
    /// this only bounds how long a crash delays a task. 30 s: Celery's
    /// visibility timeout is an hour, which is why its lost tasks hurt.
    pub visibility_timeout: Duration,
    /// How often a worker refreshes its claims and its heartbeat. A tenth
    /// of the visibility timeout leaves room for several missed ticks.
    pub keepalive: Duration,
    /// A heartbeat older than this means the worker is gone (three ticks).
    pub heartbeat_ttl: Duration,
    /// How often a worker looks for entries of dead workers to reclaim.
    pub sweep_interval: Duration,
    /// How often due retries move from the delayed set back to a stream;
    /// also the worst extra delay a retry sees.
    pub promote_interval: Duration,
    /// Longest `XREADGROUP ... BLOCK` when idle. New tasks wake a blocked
    /// read at once; the bound only sets how often an idle worker loops.
    pub block: Duration,
    /// Deliveries per task before it is dead-lettered (the first run plus
    /// two retries), as Celery's `max_retries` but counted in attempts.
    pub max_attempts: u32,
    /// Retry `n` waits a uniformly random time in `[0, min(cap, base *
    /// 2^(n-1))]` ("full jitter"): retries of a burst spread out.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A task that runs longer is stopped and counted in tasks_timeout.
    pub task_timeout: Duration,
    /// A lower class whose oldest waiting task has waited this long is
    /// served before the higher ones, so it is never starved.
    pub starvation_age: Duration,
    /// Most entries taken in one fetch: one round trip moves this many.
    pub fetch_batch: usize,
    /// Work a worker may hold beyond its free slots, estimated from recent
    /// run times (at most `prefetch_max` tasks). Short tasks get batched
    /// reads; long tasks get none. Held tasks start highest class first,
    /// so a new high task fetched later overtakes held lower ones.
    pub prefetch_budget: Duration,
    /// Most tasks held beyond the free slots. A worker fetches again once
    /// half of them (at most `fetch_batch`) have started, so the other
    /// half covers the fetch's wait in Redis.
    pub prefetch_max: usize,
    /// A worker's completer waits up to this long for more outcomes before
    /// writing a batch: under load one round trip then ends dozens of
    /// tasks instead of one; at light load a result shows this much later.
    pub completion_linger: Duration,
    /// Finished tasks and their results are kept this long.
    pub result_ttl: Duration,
    /// On SIGTERM, tasks in flight get this long to finish before they are
    /// stopped and returned to the queue.
    pub grace_period: Duration,
    /// Most entries the dead-letter stream keeps; past it the oldest go
    /// (their tasks expire as a purge's do), counted in `dlq_trimmed`.
    /// A failure storm (a broken plugin under a 1,000,000-task sweep)
    /// would otherwise grow it, and the failed tasks it keeps, without
    /// bound. 100,000: more than an operator reads, and a requeue-all of
    /// that many took 1.9-3.2 s (docs/queue.md, "The dead-letter stream").
    pub dlq_max_len: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(3),
            heartbeat_ttl: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(5),
            promote_interval: Duration::from_millis(100),
            block: Duration::from_secs(2),
            max_attempts: 3,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            task_timeout: Duration::from_secs(600),
            starvation_age: Duration::from_secs(30),
            fetch_batch: 256,
            // Twice a fetch: the worker still holds about 200-256 tiny
            // backtests (5-7 ms on 2 slots) when it asks for more, so its
            // fetch can wait behind a submission or a completion batch in
            // Redis without the slots running dry. 100,000 tiny backtests,
            // seven interleaved pairs: 10.2, 11.8, 9.9, 8.4, 9.0, 9.3 and
            // 8.6 thousand/s against 9.8, 11.4, 8.5, 8.0, 9.1, 8.2 and 8.5
            // with at most `fetch_batch` held.
            prefetch_max: 512,
            // Enough that a worker keeps running through a 1,000-task
            // submission script (about 30 ms of Redis for backtests)
            // instead of starving behind it: 100,000 tiny backtests, five
            // runs each, interleaved: 7.4-9.5 thousand/s against 6.6-7.5
            // at 4 ms. For 50 us tasks that is 400, under `prefetch_max`.
            prefetch_budget: Duration::from_millis(20),
            completion_linger: Duration::from_micros(500),
            result_ttl: Duration::from_secs(7 * 24 * 3600),
            grace_period: Duration::from_secs(30),
            dlq_max_len: 100_000,
        }
    }
}

impl QueueConfig {
    /// Checks the timings against each other; the error names the setting.
    pub fn check(&self) -> Result<(), String> {
        if self.keepalive * 2 > self.visibility_timeout {
            return Err(format!(
                "keepalive ({:?}) must be at most half the visibility timeout ({:?}), or live workers lose their tasks",
                self.keepalive, self.visibility_timeout
            ));
        }
        if self.heartbeat_ttl <= self.keepalive {
            return Err(format!(
                "heartbeat_ttl ({:?}) must exceed keepalive ({:?})",
                self.heartbeat_ttl, self.keepalive
            ));
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.fetch_batch == 0 {
            return Err("fetch_batch must be at least 1".into());
        }
        if self.backoff_cap < self.backoff_base {
            return Err("backoff_cap must be at least backoff_base".into());
        }
        if self.dlq_max_len == 0 {
            return Err("dlq_max_len must be at least 1, or every failure is dropped".into());
        }
        Ok(())
    }

    /// Full-jitter delay before attempt `attempt + 1`, given a uniform
    /// sample `unit` in [0, 1).
    pub fn retry_delay(&self, attempt: u32, unit: f64) -> Duration {
        self.retry_ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The upper bound of the jittered delay after `attempt` attempts.
    pub fn retry_ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn retry_ceiling_doubles_from_the_base_up_to_the_cap() {
        let c = QueueConfig {
            backoff_base: ms(200),
            backoff_cap: ms(1_000),
            ..QueueConfig::default()
        };
        let ceilings: Vec<Duration> = (1..=6).map(|a| c.retry_ceiling(a)).collect();
        assert_eq!(
            ceilings,
            [ms(200), ms(400), ms(800), ms(1_000), ms(1_000), ms(1_000)]
        );
        // Attempt 0 (never ran) gets the base; huge attempts do not overflow.
        assert_eq!(c.retry_ceiling(0), ms(200));
        assert_eq!(c.retry_ceiling(u32::MAX), ms(1_000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let c = QueueConfig {
            backoff_base: ms(200),
            ..QueueConfig::default()
        };
        assert_eq!(c.retry_delay(3, 0.0), Duration::ZERO);
        assert_eq!(c.retry_delay(3, 0.5), ms(400));
        // Samples outside [0, 1) are clamped, never past the ceiling.
        assert_eq!(c.retry_delay(3, 7.0), ms(800));
        assert_eq!(c.retry_delay(3, -1.0), Duration::ZERO);
    }

    #[test]
    fn inconsistent_timings_are_refused_by_name() {
        let keepalive_too_slow = QueueConfig {
            keepalive: Duration::from_secs(20),
            ..QueueConfig::default()
        };
        assert!(keepalive_too_slow
            .check()
            .unwrap_err()
            .contains("keepalive"));
        let ttl_too_short = QueueConfig {
            heartbeat_ttl: Duration::from_secs(1),
            ..QueueConfig::default()
        };
        assert!(ttl_too_short.check().unwrap_err().contains("heartbeat_ttl"));
        let no_attempts = QueueConfig {
            max_attempts: 0,
            ..QueueConfig::default()
        };
        assert!(no_attempts.check().unwrap_err().contains("max_attempts"));
        let no_dlq = QueueConfig {
            dlq_max_len: 0,
            ..QueueConfig::default()
        };
        assert!(no_dlq.check().unwrap_err().contains("dlq_max_len"));
        assert!(QueueConfig::default().check().is_ok());
    }
}
