-- Cancels a task. ARGV[3]: its id, ARGV[4]: seconds to keep it.
-- A queued task ends now; a running one is asked to stop (its worker
-- hears it on the cancel channel, or at its next keepalive) and ends as
-- cancelled when it does. Returns 'cancelled', 'cancelling', 'missing',
-- or 'final:<status>' for a task that had already ended.
local tid = ARGV[3]
local tk = home_of(tid)
local h = redis.call('HMGET', tk, 'status', 'spec', 'entry')
local status = h[1]
if not status then return 'missing' end
if status == 'queued' then
  if h[3] then
    local _, _, class, _, _, _, _, lane = parse_spec(spec_of(tk, h[2]))
    redis.call('XDEL', stream_key(class or 'normal', lane), h[3])
  end
  redis.call('ZREM', DELAYED, tid)
  end_cancelled(tk, tid, tonumber(ARGV[4]))
  redis.call('HINCRBY', COUNTERS, 'tasks_cancelled', 1)
  return 'cancelled'
end
if status == 'running' then
  redis.call('HSET', tk, 'cancel_requested', '1')
  redis.call('PUBLISH', P .. ':cancel', tid)
  return 'cancelling'
end
return 'final:' .. status
