//! When to add or remove worker processes: pure decisions from readings,
//! so every rule is unit-tested without processes or Redis.

use std::time::{Duration, Instant};

use stratbox_queue::metrics::Backlog;

/// The SLA and the brakes. Every number has a flag in `stratbox autoscale`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub min: usize,
    pub max: usize,
    /// The SLA: no task should wait longer than this to start, now
    /// (oldest waiting task) or by prediction (backlog / drain rate).
    pub target_wait: Duration,
    /// Least time between two scale-ups (new workers need a moment to
    /// start taking tasks before the rate reflects them).
    pub up_cooldown: Duration,
    /// Least time after any change before a scale-down.
    pub down_cooldown: Duration,
    /// How long the queue must be empty and idle before a worker goes.
    pub quiet_period: Duration,
}

/// One reading of the queue, with the drain rate measured between
/// readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub backlog: Backlog,
    /// Tasks finished per second recently (0 when unknown).
    pub drain_per_sec: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Hold,
    /// Grow to `to` workers.
    Up {
        to: usize,
        reason: Reason,
    },
    /// Shrink to `to` workers.
    Down {
        to: usize,
        reason: Reason,
    },
}

/// Why, as a label (`/metrics`) and a sentence (the log).
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub kind: &'static str,
    pub detail: String,
}

/// What the policy remembers between readings.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    last_change: Option<Instant>,
    quiet_since: Option<Instant>,
}

impl Policy {
    pub fn check(&self) -> Result<(), String> {
        if self.min > self.max {
            return Err(format!("--min {} is above --max {}", self.min, self.max));
        }
        if self.max == 0 {
            return Err("--max must be at least 1".into());
        }
        if self.target_wait.is_zero() {
            return Err("--target-wait-ms must be above 0".into());
        }
        Ok(())
    }

    /// The decision for `workers` running now.
    pub fn decide(
        &self,
        workers: usize,
        reading: &Reading,
        state: &mut PolicyState,
        now: Instant,
    ) -> Decision {
        let backlog = &reading.backlog;
        let since_change = state
            .last_change
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        if workers < self.min {
            state.last_change = Some(now);
            return Decision::Up {
                to: self.min,
                reason: Reason {
                    kind: "below_min",
                    detail: format!("{workers} running, --min is {}", self.min),
                },
            };
        }
        let quiet = backlog.waiting == 0 && backlog.active == 0;
        if !quiet {
            state.quiet_since = None;
        } else if state.quiet_since.is_none() {
            state.quiet_since = Some(now);
        }
        if let Some(reason) = self.breach(reading) {
            if workers < self.max && since_change >= self.up_cooldown {
                state.last_change = Some(now);
                return Decision::Up {
                    to: self.wanted(workers, reading).clamp(workers + 1, self.max),
                    reason,
                };
            }
            return Decision::Hold;
        }
        let quiet_for = state
            .quiet_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if workers > self.min
            && quiet_for >= self.quiet_period
            && since_change >= self.down_cooldown
        {
            state.last_change = Some(now);
            return Decision::Down {
                to: workers - 1,
                reason: Reason {
                    kind: "quiet",
                    detail: format!(
                        "nothing waiting or running for {:.1} s",
                        quiet_for.as_secs_f64()
                    ),
                },
            };
        }
        Decision::Hold
    }

    /// The SLA breach, if any: the oldest task has waited too long, or
    /// the backlog will take too long to drain at the measured rate.
    fn breach(&self, reading: &Reading) -> Option<Reason> {
        let backlog = &reading.backlog;
        let target = self.target_wait.as_secs_f64();
        if let Some(ms) = backlog.oldest_wait_ms {
            let waited = ms as f64 / 1000.0;
            if waited > target {
                return Some(Reason {
                    kind: "oldest_wait",
                    detail: format!(
                        "oldest waiting task waited {waited:.2} s > target {target:.2} s"
                    ),
                });
            }
        }
        if backlog.waiting > 0 {
            let drain = predicted_drain_secs(backlog.waiting, reading.drain_per_sec);
            if drain > target {
                return Some(Reason {
                    kind: "drain_time",
                    detail: format!(
                        "{} waiting drain in {} at {:.1}/s > target {target:.2} s",
                        backlog.waiting,
                        if drain.is_finite() {
                            format!("{drain:.1} s")
                        } else {
                            "never".into()
                        },
                        reading.drain_per_sec
                    ),
                });
            }
        }
        None
    }

    /// Workers that would drain the backlog within the target at the
    /// per-worker rate seen so far; double when there is no rate yet.
    fn wanted(&self, workers: usize, reading: &Reading) -> usize {
        if reading.drain_per_sec <= 0.0 || workers == 0 {
            return (workers * 2).max(1);
        }
        let per_worker = reading.drain_per_sec / workers as f64;
        let needed = reading.backlog.waiting as f64 / (per_worker * self.target_wait.as_secs_f64());
        needed.ceil() as usize
    }
}

