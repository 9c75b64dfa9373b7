-- Starts entries a blocking XREADGROUP already delivered to CONSUMER.
-- After the prelude's two: quadruples of stream key, entry id, task id,
-- and the entry's `r` field ('' when none).
local now = now_us()
local now_s = string.format('%d', now)
local out = {}
local activated = 0
for i = 3, #ARGV, 4 do
  activated = activated + math.max(start_entry(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now_s, out), 0)
end
count_active(activated)
return out
