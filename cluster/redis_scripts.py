"""The Lua script behind `RedisLayout.read_bars_since` / `read_bars_batch` (owned by
`cluster.redis_layout`, which registers it; kept apart so the layout module stays one contract)."""

from __future__ import annotations

from cluster.candle_codec import RECORD_BYTES

# The read of many symbols in one call. Requests are "key\nresume\n..." in ARGV[1] (one argument:
# redis-py packs each argument in Python, ~1 us each) and the join flag in ARGV[2], or KEYS/ARGV
# pairs (flag after the resumes) when a key holds a newline. resume "-" = cold (every stored
# member, found = 1); otherwise the members with score >= resume, the resume candle included, and
# found = 2: the client proves continuity from the first record (it opens at the resume time) and
# drops it, which costs Redis less than a ZCOUNT per key. The reply is a meta string, per key a
# little-endian int32 triple (found, members, members that are not one record), then the members
# concatenated (fixed-width records need no separator): one bulk string per key, or with the join
# flag one for all keys. Joined suits the steady tick (a few records per key: the client parses
# two replies instead of 1 + N); per key suits a rehydrate, whose megabytes Redis would otherwise
# copy once more into one string.
READ_BARS_LUA = """
local out, meta = {''}, {}
local function read(key, resume)
  local rows, found
  if resume == '-' then
    rows, found = redis.call('ZRANGE', key, 0, -1), 1
  else
    rows, found = redis.call('ZRANGEBYSCORE', key, resume, '+inf'), 2
  end
  local bad = 0
  for _, member in ipairs(rows) do
    if #member ~= RECORD_BYTES then bad = bad + 1 end
  end
  meta[#meta + 1] = struct.pack('<iii', found, #rows, bad)
  out[#out + 1] = table.concat(rows)
end
local joined
if #KEYS > 0 then
  for i, key in ipairs(KEYS) do read(key, ARGV[i]) end
  joined = ARGV[#KEYS + 1]
else
  for key, resume in string.gmatch(ARGV[1], '([^\\n]+)\\n([^\\n]+)') do read(key, resume) end
  joined = ARGV[2]
end
out[1] = table.concat(meta)
if joined == '1' then return {out[1], table.concat(out, '', 2)} end
return out
""".replace("RECORD_BYTES", str(RECORD_BYTES))
