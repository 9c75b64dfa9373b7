-- Starts entries a blocking XREADGROUP already delivered to CONSUMER.
-- After the prelude's two: triples of stream key, entry id, task id.
local now = now_us()
local out = {}
for i = 3, #ARGV, 3 do
  start_entry(ARGV[i], ARGV[i + 1], ARGV[i + 2], now, out)
end
return out
