//! The queue's Lua scripts, each prefixed with the shared prelude.

use redis::Script;

macro_rules! source {
    ($file:literal) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $file))
        )
    };
}

macro_rules! script {
    ($file:literal) => {
        Script::new(source!($file))
    };
}

/// `complete.lua` as text, for `EVAL` inside a transaction: there a
/// missing script (`NOSCRIPT`, after a Redis restart) would fail alone,
/// after the transaction's other commands had run.
pub const COMPLETE_SOURCE: &str = source!("complete.lua");

pub struct Scripts {
    pub submit: Script,
    pub fetch: Script,
    pub adopt: Script,
    pub complete: Script,
    pub keepalive: Script,
    pub promote: Script,
    pub cancel: Script,
    pub requeue: Script,
    pub release_all: Script,
    pub progress: Script,
    pub prune: Script,
    pub homes: Script,
    pub read_task: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            submit: script!("submit.lua"),
            fetch: script!("fetch.lua"),
            adopt: script!("adopt.lua"),
            complete: script!("complete.lua"),
            keepalive: script!("keepalive.lua"),
            promote: script!("promote.lua"),
            cancel: script!("cancel.lua"),
            requeue: script!("requeue.lua"),
            release_all: script!("release_all.lua"),
            progress: script!("progress.lua"),
            prune: script!("prune.lua"),
            homes: script!("homes.lua"),
            read_task: script!("read_task.lua"),
        }
    }
}
