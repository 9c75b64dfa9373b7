-- Submits tasks atomically. After the prelude's two arguments, 9 per task: id, kind, payload, priority, class, timeout_ms,
-- max_attempts, record key ('' = none), result field.
local now_micros = now_us()
local now = math.floor(now_micros / 1000)
local n = 0
local ids = {}
for i = 3, #ARGV, 9 do
  local tid = ARGV[i]
  local tk = task_key(tid)
  if redis.call('EXISTS', tk) == 1 then
    return redis.error_reply('DUPLICATE task id ' .. tid)
  end
  redis.call('HSET', tk, 'kind', ARGV[i + 1], 'payload', ARGV[i + 2],
    'priority', ARGV[i + 3], 'class', ARGV[i + 4], 'timeout_ms', ARGV[i + 5],
    'max_attempts', ARGV[i + 6], 'record', ARGV[i + 7],
    'result_field', ARGV[i + 8], 'attempts', 0, 'created_at_ms', now,
    'created_us', string.format('%d', now_micros))
  if ARGV[i + 7] ~= '' then
    redis.call('HSET', ARGV[i + 7], 'task_id', tid, 'status', 'queued',
      'progress', '0')
  end
  enqueue(tid)
  n = n + 1
end
redis.call('HINCRBY', COUNTERS, 'tasks_submitted', n)
return n
