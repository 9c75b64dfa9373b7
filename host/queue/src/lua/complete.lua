-- Ends deliveries. ARGV[3]: seconds finished tasks are kept, ARGV[4]:
-- the DLQ's most entries (0: no cap). Then per outcome: op, stream key, entry id, task id, home (the record hosting
-- the task, '' for its own hash), a (result / error code),
-- and for every op but `done`: b (error message), c (error JSON for the
-- record / retry delay ms), d (error kind: permanent, transient or
-- timeout).
-- ops: done, staged (done, its result already on the record: a is the
-- record's key, b the field), fail, timeout (a failure counted as a
-- timeout), retry, cancel, release, dup (another delivery of a task the
-- worker ran: acknowledged once the task has ended).
-- Idempotent: only a task still running gets an outcome; the first one
-- wins, later deliveries of the same task are only acknowledged.
local ttl = ARGV[3]
local dlq_max = tonumber(ARGV[4])
local dead_lettered = 0
local now = now_ms()
-- Numbers go to Redis as strings made once: Lua's own conversion is slow.
local now_s = string.format('%d', now)
local tally = {tasks_completed = 0, tasks_failed = 0, tasks_timeout = 0,
  tasks_retried = 0, tasks_cancelled = 0, tasks_released = 0,
  duplicates = 0, active_tasks = 0}
-- Run times of finished tasks, by outcome: count, sum and histogram
-- buckets summed here, written once.
local durations = {}
-- This minute's totals for the last-hour history: ended tasks by
-- outcome, their run time and their wait from submission to start.
local minute = {completed = 0, failed = 0, run_ms = 0, wait_us = 0}
local function observe(outcome, started_us, created_us)
  local started = tonumber(started_us or '')
  if not started then return end
  local ms = math.max(now - math.floor(started / 1000), 0)
  local created = tonumber(created_us or '')
  if outcome == 'completed' then
    minute.completed = minute.completed + 1
  else
    minute.failed = minute.failed + 1
  end
  minute.run_ms = minute.run_ms + ms
  if created then minute.wait_us = minute.wait_us + math.max(started - created, 0) end
  local bucket = #DURATION_BOUNDS_MS + 1
  for j = 1, #DURATION_BOUNDS_MS do
    if ms <= DURATION_BOUNDS_MS[j] then bucket = j break end
  end
  local d = durations[outcome]
  if not d then
    d = {count = 0, sum_ms = 0, buckets = {}}
    durations[outcome] = d
  end
  d.count = d.count + 1
  d.sum_ms = d.sum_ms + ms
  d.buckets[bucket] = (d.buckets[bucket] or 0) + 1
