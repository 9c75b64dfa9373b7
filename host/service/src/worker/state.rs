//! What a worker holds: tasks fetched and not finished (running, or handed
//! to the slots and waiting), their cancel tokens and progress, and the
//! recent average run time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stratbox_queue::consumer::Held;
use stratbox_queue::Delivery;
use stratbox_sandbox::CancelToken;

/// Handles a running task shares with the worker.
#[derive(Clone, Default)]
pub struct Slot {
    pub cancel: CancelToken,
    pub progress: Arc<AtomicU32>,
    /// Stopped because the worker is shutting down, not by a user.
    pub shutdown: Arc<AtomicBool>,
}

struct Entry {
    held: Held,
    slot: Slot,
    /// Another worker reclaimed it: our outcome must not be written.
    lost: bool,
    reported_progress: u32,
    /// A delivery of the same task under another entry (or after this
    /// copy was lost): it waits for this copy to stop, so one process
    /// never runs two copies of a task.
    next: Option<Delivery>,
}

impl Entry {
    fn new(delivery: &Delivery, slot: Slot) -> Self {
        Self {
            held: Held::from(delivery),
            slot,
            lost: false,
            reported_progress: 0,
            next: None,
        }
    }
}

/// What to do with a fetched delivery.
pub enum Hold {
    /// A task not held yet: run it, sharing this slot.
    Run(Slot),
    /// The entry of a task running here, delivered again (its consumer
    /// group was recreated from an earlier id): nothing to do, the
    /// running copy's outcome acknowledges it.
    Running,
    /// Another delivery of a task running here: it waits for that copy
    /// to stop ([`State::finish`] says what then).
    Waiting,
}

/// What follows a finished copy.
#[derive(Default)]
pub struct Finished {
    /// Another worker reclaimed it: its outcome must not be written.
    pub lost: bool,
    /// A delivery that waited for it, to run now with this slot.
    pub next: Option<(Delivery, Slot)>,
    /// A delivery that waited for it, of a task that has now ended: to
    /// acknowledge as a duplicate once the outcome is written.
    pub duplicate: Option<Held>,
}

#[derive(Default)]
pub struct State {
    /// Tasks handed to the slots and not finished, and deliveries waiting
    /// for a copy of their task to stop.
    pub in_flight: usize,
    /// Exponentially weighted mean of recent run times (weight 1/8).
    pub average_run: Option<Duration>,
    entries: HashMap<String, Entry>,
}

impl State {
    /// Takes a fetched delivery on, one copy of a task at a time.
    pub fn hold(&mut self, delivery: &Delivery) -> Hold {
        if let Some(entry) = self.entries.get_mut(&delivery.task_id) {
            let same =
                entry.held.stream == delivery.stream && entry.held.entry_id == delivery.entry_id;
            if same && !entry.lost {
                return Hold::Running;
            }
            // A newer delivery replaces one already waiting; the older
            // entry stays pending until a sweeper finds the task ended.
            if entry.next.replace(delivery.clone()).is_none() {
                self.in_flight += 1;
            }
            return Hold::Waiting;
        }
        let slot = Slot::default();
        self.entries
            .insert(delivery.task_id.clone(), Entry::new(delivery, slot.clone()));
        self.in_flight += 1;
        Hold::Run(slot)
    }

    /// Forgets a finished copy of a task; `ended` when its outcome ends
    /// the task (completed, failed, cancelled). A delivery that waited
    /// for it runs next, unless the task has ended.
    pub fn finish(&mut self, task_id: &str, took: Duration, ended: bool) -> Finished {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.average_run = Some(match self.average_run {
            None => took,
            Some(avg) => (avg * 7 + took) / 8,
        });
        let Some(entry) = self.entries.remove(task_id) else {
            return Finished::default();
        };
        let Some(next) = entry.next else {
            return Finished {
                lost: entry.lost,
                ..Finished::default()
            };
        };
        if ended && !entry.lost {
            self.in_flight = self.in_flight.saturating_sub(1);
            return Finished {
                duplicate: Some(Held::from(&next)),
                ..Finished::default()
            };
        }
        let slot = Slot::default();
        self.entries
            .insert(task_id.to_string(), Entry::new(&next, slot.clone()));
        Finished {
            lost: entry.lost,
            next: Some((next, slot)),
            duplicate: None,
        }
    }

