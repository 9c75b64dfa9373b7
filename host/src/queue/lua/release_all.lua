-- On shutdown: every entry CONSUMER still holds goes back to the queue
-- (attempt given back), then the consumer leaves the group and its
-- heartbeat goes. A task whose cancellation was asked for ends cancelled
-- instead. ARGV[3]: seconds finished tasks are kept. Returns how many
-- tasks were released.
local ttl = tonumber(ARGV[3])
local n, cancelled = 0, 0
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
      local status = redis.call('HGET', tk, 'status')
      if tid and status == 'queued' and redis.call('HGET', tk, 'entry') == eid then
        -- Read by a blocking fetch but never started (the adopt call
        -- failed): deleting the entry alone would strand the task.
        enqueue(tid)
        n = n + 1
      elseif tid and status == 'running' then
        redis.call('HINCRBY', COUNTERS, 'active_tasks', -1)
        if redis.call('HGET', tk, 'cancel_requested') == '1' then
          end_cancelled(tk, tid, ttl)
          cancelled = cancelled + 1
        else
          release(tid)
          n = n + 1
        end
      end
    end
  end
  redis.call('XGROUP', 'DELCONSUMER', sk, GROUP, CONSUMER)
end
redis.call('DEL', P .. ':worker:' .. CONSUMER)
redis.call('ZREM', P .. ':workers', CONSUMER)
if n > 0 then redis.call('HINCRBY', COUNTERS, 'tasks_released', n) end
if cancelled > 0 then
  redis.call('HINCRBY', COUNTERS, 'tasks_cancelled', cancelled)
end
return n
