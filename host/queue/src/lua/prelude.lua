-- Shared by every queue script. ARGV[1] is the key prefix, ARGV[2] the
-- consumer name (or '' when none). Key names match queue/keys.rs.
local P = ARGV[1]
local CONSUMER = ARGV[2]
local GROUP = 'workers'
local CLASSES = {'high', 'normal', 'low'}
local COUNTERS = P .. ':queue:counters'
local DELAYED = P .. ':tasks:delayed'
local DLQ = P .. ':tasks:dlq'
local DURATIONS = P .. ':queue:durations'
-- Fairness lanes (one per tenant; docs/conventions/queue.md, "Lanes"):
-- every named lane ever used, those that may have undelivered entries,
-- the running caps, the round-robin turn, and the stream a blocked fetch
-- waits on while lanes or caps exist.
local LANES = P .. ':queue:lanes'
local LANES_WAITING = P .. ':queue:lanes:waiting'
local LANE_CAPS = P .. ':queue:lane_caps'
local LANE_TURN = P .. ':queue:lane_turn'
local WAKE = P .. ':queue:wake'
-- Upper bounds (ms) of the task duration histogram; queue/metrics.rs
-- reads the buckets by these indexes.
local DURATION_BOUNDS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000}

-- `lane` nil or '' is the default lane, whose keys predate lanes.
local function stream_key(class, lane)
  local base = P .. ':tasks'
  if lane and lane ~= '' then base = P .. ':lane:' .. lane .. ':tasks' end
  if class == 'normal' then return base end
  return base .. ':' .. class
end

local function task_key(id) return P .. ':task:' .. id end

-- Stops the script before its first write when stream `sk` has lost its
-- consumer group (XGROUP DESTROY, a flush): the caller recreates the
-- groups (regroup.lua) and calls again. Redis keeps the writes of a
-- script that fails half-way.
local function need_group(sk)
  local r = redis.pcall('XPENDING', sk, GROUP)
  if type(r) == 'table' and r.err then error(r) end
end

-- A task its record hosts keeps its fields in the record instead of a
-- hash of its own (one hash to write per step, not two): HOMES maps its
-- id to the record, and the record's `task_id` names the task it hosts
-- now. Its stream entries carry the record as `r`.
local HOMES = P .. ':queue:homes'

-- The hash that holds task `tid`: its own, or its record's while the
-- record still hosts it (an id a record no longer hosts finds nothing).
local function home_of(tid)
  local rec = redis.call('HGET', HOMES, tid)
  if rec and redis.call('HGET', rec, 'task_id') == tid then return rec end
  return task_key(tid)
end

-- `home` as passed by a worker or read from an entry: '' is the task's own hash.
local function home_or_own(tid, home)
  if home and home ~= '' then return home end
  return task_key(tid)
end

local function is_hosted(tk, tid) return tk ~= task_key(tid) end

-- A record that hosted `tid` and now hosts another task (`hosted_id`, its
-- `task_id` field): `tid` was superseded and is as good as gone.
local function superseded(tk, tid, hosted_id)
  return is_hosted(tk, tid) and hosted_id ~= tid
end

-- The task's error message: `error` on its own hash; in a record, whose
-- `error` is the {code, message} JSON, `task_error`.
local function error_field(tk, tid)
  if is_hosted(tk, tid) then return 'task_error' end
  return 'error'
end

-- A finished task's own hash expires; a hosted task lives as long as
-- its record. Its retries list exists only if it `retried`.
local function expire_task(tk, tid, ttl, retried)
  if not is_hosted(tk, tid) then redis.call('EXPIRE', tk, ttl) end
  if retried then redis.call('EXPIRE', tk .. ':retries', ttl) end
end

-- A task's immutable fields, packed in its `spec` field (one field to
-- write and read instead of seven): "created_us priority class
-- timeout_ms max_attempts kind[ result_field][ @lane]". queue/task.rs
-- parses the same format. Returns them, then the lane ('' by default: a
-- spec from before lanes has none; no other word starts with '@').
local function parse_spec(spec)
  local lane = ''
  local at = string.find(spec, ' @', 1, true)
  if at then
    lane = string.sub(spec, at + 2)
    spec = string.sub(spec, 1, at - 1)
  end
  local c, p, cl, t, m, k, r = string.match(spec, '^(%d+) (%-?%d+) (%a+) (%d+) (%d+) (%S+) ?(%S*)$')
  return c, p, cl, t, m, k, r, lane
