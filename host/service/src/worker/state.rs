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
}

#[derive(Default)]
pub struct State {
    /// Tasks handed to the slots and not finished.
    pub in_flight: usize,
    /// Exponentially weighted mean of recent run times (weight 1/8).
    pub average_run: Option<Duration>,
    entries: HashMap<String, Entry>,
}

impl State {
    /// Takes a fetched task on; the slot is what its run shares with us.
    pub fn hold(&mut self, delivery: &Delivery) -> Slot {
        let slot = Slot::default();
        self.entries.insert(
            delivery.task_id.clone(),
            Entry {
                held: Held::from(delivery),
                slot: slot.clone(),
                lost: false,
                reported_progress: 0,
            },
        );
        self.in_flight += 1;
        slot
    }

    /// Forgets a finished task; returns whether it had been lost.
    pub fn finish(&mut self, task_id: &str, took: Duration) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.average_run = Some(match self.average_run {
            None => took,
            Some(avg) => (avg * 7 + took) / 8,
        });
        self.entries.remove(task_id).is_some_and(|e| e.lost)
    }

    pub fn held(&self) -> Vec<Held> {
        self.entries.values().map(|e| e.held.clone()).collect()
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
