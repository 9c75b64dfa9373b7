-- On shutdown: every entry CONSUMER still holds goes back to the queue
-- (attempt given back), then the consumer leaves the group and its
-- heartbeat goes. Returns how many tasks were released.
local n = 0
for _, class in ipairs(CLASSES) do
  local sk = stream_key(class)
  local pending = redis.call('XPENDING', sk, GROUP, '-', '+', 100000, CONSUMER)
  for _, p in ipairs(pending) do
    local eid = p[1]
    local e = redis.call('XRANGE', sk, eid, eid)
    redis.call('XACK', sk, GROUP, eid)
    redis.call('XDEL', sk, eid)
    if #e == 1 then
      local tid = entry_field(e[1][2], 't')
      local tk = task_key(tid or '')
      if tid and redis.call('HGET', tk, 'status') == 'running' then
        local attempts = math.max(tonumber(redis.call('HGET', tk, 'attempts') or '1') - 1, 0)
        redis.call('HSET', tk, 'attempts', attempts)
        redis.call('HINCRBY', COUNTERS, 'active_tasks', -1)
        enqueue(tid)
        n = n + 1
      end
    end
  end
  redis.call('XGROUP', 'DELCONSUMER', sk, GROUP, CONSUMER)
end
redis.call('DEL', P .. ':worker:' .. CONSUMER)
redis.call('ZREM', P .. ':workers', CONSUMER)
if n > 0 then redis.call('HINCRBY', COUNTERS, 'tasks_released', n) end
return n
