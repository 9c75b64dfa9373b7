//! What the queue says of itself: the shared counters, its depth per
//! class and per lane, the lanes' caps, and the live workers' heartbeats.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{now_ms, task, Class, Queue, QueueError, GROUP};

/// The five counters of the old service, plus what the queue adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub tasks_submitted: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_timeout: i64,
    pub active_tasks: i64,
    #[serde(skip)]
    pub extra: BTreeMap<String, i64>,
}

/// Depth and health of the queue at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Waiting (not yet delivered) entries per class, over every lane.
    pub waiting: BTreeMap<&'static str, u64>,
    /// Delivered, not yet acknowledged entries per class, over every lane.
    pub pending: BTreeMap<&'static str, u64>,
    /// Each named lane's share of the above (the default lane's is the
    /// rest); empty without lanes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lanes: BTreeMap<String, LaneDepth>,
    /// Retries waiting for their backoff.
    pub delayed: u64,
    pub dlq: u64,
    pub live_workers: u64,
}

/// One lane's tasks: waiting (not yet delivered) and running (delivered
/// to a worker, not yet ended: what its cap counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LaneDepth {
    pub waiting: u64,
    pub running: u64,
}

fn check_lane(lane: Option<&str>) -> Result<(), QueueError> {
    match lane {
        Some(l) if !task::valid_lane(l) => Err(QueueError::Invalid {
            field: "lane",
            message: format!("`{l}` is not 1 to 32 of a-z, 0-9, _ and -"),
        }),
        _ => Ok(()),
    }
}

/// An integer reply, or the first of an array (XPENDING's summary).
fn int(v: &redis::Value) -> u64 {
    match v {
        redis::Value::Int(n) => (*n).max(0) as u64,
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => (*n).max(0) as u64,
            _ => 0,
        },
        _ => 0,
    }
}

