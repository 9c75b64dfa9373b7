-- Submits tasks atomically. After the prelude's two arguments: the guard
-- count, then per guard: hash key, field, expected value ('' also holds
-- when the field is absent: a record that must not exist yet), index
-- key ('' = none), index member, index score, the count of fields to set
-- and that many name/value pairs. If guard k does not hold, nothing is
-- written and the reply is -k. Then per task: id, class, the spec
-- without its leading created_us, payload, holds set ('' = none), record
-- key ('' = none), and with a record: index key ('' = none), index
-- member, '1' when the record is new ('' when it runs again), '1' when
-- the record hosts the task (keeps its fields; see the prelude), the
-- count of the record's fields (its initial ones and its new run's) and
-- that many name/value pairs. A task of a named lane has ' @lane' at
-- the end of its spec (see the prelude's parse_spec) and goes to that
-- lane's streams.
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
-- Set members and index entries, per key: added in one call per key at
-- the end (each call from Lua costs about 2.5 us besides its work).
local joins, indexed = {}, {}
-- Hosted tasks' ids and records, for HOMES.
local homes = {}
-- A record run again while it hosts a queued or running task: that task
-- is superseded and ends as cancelled (a running one's worker is told to
-- stop; its late outcome finds another task there and is only acked).
-- The last run's fields go, its result (field `result_field`) too.
local superseded_count = 0
-- The record's field for the result, from a task's spec.
local function result_field_of(spec)
  local field = select(7, parse_spec(spec))
  if field == nil or field == '' then return 'result' end
  return field
end
local function supersede(rec, result_field)
  local h = redis.call('HMGET', rec, 'task_id', 'status', 'holds', 'entry', 'spec')
  local old = h[1]
  -- A task of its own hash that mirrors into this record (submitted
  -- before records hosted their tasks) lets go of the record: it may
  -- still run, but its outcome stays on its own hash.
  if old and redis.call('HGET', task_key(old), 'record') == rec then
    redis.call('HDEL', task_key(old), 'record')
  end
  if old and redis.call('HGET', HOMES, old) == rec then
    redis.call('HDEL', HOMES, old)
    if h[2] == 'queued' or h[2] == 'running' then
      let_go(old, h[3])
      if h[2] == 'running' then
        redis.call('HINCRBY', COUNTERS, 'active_tasks', -1)
        redis.call('PUBLISH', P .. ':cancel', old)
      else
        redis.call('ZREM', DELAYED, old)
        if h[4] then
          local _, _, class, _, _, _, _, lane = parse_spec(spec_of(rec, h[5]))
          redis.call('XDEL', stream_key(class or 'normal', lane), h[4])
        end
      end
      superseded_count = superseded_count + 1
    end
  end
  redis.call('HDEL', rec, 'error', result_field, 'started_at_ms', 'finished_at_ms',
    'attempts', 'worker', 'started_us', 'cancel_requested', 'retried',
    'next_attempt_at_ms', 'error_code', 'task_error')
end
-- Two calls per task (XADD, HSET) when there is no record or the record
-- hosts the task: this is the hot path of bulk submission. Ids are fresh
-- uuids, so no existence check.
-- Named lanes seen in this submission.
local lanes = {}
while i <= #ARGV do
  local tid, class, holds, rec = ARGV[i], ARGV[i + 1], ARGV[i + 4], ARGV[i + 5]
  local spec = created_us .. ' ' .. ARGV[i + 2]
  local sk
  local at = string.find(ARGV[i + 2], ' @', 1, true)
  if at then
    local lane = string.sub(ARGV[i + 2], at + 2)
    if not lanes[lane] then
      lanes[lane] = true
      lane_gets_work(lane)
    end
    sk = stream_key(class, lane)
  else
    sk = stream_key(class)
  end
  -- Absent fields read as their zero: attempts 0, no record.
  if rec == '' then
    local eid = redis.call('XADD', sk, '*', 't', tid)
    local tk = task_key(tid)
    if holds == '' then
      redis.call('HSET', tk, 'spec', spec, 'payload', ARGV[i + 3],
        'status', 'queued', 'entry', eid)
    else
      redis.call('HSET', tk, 'spec', spec, 'payload', ARGV[i + 3],
        'status', 'queued', 'entry', eid, 'holds', holds)
    end
    i = i + 6
  else
    local is_new, hosted = ARGV[i + 8] == '1', ARGV[i + 9] == '1'
    local first, last = i + 11, i + 10 + 2 * tonumber(ARGV[i + 10])
    if hosted then
      if not is_new then supersede(rec, result_field_of(spec)) end
      local eid = redis.call('XADD', sk, '*', 't', tid, 'r', rec)
      redis.call('HSET', rec, 'spec', spec, 'payload', ARGV[i + 3], 'entry', eid,
        'holds', holds, unpack(ARGV, first, last))
      homes[#homes + 1] = tid
      homes[#homes + 1] = rec
    else
      local eid = redis.call('XADD', sk, '*', 't', tid)
      -- With a record, `holds` is '' or the set's key: stored either way.
      redis.call('HSET', task_key(tid), 'spec', spec, 'payload', ARGV[i + 3],
        'status', 'queued', 'entry', eid, 'record', rec, 'holds', holds)
      redis.call('HSET', rec, unpack(ARGV, first, last))
      -- A new run of an existing record: what an earlier run left is cleared.
      if not is_new then
        redis.call('HDEL', rec, 'error', result_field_of(spec), 'started_at_ms',
          'finished_at_ms')
      end
    end
    if ARGV[i + 6] ~= '' then
      local list = list_of(indexed, ARGV[i + 6])
      list[#list + 1] = created_ms
      list[#list + 1] = ARGV[i + 7]
    end
    i = last + 1
  end
  if holds ~= '' then
    local list = list_of(joins, holds)
    list[#list + 1] = tid
  end
  n = n + 1
end
for key, members in pairs(joins) do call_batched('SADD', key, members) end
for key, entries in pairs(indexed) do call_batched('ZADD', key, entries) end
if #homes > 0 then call_batched('HSET', HOMES, homes) end
if superseded_count > 0 then redis.call('HINCRBY', COUNTERS, 'tasks_cancelled', superseded_count) end
redis.call('HINCRBY', COUNTERS, 'tasks_submitted', n)
if next(lanes) ~= nil or lane_mode() then ring() end
return n
