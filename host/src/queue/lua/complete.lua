-- Ends deliveries. ARGV[3]: seconds finished tasks are kept. Then 8 per
-- outcome: op, stream key, entry id, task id, a (result / error code),
-- b (error message), c (error JSON for the record / retry delay ms),
-- d (error kind: permanent, transient or timeout).
-- ops: done, fail, timeout (a failure counted as a timeout), retry,
-- cancel, release.
-- Idempotent: only a task still running gets an outcome; the first one
-- wins, later deliveries of the same task are only acknowledged.
local ttl = tonumber(ARGV[3])
local now = now_ms()
local tally = {tasks_completed = 0, tasks_failed = 0, tasks_timeout = 0,
  tasks_retried = 0, tasks_cancelled = 0, tasks_released = 0,
  duplicates = 0, active_tasks = 0}
-- Run times of finished tasks, by outcome: summed here, written once.
local durations = {}
-- This minute's totals for the last-hour history: ended tasks by
-- outcome, their run time and their wait from submission to start.
local minute = {}
local function observe(outcome, started_us, created_us)
  local started = tonumber(started_us or '')
  if not started then return end
  local ms = math.max(now - math.floor(started / 1000), 0)
  local created = tonumber(created_us or '')
  local key = outcome == 'completed' and 'completed' or 'failed'
  minute[key] = (minute[key] or 0) + 1
  minute['run_ms'] = (minute['run_ms'] or 0) + ms
  if created then
    minute['wait_us'] = (minute['wait_us'] or 0) + math.max(started - created, 0)
  end
  local bucket = #DURATION_BOUNDS_MS + 1
  for j = 1, #DURATION_BOUNDS_MS do
    if ms <= DURATION_BOUNDS_MS[j] then bucket = j break end
  end
  for _, field in ipairs({outcome .. ':' .. bucket, outcome .. ':count'}) do
    durations[field] = (durations[field] or 0) + 1
  end
  durations[outcome .. ':sum_ms'] = (durations[outcome .. ':sum_ms'] or 0) + ms
end
-- Acknowledged and deleted per stream in one call each, at the end.
local acks = {}
local function ack(sk, eid)
  local ids = acks[sk]
  if not ids then
    ids = {}
    acks[sk] = ids
  end
  ids[#ids + 1] = eid
end
for i = 4, #ARGV, 8 do
  local op, sk, eid, tid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local a, b, c, d = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local tk = task_key(tid)
  local h = redis.call('HMGET', tk, 'status', 'worker', 'entry', 'attempts',
    'kind', 'record', 'result_field', 'cancel_requested', 'retried',
    'started_us', 'created_us')
  local running = h[1] == 'running'
  local owner = h[2] == CONSUMER and h[3] == eid
  if not running then
    -- Finished elsewhere, or cancelled while queued: just let go.
    ack(sk, eid)
    tally.duplicates = tally.duplicates + 1
  elseif (op == 'retry' or op == 'release') and not owner then
    -- Another worker reclaimed this task and runs it now; acking here
    -- would orphan its claim.
    tally.duplicates = tally.duplicates + 1
  else
    ack(sk, eid)
    tally.active_tasks = tally.active_tasks - 1
    local rec = h[6]
    if rec == false or rec == nil then rec = '' end
    -- Its cancellation was asked for: it ends cancelled rather than go
    -- back to the queue and run again.
    if h[8] == '1' and (op == 'retry' or op == 'release') then op = 'cancel' end
    if op == 'done' then
      -- The result is kept once: on the record when there is one.
      redis.call('HSET', tk, 'status', 'completed', 'finished_at_ms', now,
        'progress', '1')
      if rec == '' then redis.call('HSET', tk, 'result', a) end
      redis.call('EXPIRE', tk, ttl)
      if h[9] == '1' then redis.call('EXPIRE', tk .. ':retries', ttl) end
      if rec ~= '' then
        redis.call('HSET', rec, 'status', 'completed', h[7] or 'result', a,
          'finished_at_ms', now, 'progress', '1')
      end
      tally.tasks_completed = tally.tasks_completed + 1
      observe('completed', h[10], h[11])
    elseif op == 'fail' or op == 'timeout' then
      -- The task hash stays (no TTL) while its DLQ entry may requeue it.
      redis.call('HSET', tk, 'status', 'failed', 'error_code', a, 'error', b,
        'finished_at_ms', now)
      redis.call('XADD', DLQ, '*', 'task_id', tid, 'kind', h[5] or '',
        'reason', a, 'error', b, 'error_kind', d, 'attempts', h[4] or '0',
        'worker', CONSUMER, 'failed_at_ms', now)
      if rec ~= '' then
        redis.call('HSET', rec, 'status', 'failed', 'error', c,
          'finished_at_ms', now)
      end
      observe(op == 'timeout' and 'timeout' or 'failed', h[10], h[11])
      if op == 'timeout' then
        tally.tasks_timeout = tally.tasks_timeout + 1
      else
        tally.tasks_failed = tally.tasks_failed + 1
      end
    elseif op == 'retry' then
      local due = now + tonumber(c)
      redis.call('HSET', tk, 'status', 'queued', 'error_code', a, 'error', b,
        'next_attempt_at_ms', due, 'retried', '1')
      redis.call('HDEL', tk, 'stream', 'entry')
      redis.call('RPUSH', tk .. ':retries', (h[4] or '0') .. ':' .. c .. ':' .. a)
      redis.call('ZADD', DELAYED, due, tid)
      if rec ~= '' then redis.call('HSET', rec, 'status', 'queued') end
      tally.tasks_retried = tally.tasks_retried + 1
    elseif op == 'cancel' then
      end_cancelled(tk, ttl)
      tally.tasks_cancelled = tally.tasks_cancelled + 1
    elseif op == 'release' then
      release(tid)
      tally.tasks_released = tally.tasks_released + 1
    end
  end
end
for sk, ids in pairs(acks) do
  redis.call('XACK', sk, GROUP, unpack(ids))
  redis.call('XDEL', sk, unpack(ids))
end
for field, n in pairs(durations) do
  redis.call('HINCRBY', DURATIONS, field, n)
end
if next(minute) then
  local mk = P .. ':queue:minute:' .. math.floor(now / 60000)
  for field, n in pairs(minute) do
    redis.call('HINCRBY', mk, field, string.format('%d', n))
  end
  -- An hour of history is shown; kept a little longer.
  redis.call('EXPIRE', mk, 7200)
end
for name, n in pairs(tally) do
  if n ~= 0 then redis.call('HINCRBY', COUNTERS, name, n) end
end
return {tally.tasks_completed, tally.duplicates}