impl Queue {
    /// Named lanes tasks were submitted to, sorted.
    pub async fn lanes(&self) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn.clone();
        let mut lanes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.lanes())
            .query_async(&mut conn)
            .await?;
        lanes.sort_unstable();
        Ok(lanes)
    }

    /// Caps lane `lane` (`None`: the default lane) at `cap` tasks running
    /// at once, or lifts its cap (`None`). A fetch gives a lane at most
    /// its cap less its running tasks (docs/conventions/queue.md,
    /// "Lanes"); a cap of 0 holds the lane's tasks back.
    pub async fn set_lane_cap(
        &self,
        lane: Option<&str>,
        cap: Option<u32>,
    ) -> Result<(), QueueError> {
        check_lane(lane)?;
        let field = lane.unwrap_or("");
        let mut pipe = redis::pipe();
        pipe.atomic();
        match cap {
            Some(cap) => pipe
                .cmd("HSET")
                .arg(self.keys.lane_caps())
                .arg(field)
                .arg(cap),
            None => pipe.cmd("HDEL").arg(self.keys.lane_caps()).arg(field),
        }
        .ignore();
        // Workers blocked while the lane was full look again.
        pipe.cmd("XADD")
            .arg(self.keys.wake())
            .arg("MAXLEN")
            .arg(1)
            .arg("*")
            .arg("w")
            .arg("1")
            .ignore();
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The cap of lane `lane` (`None`: the default lane), if it has one.
    pub async fn lane_cap(&self, lane: Option<&str>) -> Result<Option<u32>, QueueError> {
        check_lane(lane)?;
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGET")
            .arg(self.keys.lane_caps())
            .arg(lane.unwrap_or(""))
            .query_async(&mut conn)
            .await?)
    }

    /// (waiting, running) tasks of lane `lane` (`None`: the default lane),
    /// from six O(1) commands in at most two round trips. Waiting counts
    /// stream entries, not delayed retries.
    pub async fn lane_depth(&self, lane: Option<&str>) -> Result<(u64, u64), QueueError> {
        check_lane(lane)?;
        let streams: Vec<String> = Class::ALL
            .into_iter()
            .map(|class| self.keys.lane_stream(class, lane))
            .collect();
        let mut conn = self.conn.clone();
        let mut lens = redis::pipe();
        for stream in &streams {
            lens.cmd("XLEN").arg(stream);
        }
        let lens: Vec<u64> = lens.query_async(&mut conn).await?;
        let len: u64 = lens.iter().sum();
        if len == 0 {
            return Ok((0, 0));
        }
        let mut pending = redis::pipe();
        for stream in &streams {
            pending.cmd("XPENDING").arg(stream).arg(GROUP);
        }
        let replies: Vec<redis::Value> = match pending.query_async(&mut conn).await {
            Err(e) if super::is_nogroup(&e) => {
                self.ensure_groups().await?;
                pending.query_async(&mut conn).await?
            }
            other => other?,
        };
        let running: u64 = replies.iter().map(int).sum();
        Ok((len.saturating_sub(running), running))
    }

    /// Shared counters (every API instance and worker writes the same hash).
    pub async fn counters(&self) -> Result<Counters, QueueError> {
        let mut conn = self.conn.clone();
        let all: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.keys.counters())
            .query_async(&mut conn)
            .await?;
        let get = |name: &str| all.get(name).copied().unwrap_or(0);
        Ok(Counters {
            tasks_submitted: get("tasks_submitted"),
            tasks_completed: get("tasks_completed"),
            tasks_failed: get("tasks_failed"),
            tasks_timeout: get("tasks_timeout"),
            active_tasks: get("active_tasks").max(0),
            extra: all,
        })
    }

    /// Waiting and pending entries per class (and per lane), delayed
    /// retries, DLQ length and live workers, in one round trip (two with
    /// lanes).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let lanes = self.lanes().await?;
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        let every = std::iter::once(None).chain(lanes.iter().map(|l| Some(l.as_str())));
        for lane in every.clone() {
            for class in Class::ALL {
                let stream = self.keys.lane_stream(class, lane);
                pipe.cmd("XLEN").arg(&stream);
                pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
            }
        }
        pipe.cmd("ZCARD").arg(self.keys.delayed());
        pipe.cmd("XLEN").arg(self.keys.dlq());
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        pipe.cmd("ZCOUNT")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf");
        let replies: Vec<redis::Value> = match pipe.query_async(&mut conn).await {
            Err(e) if super::is_nogroup(&e) => {
                self.ensure_groups().await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let mut stats = QueueStats::default();
        for class in Class::ALL {
            stats.waiting.insert(class.as_str(), 0);
            stats.pending.insert(class.as_str(), 0);
        }
        let mut at = 0;
        for lane in every {
            let mut depth = LaneDepth::default();
            for class in Class::ALL {
                let len = int(&replies[at]);
                let pending = int(&replies[at + 1]);
                at += 2;
                let waiting = len.saturating_sub(pending);
                *stats.waiting.entry(class.as_str()).or_default() += waiting;
                *stats.pending.entry(class.as_str()).or_default() += pending;
                depth.waiting += waiting;
                depth.running += pending;
            }
            if let Some(lane) = lane {
                stats.lanes.insert(lane.to_string(), depth);
            }
        }
        stats.delayed = int(&replies[at]);
        stats.dlq = int(&replies[at + 1]);
        stats.live_workers = int(&replies[at + 2]);
        Ok(stats)
    }

    /// Live workers' heartbeats (JSON each), by consumer name.
    pub async fn workers(&self) -> Result<BTreeMap<String, String>, QueueError> {
        let mut conn = self.conn.clone();
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        let names: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut get = redis::cmd("MGET");
        for name in &names {
            get.arg(self.keys.worker(name));
        }
        let beats: Vec<Option<String>> = get.query_async(&mut conn).await?;
        Ok(names
            .into_iter()
            .zip(beats)
            .filter_map(|(name, beat)| beat.map(|b| (name, b)))
            .collect())
    }
}
