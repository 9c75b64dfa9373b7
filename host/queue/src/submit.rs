//! Submission: each spec checked and encoded as the arguments of
//! `submit.lua`, guards first, so a batch goes in one round trip, all or
//! none.

use super::{scripts, task, Class, Guard, Queue, QueueError, TaskSpec};

impl Queue {
    /// Submits tasks atomically (all or none) in one round trip and
    /// returns their ids (uuid v4) in order.
    pub async fn submit(&self, specs: &[TaskSpec]) -> Result<Vec<String>, QueueError> {
        self.submit_guarded(specs, &[]).await
    }

    /// [`Queue::submit`], only if every guard holds (checked and moved on
    /// in the same script); `GuardFailed` naming the first that does not.
    pub async fn submit_guarded(
        &self,
        specs: &[TaskSpec],
        guards: &[Guard],
    ) -> Result<Vec<String>, QueueError> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::with_capacity(specs.len());
        let mut invocation = scripts::evalsha(&self.scripts.submit);
        invocation.arg(self.keys.prefix()).arg("");
        invocation.arg(guards.len());
        for g in guards {
            let (index_key, member, score) = match &g.index {
                Some((key, member, score)) => (key.as_str(), member.as_str(), *score),
                None => ("", "", 0),
            };
            invocation
                .arg(&g.key)
                .arg(&g.field)
                .arg(&g.expect)
                .arg(index_key)
                .arg(member)
                .arg(score)
                .arg(g.set.len());
            for (name, value) in &g.set {
                invocation.arg(name).arg(value);
            }
        }
        for spec in specs {
            // A word starting with `@` would read as a lane in the spec.
            if spec.kind.is_empty()
                || spec.kind.contains(char::is_whitespace)
                || spec.kind.starts_with('@')
            {
                return Err(QueueError::Invalid {
                    field: "kind",
                    message: "must be one word, not empty, not starting with @".into(),
                });
            }
            if let Some(lane) = spec.lane.as_deref().filter(|l| !task::valid_lane(l)) {
                return Err(QueueError::Invalid {
                    field: "lane",
                    message: format!("`{lane}` is not 1 to 32 of a-z, 0-9, _ and -"),
                });
            }
            if spec.max_attempts == Some(0) {
                return Err(QueueError::Invalid {
                    field: "max_attempts",
                    message: "must be at least 1".into(),
                });
            }
            // A v4 uuid from the thread's generator: `new_v4` asks the
            // kernel for every id (a syscall per task in bulk submission).
            let id = uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string();
            let timeout_ms = spec
                .timeout_ms
                .unwrap_or(self.config.task_timeout.as_millis() as u64);
            let class = Class::from_priority(spec.priority);
            let mut packed = task::PackedSpec {
                created_us: 0,
                priority: spec.priority,
                class,
                timeout_ms,
                max_attempts: spec.max_attempts.unwrap_or(self.config.max_attempts),
                kind: spec.kind.clone(),
                result_field: String::new(),
                lane: spec.lane.clone(),
            };
            let (record_key, index, init) = match &spec.record {
                Some(r) => {
                    if r.result_field.contains(char::is_whitespace)
                        || r.result_field.starts_with('@')
                    {
                        return Err(QueueError::Invalid {
                            field: "result_field",
                            message: "must not contain whitespace or start with @".into(),
                        });
                    }
                    packed.result_field = r.result_field.clone();
                    (r.key.as_str(), r.index.as_ref(), r.init.as_slice())
                }
                None => ("", None, &[][..]),
            };
            invocation
                .arg(&id)
                .arg(class.as_str())
                .arg(packed.tail())
                .arg(&spec.payload)
                .arg(spec.holds.as_deref().unwrap_or(""))
                .arg(record_key);
            if !record_key.is_empty() {
                // The record's initial fields, then its new run's, which win.
                // A record with initial fields is a new one: nothing of an
                // earlier run to clear.
                invocation
                    .arg(index.map_or("", |(key, _)| key.as_str()))
                    .arg(index.map_or("", |(_, member)| member.as_str()))
                    .arg(if init.is_empty() { "" } else { "1" })
                    .arg(if spec.record.as_ref().is_some_and(|r| r.hosts_task) {
                        "1"
                    } else {
                        ""
                    })
                    .arg(init.len() + 3);
                for (name, value) in init {
                    invocation.arg(name).arg(value);
                }
                invocation
                    .arg("task_id")
                    .arg(&id)
                    .arg("status")
                    .arg("queued")
                    .arg("progress")
                    .arg("0");
            }
            ids.push(id);
        }
        let mut conn = self.conn.clone();
        let script = &self.scripts.submit;
        let submitted: i64 = match scripts::run(&mut conn, script, &invocation).await {
            Err(e) if super::is_nogroup(&e) => {
                self.ensure_groups().await?;
                scripts::run(&mut conn, script, &invocation).await?
            }
            other => other?,
        };
        if submitted < 0 {
            let failed = guards.get((-submitted - 1) as usize);
            return Err(QueueError::GuardFailed(
                failed.map(|g| g.key.clone()).unwrap_or_default(),
            ));
        }
        if submitted as usize != ids.len() {
            return Err(QueueError::Reply(format!(
                "submitted {submitted} of {} tasks",
                ids.len()
            )));
        }
        Ok(ids)
    }

    pub async fn submit_one(&self, spec: TaskSpec) -> Result<String, QueueError> {
        let mut ids = self.submit(std::slice::from_ref(&spec)).await?;
        ids.pop()
            .ok_or_else(|| QueueError::Reply("no task id returned".into()))
    }
}
