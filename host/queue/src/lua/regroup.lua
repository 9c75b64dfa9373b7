-- Creates the consumer group of each class stream, of every lane, that
-- has none (first use, a flush, an XGROUP DESTROY) and the stream with
-- it. Returns how many entries it gave back to their workers.
--
-- A stream that lost its group keeps the entries of its running tasks,
-- and a group made at id 0 would deliver them again: a second copy of
-- each, beside the first. A stream is delivered in id order, so the
-- entries of running tasks come first; the group starts after the last
-- of them, and each goes back to the pending list of the worker the task
-- names, so that worker's keepalive and outcome find it as before. The
-- first entry of a queued task ends that prefix: it and the rest are
-- delivered as new. Entries of tasks that ended meanwhile are deleted.
-- The prefix is about as long as the tasks workers hold; the scan stops
-- at SCAN_MOST entries, and an entry past that is delivered again (a
-- worker ignores a delivery of a task it is already running).
local SCAN_MOST = 10000
local function has_group(sk)
  if redis.call('EXISTS', sk) == 0 then return false end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', sk)) do
    if entry_field(g, 'name') == GROUP then return true end
  end
  return false
end
local claimed = 0
local streams = {}
for _, lane in ipairs(all_lanes()) do
  for _, class in ipairs(CLASSES) do streams[#streams + 1] = {stream_key(class, lane), lane} end
end
local woke = false
for _, s in ipairs(streams) do
  local sk, lane = s[1], s[2]
  if not has_group(sk) then
    local start, owned, stale = '0', {}, {}
    local from, scanned, more = '-', 0, true
    while more and scanned < SCAN_MOST do
      local page = redis.call('XRANGE', sk, from, '+', 'COUNT', 100)
      more = #page == 100
      for _, e in ipairs(page) do
        local eid, tid = e[1], entry_field(e[2], 't') or ''
        local tk = home_or_own(tid, entry_field(e[2], 'r'))
        local h = redis.call('HMGET', tk, 'status', 'entry', 'worker', 'task_id')
        local live = (h[2] == eid or not h[2]) and not superseded(tk, tid, h[4])
        if live and h[1] == 'running' and h[3] then
          owned[#owned + 1] = {eid, h[3]}
          start = eid
        elseif live and (h[1] == 'queued' or h[1] == 'running') then
          more = false
          break
        else
          stale[#stale + 1] = eid
        end
        scanned = scanned + 1
      end
      if #page > 0 then from = '(' .. page[#page][1] end
    end
    redis.call('XGROUP', 'CREATE', sk, GROUP, start, 'MKSTREAM')
    for _, o in ipairs(owned) do
      -- FORCE makes the pending entry (and the consumer); JUSTID keeps
      -- the delivery count, and the idle time starts again.
      redis.call('XCLAIM', sk, GROUP, o[2], 0, o[1], 'FORCE', 'JUSTID')
    end
    claimed = claimed + #owned
    if #stale > 0 then call_batched('XDEL', sk, stale) end
    -- What follows `start` is delivered anew.
    if lane ~= '' then redis.call('SADD', LANES_WAITING, lane) end
    woke = true
  end
end
if woke and lane_mode() then ring() end
return claimed
