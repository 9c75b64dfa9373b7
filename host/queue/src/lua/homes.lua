-- The hash holding each task whose id is in ARGV[3..] (see `home_of`).
local out = {}
for i = 3, #ARGV do out[#out + 1] = home_of(ARGV[i]) end
return out