end

-- The spec of a task hash read as `spec`; a task submitted before the
-- field existed keeps one field each, packed here.
local function spec_of(tk, spec)
  if spec then return spec end
  local h = redis.call('HMGET', tk, 'created_us', 'priority', 'class',
    'timeout_ms', 'max_attempts', 'kind', 'result_field')
  return table.concat({h[1] or '0', h[2] or '5', h[3] or 'normal', h[4] or '0',
    h[5] or '0', h[6] or '-', h[7] or ''}, ' ')
end

-- Server time, so every worker and API process shares one clock. The
-- microsecond form measures submit-to-start latency.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function now_ms() return math.floor(now_us() / 1000) end

local function entry_field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- Mirrors the task's lifecycle on its record hash, when it has one (a
-- hosted task's record is its own hash: nothing to mirror).
local function record_set(tk, ...)
  local rec = redis.call('HGET', tk, 'record')
  if rec and rec ~= '' then redis.call('HSET', rec, ...) end
end

-- Lanes or caps exist: workers then block on WAKE rather than on the
-- default lane's streams (queue/consumer.rs), so whatever adds entries
-- or frees room rings it.
local function lane_mode() return redis.call('EXISTS', LANES, LANE_CAPS) > 0 end
local function ring() redis.call('XADD', WAKE, 'MAXLEN', 1, '*', 'w', '1') end

-- Named lane `lane` is about to get an entry: registered (its groups made
-- with its streams the first time) and marked as having work.
local function lane_gets_work(lane)
  if redis.call('SADD', LANES, lane) == 1 then
    for _, class in ipairs(CLASSES) do
      local sk = stream_key(class, lane)
      -- A stream kept from before lost its group: regroup.lua's job.
      if redis.call('EXISTS', sk) == 0 then
        redis.call('XGROUP', 'CREATE', sk, GROUP, '0', 'MKSTREAM')
      end
    end
  end
  redis.call('SADD', LANES_WAITING, lane)
end

-- The default lane ('') and every named one, sorted.
local function all_lanes()
  local lanes = redis.call('SMEMBERS', LANES)
  table.sort(lanes)
  table.insert(lanes, 1, '')
  return lanes
end

-- Adds task `tid` (in hash `tk`) to a class stream of its lane; returns
-- the entry id.
local function add_entry(class, tid, tk, lane)
  if lane and lane ~= '' then lane_gets_work(lane) end
  if is_hosted(tk, tid) then
    return redis.call('XADD', stream_key(class, lane), '*', 't', tid, 'r', tk)
  end
  return redis.call('XADD', stream_key(class, lane), '*', 't', tid)
end

-- Puts task `tid` (in hash `tk`) at the tail of its class stream.
local function enqueue(tid, tk)
  local _, _, class, _, _, _, _, lane = parse_spec(spec_of(tk, redis.call('HGET', tk, 'spec')))
  local eid = add_entry(class or 'normal', tid, tk, lane)
  redis.call('HSET', tk, 'status', 'queued', 'entry', eid)
  record_set(tk, 'status', 'queued')
  return eid
end

-- The list kept under `key` in `t`, made on first use.
local function list_of(t, key)
  local list = t[key]
  if not list then
    list = {}
    t[key] = list
  end
  return list
end

