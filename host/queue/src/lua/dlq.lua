-- Shared by requeue.lua and purge.lua, after the prelude.

-- Deletes `entries`, the oldest of the DLQ as XRANGE read them from '-':
-- one exact XTRIM up to the next entry (XDEL looks a node up per id).
local function drop_dlq_head(entries)
  if #entries == 0 then return end
  local after = redis.call('XRANGE', DLQ, '(' .. entries[#entries][1], '+', 'COUNT', 1)
  if #after == 1 then
    redis.call('XTRIM', DLQ, 'MINID', after[1][1])
  else
    redis.call('XTRIM', DLQ, 'MAXLEN', 0)
  end
end