/// Seconds to drain `waiting` tasks at `rate` per second (infinite
/// without a rate).
pub fn predicted_drain_secs(waiting: u64, rate: f64) -> f64 {
    if waiting == 0 {
        0.0
    } else if rate <= 0.0 {
        f64::INFINITY
    } else {
        waiting as f64 / rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min: 1,
            max: 4,
            target_wait: Duration::from_secs(5),
            up_cooldown: Duration::from_secs(10),
            down_cooldown: Duration::from_secs(20),
            quiet_period: Duration::from_secs(30),
        }
    }

    fn reading(waiting: u64, oldest_ms: Option<u64>, active: u64, rate: f64) -> Reading {
        Reading {
            backlog: Backlog {
                waiting,
                oldest_wait_ms: oldest_ms,
                active,
                finished: 0,
            },
            drain_per_sec: rate,
        }
    }

    #[test]
    fn an_old_task_scales_up_to_what_the_rate_needs() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        // 2 workers drain 4/s; 60 waiting need 60 / (2 * 5) = 6, capped at 4.
        let d = p.decide(2, &reading(60, Some(6_000), 2, 4.0), &mut s, t0);
        assert!(
            matches!(d, Decision::Up { to: 4, ref reason } if reason.kind == "oldest_wait"),
            "{d:?}"
        );
    }

    #[test]
    fn a_backlog_that_will_drain_too_slowly_scales_up_before_anyone_waits_long() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        // 30 waiting at 2/s: 15 s > 5 s, though the oldest waited 1 s.
        let d = p.decide(1, &reading(30, Some(1_000), 1, 2.0), &mut s, t0);
        assert!(
            matches!(d, Decision::Up { to: 3, ref reason } if reason.kind == "drain_time"),
            "{d:?}"
        );
        // Without any rate yet: double.
        let mut s = PolicyState::default();
        let d = p.decide(1, &reading(30, Some(1_000), 0, 0.0), &mut s, t0);
        assert!(matches!(d, Decision::Up { to: 2, .. }), "{d:?}");
    }

    #[test]
    fn cooldowns_stop_flapping() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        let busy = reading(100, Some(9_000), 1, 1.0);
        assert!(matches!(
            p.decide(1, &busy, &mut s, t0),
            Decision::Up { .. }
        ));
        assert_eq!(
            p.decide(2, &busy, &mut s, t0 + Duration::from_secs(5)),
            Decision::Hold
        );
        assert!(matches!(
            p.decide(2, &busy, &mut s, t0 + Duration::from_secs(10)),
            Decision::Up { .. }
        ));
        // At the maximum: hold, however late.
        assert_eq!(
            p.decide(4, &busy, &mut s, t0 + Duration::from_secs(60)),
            Decision::Hold
        );
    }

    #[test]
    fn scale_down_needs_a_quiet_period_then_goes_one_at_a_time() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        let idle = reading(0, None, 0, 0.0);
        assert_eq!(p.decide(3, &idle, &mut s, t0), Decision::Hold);
        assert_eq!(
            p.decide(3, &idle, &mut s, t0 + Duration::from_secs(29)),
            Decision::Hold
        );
        let d = p.decide(3, &idle, &mut s, t0 + Duration::from_secs(30));
        assert!(
            matches!(d, Decision::Down { to: 2, ref reason } if reason.kind == "quiet"),
            "{d:?}"
        );
        // The next one waits for the down cooldown.
        assert_eq!(
            p.decide(2, &idle, &mut s, t0 + Duration::from_secs(40)),
            Decision::Hold
        );
        assert!(matches!(
            p.decide(2, &idle, &mut s, t0 + Duration::from_secs(50)),
            Decision::Down { to: 1, .. }
        ));
        // Never below the minimum.
        assert_eq!(
            p.decide(1, &idle, &mut s, t0 + Duration::from_secs(500)),
            Decision::Hold
        );
    }

    #[test]
    fn a_running_task_is_not_quiet() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        let running = reading(0, None, 1, 0.5);
        for secs in [0, 31, 62] {
            assert_eq!(
                p.decide(2, &running, &mut s, t0 + Duration::from_secs(secs)),
                Decision::Hold
            );
        }
        // Quiet starts counting only once it is idle.
        let idle = reading(0, None, 0, 0.0);
        assert_eq!(
            p.decide(2, &idle, &mut s, t0 + Duration::from_secs(63)),
            Decision::Hold
        );
        assert!(matches!(
            p.decide(2, &idle, &mut s, t0 + Duration::from_secs(93)),
            Decision::Down { .. }
        ));
    }

    #[test]
    fn below_the_minimum_is_fixed_at_once() {
        let (p, mut s, t0) = (policy(), PolicyState::default(), Instant::now());
        let d = p.decide(0, &reading(0, None, 0, 0.0), &mut s, t0);
        assert!(
            matches!(d, Decision::Up { to: 1, ref reason } if reason.kind == "below_min"),
            "{d:?}"
        );
    }

    #[test]
    fn bad_bounds_are_refused() {
        let mut p = policy();
        p.min = 5;
        assert!(p.check().unwrap_err().contains("--min 5 is above --max 4"));
        assert_eq!(predicted_drain_secs(0, 0.0), 0.0);
        assert!(predicted_drain_secs(3, 0.0).is_infinite());
        assert_eq!(predicted_drain_secs(10, 4.0), 2.5);
    }
}
