-- Moves dead-lettered tasks back to their streams with fresh attempts.
-- ARGV[3]: a DLQ entry id, or 'all'. Returns how many were requeued.
local entries
if ARGV[3] == 'all' then
  entries = redis.call('XRANGE', DLQ, '-', '+')
else
  entries = redis.call('XRANGE', DLQ, ARGV[3], ARGV[3])
end
local n = 0
for _, e in ipairs(entries) do
  local tid = entry_field(e[2], 'task_id')
  redis.call('XDEL', DLQ, e[1])
  local tk = home_of(tid or '')
  if tid and redis.call('HGET', tk, 'status') == 'failed' then
    redis.call('HSET', tk, 'attempts', 0)
    -- A hosted task's `error` is its record's: it goes too.
    redis.call('HDEL', tk, 'error', 'task_error', 'error_code', 'finished_at_ms',
      'worker', 'progress', 'next_attempt_at_ms', 'cancel_requested')
    enqueue(tid, tk)
    local holds = redis.call('HGET', tk, 'holds')
    if holds and holds ~= '' then redis.call('SADD', holds, tid) end
    local rec = redis.call('HGET', tk, 'record')
    if rec and rec ~= '' then redis.call('HDEL', rec, 'error', 'finished_at_ms') end
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', COUNTERS, 'tasks_requeued', n) end
return n
