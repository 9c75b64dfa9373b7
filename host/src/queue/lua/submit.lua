-- Submits tasks atomically. After the prelude's two arguments: the guard
-- count, then per guard: hash key, field, expected value ('' also holds
-- when the field is absent: a record that must not exist yet), index
-- key ('' = none), index member, index score, the count of fields to set
-- and that many name/value pairs. If guard k does not hold, nothing is
-- written and the reply is -k. Then per task:
-- id, kind, payload, priority, class, timeout_ms, max_attempts, record
-- key ('' = none), result field, holds set ('' = none), index key ('' =
-- none), index member, then the count of the record's initial fields and
-- that many name/value pairs.
local i = 3
local guards = tonumber(ARGV[i])
i = i + 1
local guard_at = i
for k = 1, guards do
  if (redis.call('HGET', ARGV[i], ARGV[i + 1]) or '') ~= ARGV[i + 2] then return -k end
  i = i + 7 + 2 * tonumber(ARGV[i + 6])
end
-- Every guard holds: move them on.
local g = guard_at
for _ = 1, guards do
  local sets = tonumber(ARGV[g + 6])
  if sets > 0 then redis.call('HSET', ARGV[g], unpack(ARGV, g + 7, g + 6 + 2 * sets)) end
  if ARGV[g + 3] ~= '' then redis.call('ZADD', ARGV[g + 3], ARGV[g + 5], ARGV[g + 4]) end
  g = g + 7 + 2 * sets
end
local now = now_us()
local created_us = string.format('%d', now)
local created_ms = string.format('%d', math.floor(now / 1000))
local n = 0
-- Two calls per task (XADD, HSET) when there is no record: this is the
-- hot path of bulk submission. Ids are fresh uuids, so no existence check.
while i <= #ARGV do
  local tid = ARGV[i]
  local sk = stream_key(ARGV[i + 4])
  local rec = ARGV[i + 7]
  local eid = redis.call('XADD', sk, '*', 't', tid)
  local tk = task_key(tid)
  -- Absent fields read as their zero: attempts 0, no record.
  redis.call('HSET', tk, 'kind', ARGV[i + 1], 'payload', ARGV[i + 2],
    'priority', ARGV[i + 3], 'class', ARGV[i + 4], 'timeout_ms', ARGV[i + 5],
    'max_attempts', ARGV[i + 6], 'created_us', created_us,
    'status', 'queued', 'stream', sk, 'entry', eid)
  local fields = tonumber(ARGV[i + 12])
  if rec ~= '' then
    redis.call('HSET', tk, 'record', rec, 'result_field', ARGV[i + 8])
    if fields > 0 then
      redis.call('HSET', rec, unpack(ARGV, i + 13, i + 12 + 2 * fields))
    end
    -- A new run of the record: what an earlier run left is cleared.
    redis.call('HSET', rec, 'task_id', tid, 'status', 'queued', 'progress', '0')
    redis.call('HDEL', rec, 'error', 'report', 'started_at_ms', 'finished_at_ms')
    if ARGV[i + 10] ~= '' then redis.call('ZADD', ARGV[i + 10], created_ms, ARGV[i + 11]) end
  end
  if ARGV[i + 9] ~= '' then redis.call('SADD', ARGV[i + 9], tid) end
  n = n + 1
  i = i + 13 + 2 * fields
end
redis.call('HINCRBY', COUNTERS, 'tasks_submitted', n)
return n
