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
# Python; the caller sends no empty field and none holding "\n"). The reply is {values, empty}:
# every value joined by "\n" in field order, "" for a missing field, so the client parses ONE bulk
# string instead of one per symbol (redis-py's Python parser costs ~2-3 us a bulk string); `empty`
# lists the 0-based positions of fields present with an empty value (which "" would hide). A
# value holding "\n" shows as a count mismatch on the client. HMGET runs in chunks: Lua's unpack()
# is bounded. ~0.5 ms of server time for 1,000 fields.
READ_PICKED_LUA = """
local fields, n = {}, 0
for f in string.gmatch(ARGV[1], '[^\\n]+') do n = n + 1; fields[n] = f end
local out, empty = {}, {}
for first = 1, n, 1000 do
  local last = math.min(first + 999, n)
  local values = redis.call('HMGET', KEYS[1], unpack(fields, first, last))
  for j = 1, last - first + 1 do
    local v = values[j]
    if v == false then v = '' elseif v == '' then empty[#empty + 1] = tostring(first + j - 2) end
    out[first + j - 1] = v
  end
end
return {table.concat(out, '\\n'), empty}
"""
READ_PICKED_SHA = sha1(READ_PICKED_LUA.encode()).hexdigest()  # EVALSHA without a per-client Script object