end
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_less(a_ms, a_seq, b_ms, b_seq)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end
-- Deletes entries just acknowledged. Entries are delivered in id order,
-- so every entry older than both the oldest pending one and the newest
-- one acknowledged here was delivered and acknowledged: one XTRIM MINID
-- drops those whole (XDEL scans a stream node per id, ~20x the cost).
-- Those acknowledged out of order, above the oldest pending, go by XDEL.
local function delete_acked(sk, ids)
  local top_ms, top_seq = -1, -1
  for _, id in ipairs(ids) do
    local ms, seq = id_parts(id)
    if ms and id_less(top_ms, top_seq, ms, seq) then top_ms, top_seq = ms, seq end
  end
  if top_ms < 0 then
    redis.call('XDEL', sk, unpack(ids))
    return
  end
  local bound_ms, bound_seq = top_ms, top_seq + 1
  local pending = redis.call('XPENDING', sk, GROUP)
  if pending[1] > 0 then
    local ms, seq = id_parts(pending[2])
    if id_less(ms, seq, bound_ms, bound_seq) then bound_ms, bound_seq = ms, seq end
  end
  redis.call('XTRIM', sk, 'MINID', string.format('%d-%d', bound_ms, bound_seq))
  local rest = {}
  for _, id in ipairs(ids) do
    local ms, seq = id_parts(id)
    if not ms or not id_less(ms, seq, bound_ms, bound_seq) then rest[#rest + 1] = id end
  end
  if #rest > 0 then redis.call('XDEL', sk, unpack(rest)) end
end
-- A staged result of a delivery that did not win. The `HSETNX` ahead of
-- this script wrote nothing where the field was set: a completed record
-- keeps its result. Anywhere else the field is this delivery's and goes;
-- a record without a status is one the `HSETNX` created after the
-- record was deleted, and goes whole.
local function unstage(rec, field)
  local status = redis.call('HGET', rec, 'status')
  if not status then
    redis.call('DEL', rec)
  elseif status ~= 'completed' then
    redis.call('HDEL', rec, field)
  end
end
-- Tasks that leave their `holds` sets, per set: one SREM each at the end.
local leaving = {}
local function leave(tid, holds)
  if holds and holds ~= '' then
    local list = list_of(leaving, holds)
    list[#list + 1] = tid
  end
end
-- Acknowledged and deleted per stream in one call each, at the end.
local acks = {}
local function ack(sk, eid)
  local ids = list_of(acks, sk)
  ids[#ids + 1] = eid
end
local streams, j = {}, 5
while j <= #ARGV do
  if not streams[ARGV[j + 1]] then
    streams[ARGV[j + 1]] = true
    need_group(ARGV[j + 1])
  end
  j = j + (ARGV[j] == 'done' and 6 or 9)
end
local i = 5
while i <= #ARGV do
  local op, sk, eid, tid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local tk = home_or_own(tid, ARGV[i + 4])
  local a, b, c, d = ARGV[i + 5], '', '', ''
  if op == 'done' then
    i = i + 6
  else
    b, c, d = ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
    i = i + 9
  end
  local hosted = is_hosted(tk, tid)
  local h = redis.call('HMGET', tk, 'status', 'worker', 'entry', 'attempts',
    'spec', 'record', 'cancel_requested', 'retried', 'started_us', 'holds', 'task_id')
  local running = h[1] == 'running' and not superseded(tk, tid, h[11])
  local owner = h[2] == CONSUMER and h[3] == eid
  if not running then
    -- Finished elsewhere, or cancelled while queued: just let go.
    ack(sk, eid)
    tally.duplicates = tally.duplicates + 1
    if op == 'staged' then unstage(a, b) end
  elseif (op == 'retry' or op == 'release') and not owner or op == 'dup' then
    -- Another worker reclaimed this task and runs it now; acking here
    -- would orphan its claim.
    tally.duplicates = tally.duplicates + 1
  else
    ack(sk, eid)
    tally.active_tasks = tally.active_tasks - 1
    local rec = h[6]
    if rec == false or rec == nil then rec = '' end
    -- A hosted task's record is its own hash: one write per step.
    if hosted then rec = '' end
    -- Staged for a record the task has let go of (a newer run took it):
    -- the result goes, and the task completes on its own hash.
    if op == 'staged' and not hosted and rec ~= a then
      unstage(a, b)
      op, a = 'done', ''
    end
    -- Its cancellation was asked for: it ends cancelled rather than go
    -- back to the queue and run again.
    if h[7] == '1' and (op == 'retry' or op == 'release') then op = 'cancel' end
    if op == 'done' or op == 'staged' then
      local created_us, _, _, _, _, _, result_field = parse_spec(spec_of(tk, h[5]))
      -- The result is kept once: on the record when there is one. A
      -- completed task reads as progress 1 without writing it.
      if op == 'staged' and hosted then
        redis.call('HSET', tk, 'status', 'completed', 'finished_at_ms', now_s, 'progress', '1')
      elseif op == 'staged' then
        -- Its result is on the record (a) already.
        redis.call('HSET', tk, 'status', 'completed', 'finished_at_ms', now_s)
        redis.call('HSET', a, 'status', 'completed', 'finished_at_ms', now_s, 'progress', '1')
      elseif hosted then
        if result_field == nil or result_field == '' then result_field = 'result' end
        redis.call('HSET', tk, 'status', 'completed', result_field, a,
          'finished_at_ms', now_s, 'progress', '1')
      elseif rec == '' then
        redis.call('HSET', tk, 'status', 'completed', 'finished_at_ms', now_s, 'result', a)
      else
        redis.call('HSET', tk, 'status', 'completed', 'finished_at_ms', now_s)
        if result_field == nil or result_field == '' then result_field = 'result' end
        redis.call('HSET', rec, 'status', 'completed', result_field, a,
          'finished_at_ms', now_s, 'progress', '1')
      end
      expire_task(tk, tid, ttl, h[8] == '1')
      leave(tid, h[10])
      tally.tasks_completed = tally.tasks_completed + 1
      observe('completed', h[9], created_us)
    elseif op == 'fail' or op == 'timeout' then
      local created_us, _, _, _, _, kind, _, lane = parse_spec(spec_of(tk, h[5]))
      -- The task hash stays (no TTL) while its DLQ entry may requeue it.
      if hosted then
        redis.call('HSET', tk, 'status', 'failed', 'error_code', a, 'task_error', b,
          'error', c, 'finished_at_ms', now_s)
      else
        redis.call('HSET', tk, 'status', 'failed', 'error_code', a, 'error', b,
          'finished_at_ms', now_s)
      end
      if lane == '' then
        redis.call('XADD', DLQ, '*', 'task_id', tid, 'kind', kind or '',
          'reason', a, 'error', b, 'error_kind', d, 'attempts', h[4] or '0',
          'worker', CONSUMER, 'failed_at_ms', now_s)
      else
        redis.call('XADD', DLQ, '*', 'task_id', tid, 'kind', kind or '',
          'reason', a, 'error', b, 'error_kind', d, 'attempts', h[4] or '0',
          'worker', CONSUMER, 'failed_at_ms', now_s, 'lane', lane)
      end
      dead_lettered = dead_lettered + 1
      if rec ~= '' then
        redis.call('HSET', rec, 'status', 'failed', 'error', c,
          'finished_at_ms', now_s)
      end
      -- Dead-lettered: it holds again if requeued.
      leave(tid, h[10])
      observe(op == 'timeout' and 'timeout' or 'failed', h[9], created_us)
      if op == 'timeout' then
        tally.tasks_timeout = tally.tasks_timeout + 1
      else
        tally.tasks_failed = tally.tasks_failed + 1
      end
    elseif op == 'retry' then
      local due = now + tonumber(c)
      redis.call('HSET', tk, 'status', 'queued', 'error_code', a, error_field(tk, tid), b,
        'next_attempt_at_ms', due, 'retried', '1')
      redis.call('HDEL', tk, 'entry', 'stream')
      redis.call('RPUSH', tk .. ':retries', (h[4] or '0') .. ':' .. c .. ':' .. a)
      redis.call('ZADD', DELAYED, due, tid)
      if rec ~= '' then redis.call('HSET', rec, 'status', 'queued') end
      tally.tasks_retried = tally.tasks_retried + 1
    elseif op == 'cancel' then
      end_cancelled(tk, tid, ttl)
      tally.tasks_cancelled = tally.tasks_cancelled + 1
    elseif op == 'release' then
      release(tid, tk)
      tally.tasks_released = tally.tasks_released + 1
    end
  end
end
if dead_lettered > 0 and dlq_max > 0 then trim_dlq(dlq_max, ttl) end
for holds, tids in pairs(leaving) do call_batched('SREM', holds, tids) end
for sk, ids in pairs(acks) do
  redis.call('XACK', sk, GROUP, unpack(ids))
  delete_acked(sk, ids)
end
for outcome, d in pairs(durations) do
  redis.call('HINCRBY', DURATIONS, outcome .. ':count', d.count)
  redis.call('HINCRBY', DURATIONS, outcome .. ':sum_ms', d.sum_ms)
  for bucket, n in pairs(d.buckets) do
    redis.call('HINCRBY', DURATIONS, outcome .. ':' .. bucket, n)
  end
end
if minute.completed + minute.failed > 0 then
  local mk = P .. ':queue:minute:' .. math.floor(now / 60000)
  for field, n in pairs(minute) do
    if n ~= 0 then redis.call('HINCRBY', mk, field, string.format('%d', n)) end
  end
  -- An hour of history is shown; kept a little longer.
  redis.call('EXPIRE', mk, 7200)
end
for name, n in pairs(tally) do
  if n ~= 0 then redis.call('HINCRBY', COUNTERS, name, n) end
end
-- Room freed in a capped lane, or a task back in a stream: a fetch
-- blocked on WAKE looks again.
if redis.call('EXISTS', LANE_CAPS) == 1 or (tally.tasks_released > 0 and lane_mode()) then
  ring()
end
return {tally.tasks_completed, tally.duplicates}
