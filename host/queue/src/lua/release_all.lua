-- On shutdown: every entry CONSUMER still holds goes back to the queue
-- (attempt given back), then the consumer leaves the group and its
-- heartbeat goes. A task whose cancellation was asked for ends cancelled
-- instead. ARGV[3]: seconds finished tasks are kept. Returns how many
-- tasks were released.
local ttl = tonumber(ARGV[3])
local n, cancelled = 0, 0
local streams = {}
for _, lane in ipairs(all_lanes()) do
  for _, class in ipairs(CLASSES) do streams[#streams + 1] = stream_key(class, lane) end
end
for _, sk in ipairs(streams) do need_group(sk) end
for _, sk in ipairs(streams) do
  local pending = redis.call('XPENDING', sk, GROUP, '-', '+', 100000, CONSUMER)
  for _, p in ipairs(pending) do
    local eid = p[1]
    local e = redis.call('XRANGE', sk, eid, eid)
    redis.call('XACK', sk, GROUP, eid)
    redis.call('XDEL', sk, eid)
    if #e == 1 then
      local tid = entry_field(e[1][2], 't')
      local tk = home_or_own(tid or '', entry_field(e[1][2], 'r'))
      local h = redis.call('HMGET', tk, 'status', 'entry', 'task_id', 'cancel_requested')
      local status = h[1]
      if superseded(tk, tid or '', h[3]) then status = nil end
      if tid and status == 'queued' and h[2] == eid then
        -- Read by a blocking fetch but never started (the adopt call
        -- failed): deleting the entry alone would strand the task.
        enqueue(tid, tk)
        n = n + 1
      elseif tid and status == 'running' then
        redis.call('HINCRBY', COUNTERS, 'active_tasks', -1)
        if h[4] == '1' then
          end_cancelled(tk, tid, ttl)
          cancelled = cancelled + 1
        else
          release(tid, tk)
          n = n + 1
        end
      end
    end
  end
  redis.call('XGROUP', 'DELCONSUMER', sk, GROUP, CONSUMER)
end
redis.call('DEL', P .. ':worker:' .. CONSUMER)
redis.call('ZREM', P .. ':workers', CONSUMER)
if n > 0 then
  redis.call('HINCRBY', COUNTERS, 'tasks_released', n)
  if lane_mode() then ring() end
end
if cancelled > 0 then
  redis.call('HINCRBY', COUNTERS, 'tasks_cancelled', cancelled)
end
return n
