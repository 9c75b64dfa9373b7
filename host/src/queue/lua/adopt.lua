-- Starts entries a blocking XREADGROUP already delivered to CONSUMER.
-- After the prelude's two: triples of stream key, entry id, task id.
local now = now_us()
local now_s = string.format('%d', now)
local out = {}
local activated = 0
for i = 3, #ARGV, 3 do
  activated = activated + math.max(start_entry(ARGV[i], ARGV[i + 1], ARGV[i + 2], now_s, out), 0)
end
count_active(activated)
return out