    /// Every entry to keep claimed: running copies and waiting deliveries.
    pub fn held(&self) -> Vec<Held> {
        let mut held = Vec::with_capacity(self.entries.len());
        for e in self.entries.values() {
            held.push(e.held.clone());
            held.extend(e.next.as_ref().map(Held::from));
        }
        held
    }

    pub fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.entries.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn cancel(&mut self, task_id: &str) {
        if let Some(entry) = self.entries.get(task_id) {
            entry.slot.cancel.cancel();
        }
    }

    pub fn lose(&mut self, task_id: &str) {
        if let Some(entry) = self.entries.get_mut(task_id) {
            entry.lost = true;
            entry.slot.cancel.cancel();
        }
    }

    /// Stops every held task for shutdown; returns how many.
    pub fn stop_all_for_shutdown(&mut self) -> usize {
        let mut n = 0;
        for entry in self.entries.values() {
            entry.slot.shutdown.store(true, Ordering::SeqCst);
            entry.slot.cancel.cancel();
            n += 1;
        }
        n
    }

    /// Running tasks whose progress moved since the last call.
    pub fn progress_changes(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (id, entry) in self.entries.iter_mut() {
            let now = entry.slot.progress.load(Ordering::Relaxed);
            if now != entry.reported_progress {
                entry.reported_progress = now;
                out.push((id.clone(), f64::from(now) / 10_000.0));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(task: &str, entry: &str) -> Delivery {
        Delivery {
            stream: "s".into(),
            entry_id: entry.into(),
            task_id: task.into(),
            kind: "noop".into(),
            payload: String::new(),
            attempt: 1,
            max_attempts: 3,
            timeout_ms: 1_000,
            priority: 5,
            record: String::new(),
            hosted: false,
            result_field: String::new(),
            lane: None,
        }
    }

    fn entries(state: &State) -> Vec<String> {
        let mut held: Vec<String> = state.held().into_iter().map(|h| h.entry_id).collect();
        held.sort();
        held
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_running_task_delivered_again_is_not_run_twice() {
        let mut state = State::default();
        assert!(matches!(state.hold(&delivery("t", "1-0")), Hold::Run(_)));
        // Its own entry again: the running copy's outcome settles it.
        assert!(matches!(state.hold(&delivery("t", "1-0")), Hold::Running));
        assert_eq!(state.in_flight, 1);
        // Another entry of it waits, claimed, and is settled as a
        // duplicate once the running copy ends the task.
        assert!(matches!(state.hold(&delivery("t", "2-0")), Hold::Waiting));
        assert_eq!(
            (state.in_flight, entries(&state)),
            (2, vec!["1-0".into(), "2-0".into()])
        );
        let finished = state.finish("t", MS, true);
        assert!(!finished.lost && finished.next.is_none());
        assert_eq!(
            finished.duplicate.map(|h| h.entry_id).as_deref(),
            Some("2-0")
        );
        assert_eq!((state.in_flight, state.held().len()), (0, 0));
    }

    #[test]
    fn a_delivery_waits_for_a_lost_copy_to_stop_then_runs() {
        let mut state = State::default();
        let Hold::Run(slot) = state.hold(&delivery("t", "1-0")) else {
            panic!("not run");
        };
        state.lose("t");
        assert!(slot.cancel.is_cancelled());
        // Even its own entry: the lost copy's outcome will not be written.
        assert!(matches!(state.hold(&delivery("t", "1-0")), Hold::Waiting));
        assert!(matches!(state.hold(&delivery("t", "3-0")), Hold::Waiting));
        assert_eq!(state.in_flight, 2, "the newer replaces the older");
        let finished = state.finish("t", MS, true);
        assert!(finished.lost && finished.duplicate.is_none());
        let (next, slot) = finished.next.expect("the waiting delivery runs");
        assert_eq!(next.entry_id, "3-0");
        assert!(!slot.cancel.is_cancelled());
        assert_eq!((state.in_flight, entries(&state)), (1, vec!["3-0".into()]));
        // A retry does not end the task: a waiting delivery runs too.
        assert!(matches!(state.hold(&delivery("t", "4-0")), Hold::Waiting));
        assert!(state.finish("t", MS, false).next.is_some());
        assert!(state.finish("t", MS, true).next.is_none());
        assert_eq!(state.in_flight, 0);
    }
}
