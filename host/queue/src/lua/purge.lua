-- Deletes up to ARGV[5] DLQ entries, oldest first, none newer than
-- ARGV[4] (one batch of a purge: queue/admin.rs). Their tasks expire
-- after ARGV[3] seconds (a hosted task lives as long as its record).
-- Returns {entries deleted, entries deleted}: the shape of requeue.lua's.
local ttl = tonumber(ARGV[3])
local entries = redis.call('XRANGE', DLQ, '-', ARGV[4], 'COUNT', tonumber(ARGV[5]))
for _, e in ipairs(entries) do
  local tid = entry_field(e[2], 'task_id')
  if tid then
    local tk = home_of(tid)
    redis.call('EXPIRE', tk .. ':retries', ttl)
    if not is_hosted(tk, tid) then redis.call('EXPIRE', tk, ttl) end
  end
end
drop_dlq_head(entries)
return {#entries, #entries}
