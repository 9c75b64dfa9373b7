//! The queue's Lua scripts, each prefixed with the shared prelude.

use redis::aio::ConnectionManager;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};

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
    // With a fragment between the prelude and the script.
    ($part:literal, $file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $part)),
            include_str!(concat!("lua/", $file))
        ))
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
    pub purge: Script,
    pub regroup: Script,
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
            requeue: script!("dlq.lua", "requeue.lua"),
            purge: script!("dlq.lua", "purge.lua"),
            regroup: script!("regroup.lua"),
            release_all: script!("release_all.lua"),
            progress: script!("progress.lua"),
            prune: script!("prune.lua"),
            homes: script!("homes.lua"),
            read_task: script!("read_task.lua"),
        }
    }
}

/// `EVALSHA` of `script` with no keys, its arguments to be added to the
/// returned command. Each is written once, into the command: redis-rs's
/// `ScriptInvocation` keeps every argument apart and copies it twice
/// more, which in a bulk submission (about 20 arguments per task) cost
/// the client more than building them.
pub fn evalsha(script: &Script) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(0);
    cmd
}

/// Runs a command made by [`evalsha`]; a server that does not know the
/// script yet (`NOSCRIPT`: new, flushed or restarted) is given it and
/// asked once more.
pub async fn run<T: FromRedisValue>(
    conn: &mut ConnectionManager,
    script: &Script,
    cmd: &Cmd,
) -> RedisResult<T> {
    match cmd.query_async(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await?;
            cmd.query_async(conn).await
        }
        other => other,
    }
}
