"""The Lua script behind `RedisLayout.read_bars_since` / `read_bars_batch` (owned by
`cluster.redis_layout`, which registers it; kept apart so the layout module stays one contract)."""

from __future__ import annotations

from hashlib import sha1

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

# The driver's per-tick read of one candle-key hash (`RedisLayout.read_picked_keys`). KEYS[1] is
# the hash, ARGV[1] the fields joined by "\n" (one argument: redis-py packs each argument in
# Python). The reply is {values, odd}: every value joined by "\n" in field order, "" for a missing
# field, so the client parses ONE bulk string instead of one per symbol (redis-py's Python parser
# costs ~2 us a bulk string); a value that is not plain decimal digits (empty, signed, or holding a
# "\n") is "" there too and listed in `odd` as (0-based position, raw value), so the client
# converts exactly what HMGET would have returned. HMGET runs in chunks: Lua's unpack() is bounded.
READ_PICKED_LUA = """
local s, fields, pos = ARGV[1], {}, 1
while true do
  local nl = string.find(s, '\\n', pos, true)
  if nl == nil then fields[#fields + 1] = string.sub(s, pos); break end
  fields[#fields + 1] = string.sub(s, pos, nl - 1)
  pos = nl + 1
end
local out, odd = {}, {}
for first = 1, #fields, 1000 do
  local last = math.min(first + 999, #fields)
  local values = redis.call('HMGET', KEYS[1], unpack(fields, first, last))
  for j = 1, last - first + 1 do
    local v, at = values[j], first + j - 1
    if v == false then
      out[at] = ''
    elseif string.find(v, '^%d+$') then
      out[at] = v
    else
      out[at] = ''
      odd[#odd + 1] = tostring(at - 1)
      odd[#odd + 1] = v
    end
  end
end
return {table.concat(out, '\\n'), odd}
"""
READ_PICKED_SHA = sha1(READ_PICKED_LUA.encode()).hexdigest()  # EVALSHA without a per-client Script object
