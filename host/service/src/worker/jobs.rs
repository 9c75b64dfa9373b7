//! The tasks a worker holds for its slots, and which one runs next.
//!
//! A worker holds more tasks than it has slots when they are short (the
//! prefetch). A high-priority task fetched later must not wait behind
//! lower ones already held, so a slot takes the highest class first, in
//! fetch order within a class. A held task overtaken for longer than the
//! starvation age runs next whatever its class: the rule `fetch.lua`
//! applies to tasks waiting in Redis, applied to the ones held here.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use stratbox_queue::Class;

/// Held tasks by class, each class in fetch order.
pub struct JobQueue<T> {
    state: Mutex<Held<T>>,
    ready: Condvar,
    starvation_age: Duration,
}

/// One queue per class (`Class::ALL` order), each job with when it came:
/// the next job is at the front of one of them, found without a scan (a
/// worker may hold hundreds of tiny tasks).
type ByClass<T> = [VecDeque<(Instant, T)>; 3];

struct Held<T> {
    jobs: ByClass<T>,
    closed: bool,
    /// Slots asleep in `pop`: a push wakes one only if some are (a
    /// wake-up is a syscall even with nobody waiting).
    asleep: usize,
}

impl<T> JobQueue<T> {
    pub fn new(starvation_age: Duration) -> Self {
        Self {
            state: Mutex::new(Held {
                jobs: Default::default(),
                closed: false,
                asleep: 0,
            }),
            ready: Condvar::new(),
            starvation_age,
        }
    }

    fn state(&self) -> MutexGuard<'_, Held<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, class: Class, job: T) {
        let mut state = self.state();
        state.jobs[class as usize].push_back((Instant::now(), job));
        if state.asleep > 0 {
            self.ready.notify_one();
        }
    }

    /// No more jobs come: slots finish what is held, then `pop` says so.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }

    /// The next job to run, waiting for one; `None` once closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut state = self.state();
        loop {
            if let Some(class) = next(&state.jobs, Instant::now(), self.starvation_age) {
                return state.jobs[class].pop_front().map(|(_, job)| job);
            }
            if state.closed {
                return None;
            }
            state.asleep += 1;
            state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
            state.asleep -= 1;
        }
    }
}

/// The class whose front job runs next: the oldest job if it has waited
/// past `starvation_age`, else the first of the highest class.
fn next<T>(jobs: &ByClass<T>, now: Instant, starvation_age: Duration) -> Option<usize> {
    let highest = jobs.iter().position(|q| !q.is_empty())?;
    // `min_by_key` keeps the first of equal times: the higher class.
    let (oldest, oldest_at) = jobs
        .iter()
        .enumerate()
        .filter_map(|(class, q)| q.front().map(|(at, _)| (class, *at)))
        .min_by_key(|(_, at)| *at)?;
    if now.saturating_duration_since(oldest_at) >= starvation_age {
        return Some(oldest);
    }
    Some(highest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const AGE: Duration = Duration::from_secs(30);

    #[test]
    fn the_highest_class_runs_first_in_fetch_order() {
        let q = JobQueue::new(AGE);
        q.push(Class::Low, "low 1");
        q.push(Class::Normal, "normal 1");
        q.push(Class::Low, "low 2");
        q.push(Class::High, "high 1");
        q.push(Class::Normal, "normal 2");
        q.push(Class::High, "high 2");
        q.close();
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            ["high 1", "high 2", "normal 1", "normal 2", "low 1", "low 2"]
        );
    }

    #[test]
    fn a_job_overtaken_past_the_starvation_age_runs_next() {
        let t0 = Instant::now();
        let mut jobs: ByClass<&str> = Default::default();
        jobs[Class::Low as usize].push_back((t0, "low"));
        jobs[Class::High as usize].push_back((t0 + Duration::from_secs(20), "high"));
        let high = Some(Class::High as usize);
        assert_eq!(next(&jobs, t0 + Duration::from_secs(29), AGE), high);
        assert_eq!(next(&jobs, t0 + AGE, AGE), Some(Class::Low as usize));
        assert_eq!(next::<&str>(&Default::default(), t0, AGE), None);
    }

    #[test]
    fn pop_waits_for_a_push_and_ends_once_closed_and_empty() {
        let q = Arc::new(JobQueue::new(AGE));
        let slot = {
            let q = q.clone();
            std::thread::spawn(move || std::iter::from_fn(|| q.pop()).collect::<Vec<_>>())
        };
        std::thread::sleep(Duration::from_millis(20));
        q.push(Class::Normal, 1);
        q.push(Class::Normal, 2);
        q.close();
        assert_eq!(slot.join().expect("the slot thread panicked"), [1, 2]);
    }
}