-- `cmd key` with the arguments in `list`, in calls of at most 1,000
-- (Lua's unpack stops at about 8,000 values). `list` holds whole
-- members or pairs, so an even chunk size never splits a pair.
local function call_batched(cmd, key, list)
  for first = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, first, math.min(first + 999, #list)))
  end
end

-- An ended task leaves its `holds` set, so the set keeps only tasks that
-- may still run (`holds` is the set's key, absent when none).
local function let_go(tid, holds)
  if holds and holds ~= '' then redis.call('SREM', holds, tid) end
end

-- Ends a task as cancelled (and its record), kept `ttl` seconds. The
-- caller counts it.
local function end_cancelled(tk, tid, ttl)
  let_go(tid, redis.call('HGET', tk, 'holds'))
  local now = now_ms()
  redis.call('HSET', tk, 'status', 'cancelled', 'finished_at_ms', now)
  expire_task(tk, tid, ttl, true)
  record_set(tk, 'status', 'cancelled', 'finished_at_ms', now)
end

-- Puts a running task back in its stream without using up an attempt:
-- a shutdown is not the task's fault. The caller counts it.
local function release(tid, tk)
  local attempts = tonumber(redis.call('HGET', tk, 'attempts') or '1')
  redis.call('HSET', tk, 'attempts', math.max(attempts - 1, 0))
  enqueue(tid, tk)
end

-- Marks a delivered entry as running on CONSUMER (at `now_s`, µs as a
-- string) and appends it to `out` (8 strings per task: stream, entry,
-- task id, spec, payload, attempt, record key or '', '1' when the record
-- hosts the task). `home` is the entry's `r` field (nil: the task's own
-- hash). Entries of cancelled, finished, vanished or superseded tasks are
-- dropped here, so a worker never sees them.
-- Returns 1 when a queued task became active (the caller adds them up).
local function start_entry(sk, eid, tid, home, now_s, out)
  tid = tid or ''
  local tk = home_or_own(tid, home)
  local hosted = is_hosted(tk, tid)
  local h = redis.call('HMGET', tk, 'status', 'spec', 'payload', 'attempts', 'record', 'task_id')
  local status = h[1]
  if (status ~= 'queued' and status ~= 'running') or superseded(tk, tid, h[6]) then
    redis.call('XACK', sk, GROUP, eid)
    redis.call('XDEL', sk, eid)
    return -1
  end
  local attempts = tostring(tonumber(h[4] or '0') + 1)
  local started_ms = string.sub(now_s, 1, -4)
  -- `entry` was set when the entry was added; a reclaim keeps it.
  local rec = h[5] or ''
  if hosted then
    rec = tk
    redis.call('HSET', tk, 'status', 'running', 'attempts', attempts,
      'worker', CONSUMER, 'started_us', now_s, 'started_at_ms', started_ms)
  else
    redis.call('HSET', tk, 'status', 'running', 'attempts', attempts,
      'worker', CONSUMER, 'started_us', now_s)
    if rec ~= '' then
      redis.call('HSET', rec, 'status', 'running', 'started_at_ms', started_ms)
    end
  end
  local n = #out
  out[n + 1] = sk
  out[n + 2] = eid
  out[n + 3] = tid
  out[n + 4] = spec_of(tk, h[2])
  out[n + 5] = h[3] or ''
  out[n + 6] = attempts
  out[n + 7] = rec
  out[n + 8] = hosted and '1' or ''
  if status == 'queued' then return 1 end
  return 0
end

-- Adds the tasks that became active in one script call, in one write.
local function count_active(n)
  if n ~= 0 then redis.call('HINCRBY', COUNTERS, 'active_tasks', n) end
end

-- Keeps the DLQ to its `most` newest entries (QueueConfig::dlq_max_len).
-- The oldest go as a purge's do: their failed tasks expire after `ttl`
-- seconds (a hosted one lives as long as its record); counted in
-- `dlq_trimmed`. Exact rather than `XADD ... MAXLEN ~`, which would not
-- say whose entries went, leaving their task hashes forever.
local function trim_dlq(most, ttl)
  local over = redis.call('XLEN', DLQ) - most
  if over <= 0 then return end
  local entries = redis.call('XRANGE', DLQ, '-', '+', 'COUNT', over)
  for _, e in ipairs(entries) do
    local tid = entry_field(e[2], 'task_id')
    if tid then
      local tk = home_of(tid)
      redis.call('EXPIRE', tk .. ':retries', ttl)
      if not is_hosted(tk, tid) and redis.call('HGET', tk, 'status') == 'failed' then
        redis.call('EXPIRE', tk, ttl)
      end
    end
  end
  redis.call('XTRIM', DLQ, 'MAXLEN', most)
  redis.call('HINCRBY', COUNTERS, 'dlq_trimmed', #entries)
end
